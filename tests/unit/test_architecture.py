"""The layer contracts of docs/architecture.md, checked by import-linter over the product's folders.

import-linter follows regular packages only, and operator/ carries no __init__.py so that it never shadows the
standard library's `operator`. So the check runs over a copy of the sources laid out as the installed package
(`kubevision/<folder>/...`, an __init__.py in every folder), with the contracts of pyproject.toml.
"""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """The product's modules under tmp_path/kubevision, as the installed package names them."""
    root = tmp_path / "kubevision"
    for package, folder in PACKAGE_DIRS.items():
        for module in (REPO / folder).rglob("*.py"):
            target = root / package.removeprefix("kubevision.") / module.relative_to(REPO / folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(module, target)
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return tmp_path


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), str(REPO / "pyproject.toml"), "--no-cache"], cwd=tree,
                          capture_output=True, text=True)


def test_every_contract_is_kept(sources):
    result = lint_imports(sources)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


LAYERS = "Layers: cli > local > (operator | trainer | gateway, independent) > core"
INSIDE_CORE = "Inside core: (labelstore | serving) > storage > api"
FRAMEWORKS = "Core imports no framework of a component"
GATEWAY = "Inside the gateway: main > http > services > backends"
NO_HTTP = "The gateway's services and backends know no HTTP framework"


@pytest.mark.parametrize(("module", "imported", "contract"), [
    ("operator/reconcile.py", "kubevision.gateway.main", LAYERS),  # components are independent
    ("trainer/entrypoint.py", "kubevision.operator.objects", LAYERS),
    ("gateway/main.py", "kubevision.local.store", LAYERS),  # nothing below local mode imports it
    ("operator/cluster.py", "kubevision.cli.main", LAYERS),
    ("local/supervisor.py", "kubevision.cli.output", LAYERS),
    ("core/storage.py", "kubevision.operator.reconcile", LAYERS),
    ("core/api.py", "kubevision.core.labelstore.store", INSIDE_CORE),
    ("core/storage.py", "kubevision.core.serving.classification", INSIDE_CORE),
    ("core/serving/classification.py", "torch", FRAMEWORKS),
    ("core/labelstore/store.py", "fastapi", FRAMEWORKS),
    ("gateway/services/images.py", "kubevision.gateway.http.uploads", GATEWAY),
    ("gateway/backends/triton.py", "kubevision.gateway.services.predictions", GATEWAY),
    ("gateway/services/projects.py", "fastapi", NO_HTTP),
    ("gateway/errors.py", "starlette.exceptions", NO_HTTP),  # every service raises these errors
])
def test_a_forbidden_import_breaks_a_contract(sources, module, imported, contract):
    importer = sources / "kubevision" / module
    importer.write_text(importer.read_text() + f"\nimport {imported}\n")
    result = lint_imports(sources)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in " ".join(result.stdout.split())  # the report wraps long lines
