"""`kubevision local up / status / down` as a user runs them: real processes, real health checks."""

import os
import re
import signal
import socket

from kubevision.core.settings import LocalSettings
from kubevision.local.process import is_running
from kubevision.local.supervisor import LocalPlatform

ANY_PORT = ["--s3-port", "0", "--mlflow-port", "0", "--triton-http-port", "0", "--triton-grpc-port", "0",
            "--triton-metrics-port", "0", "--gateway-port", "0"]


def test_up_status_crash_and_down(tmp_path, kubevision_cli):
    data_dir = str(tmp_path / "local")
    up = kubevision_cli("local", "up", "--data-dir", data_dir, *ANY_PORT)
    assert up.returncode == 0, up.stderr
    for name in ("s3", "mlflow", "triton", "controller", "gateway"):
        assert f"{name} " in up.stdout and f"{name:<10} healthy" in up.stdout
    platform = LocalPlatform(LocalSettings(data_dir=data_dir))
    pids = {name: record.pid for name, record in platform.load_state().services.items()}
    try:
        status = kubevision_cli("local", "status", "--data-dir", data_dir)
        assert status.returncode == 0 and status.stdout.count("healthy") == 5
        memory = {line.split()[0]: int(line.split()[2]) for line in status.stdout.splitlines()
                  if re.match(r"^\w+ +healthy +\d+ MiB ", line)}  # each service's memory beside its health
        assert set(memory) == {"s3", "mlflow", "triton", "controller", "gateway"}, status.stdout
        assert min(memory.values()) > 0, status.stdout

        os.kill(pids["triton"], signal.SIGKILL)  # a crash is reported, with the log's tail
        status = kubevision_cli("local", "status", "--data-dir", data_dir)
        assert status.returncode == 1
        assert "triton     crashed" in status.stdout and "last lines of" in status.stdout

        again = kubevision_cli("local", "up", "--data-dir", data_dir, *ANY_PORT)  # restarts only what is down
        assert again.returncode == 0, again.stderr
        restarted = platform.load_state().services
        assert restarted["s3"].pid == pids["s3"] and restarted["triton"].pid != pids["triton"]
        pids["triton"] = restarted["triton"].pid
    finally:
        down = kubevision_cli("local", "down", "--data-dir", data_dir)
    assert down.returncode == 0
    assert not [name for name, pid in pids.items() if is_running(pid)]
    status = kubevision_cli("local", "status", "--data-dir", data_dir)
    assert status.returncode == 1 and status.stdout.count("stopped") == 5


def test_a_busy_port_is_named_and_nothing_is_left_running(tmp_path, kubevision_cli):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = kubevision_cli("local", "up", "--data-dir", str(tmp_path), *ANY_PORT, "--mlflow-port", str(port))
    assert result.returncode == 1
    assert f"error: port {port} for MLflow is busy" in result.stderr
    state = LocalPlatform(LocalSettings(data_dir=tmp_path)).load_state()
    assert state.services == {}  # S3, started first, was stopped again


def test_a_wrong_flag_is_one_clear_error(kubevision_cli):
    result = kubevision_cli("local", "up", "--s3-prt", "9000")
    assert result.returncode == 1  # as kubectl: 1 for any error
    assert "Error: No such option: --s3-prt" in result.stderr
