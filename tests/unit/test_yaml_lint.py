"""yamllint (rules in .yamllint.yaml) on the YAML we write and on what the chart renders for every value set: a
template's stray whitespace or broken indentation shows here before it reaches a cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from chart import VALUE_SETS, render_files

REPO = Path(__file__).resolve().parents[2]
YAMLLINT = [str(Path(sys.executable).parent / "yamllint"), "--strict"]


def test_the_yaml_we_write_is_clean():
    result = subprocess.run([*YAMLLINT, "-c", str(REPO / ".yamllint.yaml"), "."], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout


def test_yamllint_does_find_a_bad_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("a: 1 \nb: [1,2]\n")
    result = subprocess.run([*YAMLLINT, "-c", str(REPO / ".yamllint.yaml"), str(tmp_path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1 and "trailing-spaces" in result.stdout and "commas" in result.stdout


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_the_rendered_chart_is_clean(value_set):
    files = render_files({**VALUE_SETS[value_set], "imagePullSecrets": ["registry-a", "registry-b"]})
    text = "".join(f"---\n# Source: {path}\n{body}" for path, body in sorted(files.items()) if path.endswith(".yaml"))
    # Rendered values (database URLs, the helm test's script) are as long as they are.
    config = f"{{extends: {REPO / '.yamllint.yaml'}, rules: {{line-length: disable}}}}"
    result = subprocess.run([*YAMLLINT, "-d", config, "-"], input=text, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
