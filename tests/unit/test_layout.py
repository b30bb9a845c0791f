"""The package layout: component folders install under `kubevision`, and none shadows the standard library."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


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
    assert origin.endswith("kubevision/core/api.py")
