"""checkov (in its own environment, .venv-checkov; see Makefile) on the chart rendered for every value set: it finds
nothing but the deliberate findings of charts/checkov-skips.yaml, and each of those still fires somewhere."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

import yaml
from chart import VALUE_SETS, render

REPO = Path(__file__).resolve().parents[2]
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
SKIPS = yaml.safe_load((REPO / "charts" / "checkov-skips.yaml").read_text())


def findings(folder: Path) -> dict[str, set[str]]:
    """Value set -> the ids of the checks that fail on its objects. Offline: nothing is downloaded."""
    result = subprocess.run([str(CHECKOV), "--directory", str(folder), "--framework", "kubernetes", "--skip-download",
                             "--quiet", "--compact", "--output", "json"], capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(folder)})
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    failed: dict[str, set[str]] = defaultdict(set)
    for report in reports if isinstance(reports, list) else [reports]:
        for check in report["results"]["failed_checks"]:
            failed[Path(check["file_path"]).stem].add(check["check_id"])
    return failed


def test_checkov_finds_only_what_the_skip_list_justifies(tmp_path):
    for value_set, values in VALUE_SETS.items():
        (tmp_path / f"{value_set}.yaml").write_text(yaml.safe_dump_all(render(values)))
    failed = findings(tmp_path)
    for value_set in VALUE_SETS:
        justified = set(SKIPS["all"]) | set(SKIPS.get(value_set, {}))
        assert failed[value_set] - justified == set(), f"{value_set}: fix these or justify them"
    assert set(SKIPS["all"]) <= set.union(*failed.values()), "a skip for a finding that no longer fires"
    assert set(SKIPS["kind"]) == failed["kind"] - set(SKIPS["all"])


def test_checkov_finds_only_justified_findings_on_the_pods_the_operator_makes(tmp_path):
    from test_operator_objects import PROJECT_BODY, S3, SETTINGS, job

    from kubevision.operator import objects

    made = [job(), job(gpus=0), objects.triton_deployment(PROJECT_BODY, ["pets-1"], SETTINGS, S3),
            objects.triton_service(PROJECT_BODY)]
    (tmp_path / "operator.yaml").write_text(yaml.safe_dump_all(made))
    failed = findings(tmp_path)["operator"]
    assert failed - set(SKIPS["all"]) - set(SKIPS["operator"]) == set(), "fix these or justify them"
    assert set(SKIPS["operator"]) <= failed, "a skip for a finding that no longer fires"


def test_checkov_does_find_a_bad_pod(tmp_path):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": "x"},
           "spec": {"containers": [{"name": "c", "image": "busybox:latest",
                                    "securityContext": {"privileged": True}}]}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(pod))
    assert {"CKV_K8S_16", "CKV_K8S_14"} <= findings(tmp_path)["bad"]  # privileged, latest tag
