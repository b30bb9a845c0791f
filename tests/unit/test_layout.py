"""The package layout: component folders install under `kubevision`, and none shadows the standard library."""

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
PACKAGE_DIRS = SETUPTOOLS["package-dir"]


def run_python(code: str) -> str:
    # -S: nothing imported by site beforehand, so a shadowing `operator` folder would win if it could.
    result = subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_operator_folder_does_not_shadow_the_standard_library():
    assert run_python("import operator; print(operator.__file__)") == str(Path(__import__("operator").__file__))


def test_the_repository_root_holds_no_top_level_kubevision_package():
    assert not (REPO / "kubevision").exists()
    assert not (REPO / "operator" / "__init__.py").exists()


def test_kubevision_core_imports_from_the_installed_package_in_a_checkout():
    origin = subprocess.run([sys.executable, "-c", "import kubevision.core.api as a; print(a.__file__)"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    assert origin == str(REPO / "core" / "api.py")  # the editable install maps the package to its folder


def test_a_new_module_imports_without_reinstalling(tmp_path):
    module = REPO / "core" / f"_probe_{tmp_path.name}.py"
    module.write_text("ANSWER = 42\n")
    try:
        code = f"import kubevision.core.{module.stem} as m; print(m.ANSWER)"
        assert subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip() == "42"
    finally:
        module.unlink()


def _packages_on_disk() -> set[str]:
    """Every folder of Python modules under a mapped folder (operator/ and others are namespace packages)."""
    found = set()
    for package, folder in PACKAGE_DIRS.items():
        for module in (REPO / folder).rglob("*.py"):
            relative = module.parent.relative_to(REPO / folder).parts
            found.add(".".join((package, *relative)))
    return found


def test_every_package_folder_is_listed_for_wheels():
    assert set(SETUPTOOLS["packages"]) == _packages_on_disk()
