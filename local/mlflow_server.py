"""The MLflow tracking server as KubeVision runs it: one process, one worker, no job execution.

`mlflow server` prepares its stores, then starts uvicorn as a child process and waits for it: two interpreters for
one server, and MLflow imported twice before the server answers. Started through this module, the prepared process
runs uvicorn itself, so one interpreter remains, under the pid that was started, and it answers in about half the
time. Local mode uses it; a container running MLflow for KubeVision can use the same command, environment and flags.

    python -m kubevision.local.mlflow_server --host ... --port ... --backend-store-uri ... --artifacts-destination ...
"""

from __future__ import annotations

import os
import sys

# What KubeVision does not use: MLflow's job runner and its huey consumers (one process per job kind, about 250 MB
# each) serve MLflow's GenAI features; KubeVision runs no MLflow jobs. Telemetry is off as everywhere else.
SERVER_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}


def server_args(host: str, port: int, backend_store_uri: str, artifacts_destination: str) -> list[str]:
    """`mlflow server` options: runs and the registry in `backend_store_uri`, artifacts proxied to
    `artifacts_destination`, one uvicorn worker (KubeVision's traffic is a few requests a training)."""
    return [
        "--host", host, "--port", str(port), "--workers", "1",
        "--backend-store-uri", backend_store_uri, "--artifacts-destination", artifacts_destination,
    ]


def command(host: str, port: int, backend_store_uri: str, artifacts_destination: str) -> list[str]:
    return [sys.executable, "-m", __name__, *server_args(host, port, backend_store_uri, artifacts_destination)]


def _serve(full_command: list[str], extra_env: dict[str, str] | None = None, **_: object) -> None:
    """Stands in for MLflow's `_exec_cmd`, the one place `mlflow server` starts its server: the uvicorn command it
    built runs here, in this process, with the environment it was given."""
    os.environ.update(extra_env or {})
    from uvicorn.main import main as uvicorn

    uvicorn.main(args=full_command[full_command.index("uvicorn") + 1:], prog_name="uvicorn")


def main() -> None:
    os.environ.update(SERVER_ENV)  # before MLflow reads its settings
    import mlflow.server
    from mlflow.cli import cli

    mlflow.server._exec_cmd = _serve
    cli.main(args=["server", *sys.argv[1:]], prog_name="mlflow")


if __name__ == "__main__":
    main()
