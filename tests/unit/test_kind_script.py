"""The kind path, checked without docker or a cluster: shellcheck finds nothing, and the dry run prints every step
from cluster to curl line, in order, calling none of the tools it names."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "kind" / "kind.sh"
KIND_CONFIG = yaml.safe_load((REPO / "kind-config.yaml").read_text())
VALUES = yaml.safe_load((REPO / "deploy" / "kind" / "values.yaml").read_text())
IMAGES = ["operator", "gateway", "trainer", "mlflow"]
SHELLCHECK = shutil.which("shellcheck") or "/usr/bin/shellcheck"  # Debian's package; `make test` installs it


def shellcheck(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([SHELLCHECK, "--severity=style", *map(str, paths)], capture_output=True, text=True,
                          timeout=60)


def test_shellcheck_finds_nothing():
    result = shellcheck(SCRIPT, REPO / ".ci" / "run")
    assert result.returncode == 0, result.stdout


def test_shellcheck_does_find_a_bad_script(tmp_path):
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    result = shellcheck(bad)
    assert result.returncode == 1 and "SC2086" in result.stdout


@pytest.fixture
def dry_run(tmp_path):
    """Runs the script with --dry-run, every tool it names replaced by one that records being called."""
    calls = tmp_path / "calls"
    for tool in ("kind", "docker", "kubectl", "helm"):
        stub = tmp_path / "bin" / tool
        stub.parent.mkdir(exist_ok=True)
        stub.write_text(f"#!/bin/sh\necho {tool} \"$@\" >> {calls}\nexit 1\n")
        stub.chmod(0o755)

    def run(command: str) -> list[str]:
        path = f"{tmp_path / 'bin'}:/usr/bin:/bin"
        result = subprocess.run([str(SCRIPT), command, "--dry-run"], capture_output=True, text=True, timeout=60,
                                env={"PATH": path, "HOME": str(tmp_path)}, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        called = calls.read_text().splitlines() if calls.exists() else []
        assert called == [], "a dry run called a tool"
        return result.stdout.splitlines()

    return run


def position(lines: list[str], pattern: str) -> int:
    matches = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    assert matches, f"no line matches {pattern}"
    return matches[0]


def test_the_dry_run_prints_every_step_in_order(dry_run):
    lines = dry_run("up")
    steps = [
        rf"^\+ kind create cluster --config {REPO}/kind-config.yaml",
        r"docker build -f images/Dockerfile --target \$image -t ghcr.io/kubevision/\$image:0.1.0",
        *(rf"^\+ kind load docker-image ghcr.io/kubevision/{image}:0.1.0 --name {KIND_CONFIG['name']}$"
          for image in IMAGES),
        rf"^\+ helm upgrade --install kubevision {REPO}/charts/kubevision --namespace kubevision .*"
        rf"--values {REPO}/deploy/kind/values.yaml --wait",
        r"^\+ kubectl -n kubevision port-forward svc/kubevision-minio",
        rf"^\+ {REPO}/.venv/bin/python {REPO}/deploy/kind/upload_samples.py {REPO}/examples/project.yaml",
        r"^\+ kubectl -n default create secret generic kubevision-api-keys --from-literal=predictionKey=[0-9a-f]{32} ",
        rf"^\+ kubectl -n default apply -f {REPO}/examples/project.yaml -f {REPO}/examples/quickstart-iteration.yaml",
        r"^\+ kubectl -n default wait iteration/trees-quickstart --for=jsonpath=\{\.status\.phase\}=Published",
        r"curl -X POST http://localhost:30080/customvision/v3.0/Prediction/.*/classify/iterations/trees/image",
    ]
    positions = [position(lines, step) for step in steps]
    assert positions == sorted(positions)
    assert "for image in operator gateway trainer mlflow" in "\n".join(lines)


def test_the_dry_run_of_down_deletes_the_cluster(dry_run):
    assert dry_run("down") == [f"+ kind delete cluster --name {KIND_CONFIG['name']}"]


def test_a_wrong_command_is_refused():
    result = subprocess.run([str(SCRIPT), "sideways"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "usage:" in result.stderr


def test_the_gateway_port_goes_from_the_node_to_the_host():
    control_plane, worker = KIND_CONFIG["nodes"]
    assert control_plane["role"] == "control-plane" and worker["role"] == "worker"
    (mapping,) = control_plane["extraPortMappings"]
    assert mapping["containerPort"] == VALUES["gateway"]["service"]["nodePort"] == 30080
    assert f"GATEWAY_URL=http://localhost:{mapping['hostPort']}" in SCRIPT.read_text()


def test_the_sample_project_is_in_a_namespace_the_chart_serves():
    project = yaml.safe_load((REPO / "examples" / "project.yaml").read_text())
    assert "namespace" not in project["metadata"] and VALUES["namespaces"] == ["default"]
    assert "PROJECTS=default" in SCRIPT.read_text()


def test_make_has_the_kind_targets():
    makefile = (REPO / "Makefile").read_text()
    assert "kind-up:" in makefile and "deploy/kind/kind.sh up" in makefile
    assert "kind-down:" in makefile and "deploy/kind/kind.sh down" in makefile
