"""Local state is its owner's alone: the data folder 0700, files with secrets 0600 from the moment they exist."""

import json
import os
import subprocess
import sys
import textwrap

from kubevision.core.settings import LocalSettings
from kubevision.local.supervisor import LocalPlatform


def test_the_data_folder_is_private_whether_new_or_made_before(tmp_path):
    old_umask = os.umask(0o022)
    try:
        fresh = LocalPlatform(LocalSettings(data_dir=tmp_path / "fresh")).data_dir
        made_before = tmp_path / "made-before"
        made_before.mkdir(mode=0o755)
        made_before.chmod(0o755)
        tightened = LocalPlatform(LocalSettings(data_dir=made_before)).data_dir
    finally:
        os.umask(old_umask)
    assert fresh.stat().st_mode & 0o777 == 0o700
    assert tightened.stat().st_mode & 0o777 == 0o700


def test_secret_files_are_never_readable_by_others_not_even_for_a_moment(tmp_path):
    """An audit hook looks at the folder before every file operation of writing SeaweedFS's identities (the S3
    keys) and the platform's state: a file open to others at any of those moments fails the test."""
    script = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        folder = Path(sys.argv[1])
        seen, looking = [], False

        def hook(event, args):
            global looking
            if looking or event not in ("open", "os.chmod", "os.rename"):
                return
            looking = True
            try:
                seen.extend(p.name for p in folder.iterdir() if p.is_file() and p.stat().st_mode & 0o077)
            finally:
                looking = False

        from kubevision.local import services
        from kubevision.local.supervisor import LocalPlatform, PlatformState
        from kubevision.core.settings import LocalSettings
        platform = LocalPlatform(LocalSettings(data_dir=folder))
        platform.state_path.touch(mode=0o600)  # a platform that was up: down() writes its state again
        platform.state_path.write_text(PlatformState(access_key="k", secret_key="s", s3_port=9).model_dump_json())
        sys.addaudithook(hook)
        services.seaweedfs(folder, services.Credentials("key", "secret"), {"s3.port": 9})
        platform.down()
        print(json.dumps(sorted(set(seen))))
    """)
    folder = tmp_path / "data"
    result = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir() if p.is_file()} == {
        "s3-identities.json": 0o600, "platform.json": 0o600}
