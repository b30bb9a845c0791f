"""The images, checked without docker: hadolint finds nothing in images/Dockerfile; every image the chart runs is a
target built on the shared base, as the unprivileged user, from its own extra only; the base is pinned."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "images" / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
TARGETS = ["operator", "gateway", "trainer", "mlflow"]


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(HADOLINT), "--failure-threshold", "style", str(path)], capture_output=True,
                          text=True, timeout=60)


def stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    result: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if match := re.match(r"FROM (\S+) AS (\S+)$", line):
            current = result.setdefault(match[2], [f"FROM {match[1]}"])
        elif line and not line.startswith("#") and result:
            current.append(line)
    return result


def test_hadolint_finds_nothing():
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_find_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    result = hadolint(bad)
    assert result.returncode == 1 and "DL3007" in result.stdout and "DL3013" in result.stdout


def test_the_base_image_is_pinned():
    (python_image,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", python_image)


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_is_the_shared_base_with_its_own_environment_only(target):
    final = stages()[target]
    assert final[0] == "FROM base"
    copies = [line for line in final if line.startswith(("COPY", "ADD", "RUN"))]
    assert copies == [f"COPY --from=build-{target} /opt/venv /opt/venv"], "nothing but the virtualenv"
    assert "USER 10001:10001" in final and final.index("USER 10001:10001") > final.index(copies[0])
    assert any(line.startswith("ENTRYPOINT [") for line in final)


@pytest.mark.parametrize("target", TARGETS)
def test_each_build_installs_one_extra_at_the_pinned_versions(target):
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    build = stages()[f"build-{target}"]
    (install,) = [line for line in build if line.startswith("RUN pip install")]
    (extra,) = re.findall(r"'\.\[([\w-]+)\]'", install)
    assert extra in extras and "-c constraints.txt" in install and "--no-cache-dir" in install


def test_no_secret_is_baked_in():
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith(("ARG", "ENV")):
            assert not re.search(r"(?i)secret|password|token|_key\b", line), line


def test_the_chart_runs_exactly_these_images_at_the_project_version():
    chart = yaml.safe_load((REPO / "charts" / "kubevision" / "Chart.yaml").read_text())
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["appVersion"] == version
    templates = "".join(p.read_text() for p in (REPO / "charts" / "kubevision" / "templates").rglob("*.yaml"))
    assert sorted(set(re.findall(r'"kubevision.image" \(dict "ctx" \. "name" "(\w+)"\)', templates))) == sorted(
        TARGETS)
    makefile = (REPO / "Makefile").read_text()
    assert f"IMAGES := {' '.join(TARGETS)}" in makefile


def test_the_build_context_holds_only_what_the_images_copy():
    """.dockerignore leaves everything out (the virtualenv, .git, test data) but the sources the stages copy."""
    rules = [r for r in (REPO / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*"
    copied = {path for lines in stages().values() for line in lines if line.startswith("COPY ") and "--from" not in line
              for path in line.split()[1:-1]}
    assert copied and {f"!{path}" for path in copied} == {r for r in rules if r.startswith("!")}
