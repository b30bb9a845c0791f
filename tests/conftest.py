"""Test layers follow folders: tests/unit (marker `unit`), tests/services (`services`), tests/e2e (`e2e`).
`make test-unit` runs the fast layer alone; `make test` runs all three."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from limits_files import UNLIMITED_RATES, write_limits

from kubevision.core.limits import LOCAL_FILE
from kubevision.core.settings import LocalSettings
from kubevision.local.supervisor import LocalPlatform

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("unit", "services", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = Path(item.fspath).relative_to(REPO / "tests").parts[0]
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))


def local_settings(data_dir: Path) -> LocalSettings:
    """Every port left to the system, so a test run never collides with a user's platform or another run."""
    return LocalSettings(
        data_dir=data_dir, s3_port=0, mlflow_port=0, triton_http_port=0, triton_grpc_port=0, triton_metrics_port=0,
        gateway_port=0,
    )


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory):
    """The real local S3, MLflow and Triton, started once per test run by the project's own code. Its gateway has
    no per-second limits: the tests that use it call the API back to back, many times over Azure's 10 a second."""
    local = LocalPlatform(local_settings(tmp_path_factory.mktemp("platform")))
    write_limits(local.data_dir / LOCAL_FILE, UNLIMITED_RATES)
    try:
        local.up()
        yield local
    finally:
        local.down()


@pytest.fixture
def kubevision_cli():
    """Runs the installed `kubevision` command as a user would; returns the CompletedProcess."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        command = [str(Path(sys.executable).parent / "kubevision"), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    return run


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server (Debian's package), started once per test run."""
    from postgres_server import PostgresServer

    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A fresh, empty label store database: each test that takes it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'labels.db'}"
    return request.getfixturevalue("postgres").new_database()
