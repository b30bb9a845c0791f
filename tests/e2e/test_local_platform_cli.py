"""`kubevision local up / status / down` as a user runs them: real processes, real health checks."""

import io
import os
import re
import signal
import socket
import time
from pathlib import Path

import httpx
from PIL import Image

from kubevision.core.settings import LocalSettings
from kubevision.local import api_keys
from kubevision.local.process import is_running, port_is_free
from kubevision.local.supervisor import S3_CLIENTS, LocalPlatform

ANY_PORT = ["--s3-port", "0", "--mlflow-port", "0", "--triton-http-port", "0", "--triton-grpc-port", "0",
            "--triton-metrics-port", "0", "--gateway-port", "0"]


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_up_status_crash_and_down(tmp_path, kubevision_cli):
    data_dir = str(tmp_path / "local")
    up = kubevision_cli("local", "up", "--data-dir", data_dir, *ANY_PORT)
    assert up.returncode == 0, up.stderr
    for name in ("s3", "mlflow", "triton", "controller", "gateway"):
        assert f"{name} " in up.stdout and f"{name:<10} healthy" in up.stdout
    platform = LocalPlatform(LocalSettings(data_dir=data_dir))
    pids = {name: record.pid for name, record in platform.load_state().services.items()}
    ports = {name: record.ports for name, record in platform.load_state().services.items()}
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
        assert restarted["triton"].ports == ports["triton"]  # where the controller and the gateway knew it
        pids["triton"] = restarted["triton"].pid

        os.killpg(pids["s3"], signal.SIGKILL)  # S3 crashes: it comes back on its port, and nobody else restarts
        assert kubevision_cli("local", "up", "--data-dir", data_dir, *ANY_PORT).returncode == 0
        state = platform.load_state()
        assert state.s3_port == ports["s3"]["s3.port"] and state.services["s3"].pid != pids["s3"]
        others = {name: pid for name, pid in pids.items() if name != "s3"}
        assert {name: record.pid for name, record in state.services.items() if name != "s3"} == others
        pids["s3"] = state.services["s3"].pid

        os.killpg(pids["s3"], signal.SIGKILL)  # again, and its port is taken meanwhile: it must move
        deadline = time.monotonic() + 30
        while not port_is_free(state.s3_port) and time.monotonic() < deadline:  # the kernel closes its sockets
            time.sleep(0.1)
        with socket.socket() as taken:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            taken.bind(("127.0.0.1", state.s3_port))
            taken.listen()
            moved = kubevision_cli("local", "up", "--data-dir", data_dir, *ANY_PORT)
        assert moved.returncode == 0 and moved.stdout.count("healthy") == 5, moved.stdout + moved.stderr
        state = platform.load_state()
        assert state.s3_port != ports["s3"]["s3.port"]
        for name in S3_CLIENTS:  # each read S3's old address when it started: restarted against the new one
            assert state.services[name].pid != pids[name] and state.services[name].s3_port == state.s3_port, name
        assert state.services["controller"].pid == pids["controller"]  # it reads the address at each pass
        pids.update({name: record.pid for name, record in state.services.items()})
        training = f"{state.services['gateway'].endpoints['api']}/customvision/v3.3/training"
        key = {"Training-Key": api_keys.ensure(Path(data_dir), "default")["trainingKey"]}
        project = httpx.post(f"{training}/projects", params={"name": "after the move"}, headers=key, timeout=60)
        stored = httpx.post(f"{training}/projects/{project.json()['id']}/images", content=png(), headers={
            **key, "Content-Type": "application/octet-stream"}, timeout=60)
        assert stored.json()["images"][0]["status"] == "OK", stored.text  # through S3 at its new address
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
