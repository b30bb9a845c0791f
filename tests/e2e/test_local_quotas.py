"""Local mode's quotas: limits.yaml in the data folder, written while the platform runs, holds for the gateway that
`kubevision local up` started and for `kubevision upload` alike, for the namespace it names only."""

from __future__ import annotations

import time

import httpx
import yaml
from limits_files import write_limits_text
from seeding import photo

from kubevision.local import api_keys

NAMESPACE = "quota-local"


def gateway_api(platform) -> str:
    (gateway,) = (s for s in platform.status() if s.name == "gateway")
    return f"{gateway.endpoints['api']}/customvision/v3.3/training"


def test_limits_yaml_written_while_the_platform_runs_holds_for_the_api_and_the_upload_command(
        platform, kubevision_cli, tmp_path):
    headers = {"Training-Key": api_keys.ensure(platform.data_dir, NAMESPACE)["trainingKey"]}
    limits = platform.data_dir / "limits.yaml"
    before = limits.read_text()  # the test run's platform's own limits, given back after
    ours = yaml.safe_load(before) | {"namespaces": {NAMESPACE: {"projects": 1, "images_per_project": 2}}}
    write_limits_text(limits, yaml.safe_dump(ours))
    with httpx.Client(base_url=gateway_api(platform), headers=headers, timeout=60) as http:
        try:
            deadline = time.monotonic() + 30
            while (created := http.post("/projects", params={"name": "Local"})).status_code == 401:
                assert time.monotonic() < deadline, "the gateway never read the new namespace's key"
                time.sleep(0.5)  # it re-reads the keys file every second
            assert created.status_code == 200, created.text
            refused = http.post("/projects", params={"name": "Another"})
            assert (refused.status_code, refused.json()["code"]) == (400, "BadRequestExceedProjectLimit")
            assert [p["name"] for p in http.get("/projects").json()] == ["Local"]

            for number in range(3):
                (tmp_path / "photos" / "tree").mkdir(parents=True, exist_ok=True)
                (tmp_path / "photos" / "tree" / f"{number}.png").write_bytes(photo(f"local-quota-{number}"))
            manifest = tmp_path / "project.yaml"
            manifest.write_text(yaml.safe_dump({
                "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject",
                "metadata": {"name": "local", "namespace": NAMESPACE},
                "spec": {"displayName": "Local", "dataset": {"bucket": "kubevision-datasets",
                                                             "prefix": f"{NAMESPACE}/local/"}}}))
            uploaded = kubevision_cli("upload", "-f", str(manifest), str(tmp_path / "photos"),
                                      "--data-dir", str(platform.data_dir))
            assert uploaded.returncode == 1, uploaded.stdout + uploaded.stderr
            assert "2 added" in uploaded.stdout and "tree/2.png" in uploaded.stderr
            assert "images_per_project" in uploaded.stderr
            assert http.get(f"/projects/{created.json()['id']}/images/tagged/count").json() == 2
        finally:
            write_limits_text(limits, before)
            for project in http.get("/projects").json():
                http.delete(f"/projects/{project['id']}")
