"""Errors of local services name the service and show why."""

import socket
import sys

import pytest

from kubevision.core.local import process, services


def test_a_service_that_dies_while_starting_shows_its_log(tmp_path):
    log = tmp_path / "broken.log"
    child = process.spawn([sys.executable, "-u", "-c", "print('cannot open database'); raise SystemExit(3)"],
                          log, env={}, cwd=tmp_path)
    with pytest.raises(process.ServiceError, match="broken exited while starting") as caught:
        process.wait_healthy("broken", child.pid, lambda: False, log, timeout=30)
    assert "cannot open database" in str(caught.value)


def test_a_service_that_never_answers_times_out_with_its_log(tmp_path):
    log = tmp_path / "slow.log"
    child = process.spawn([sys.executable, "-u", "-c", "print('still booting'); import time; time.sleep(60)"],
                          log, env={}, cwd=tmp_path)
    try:
        with pytest.raises(process.ServiceError, match="slow was not healthy after 1 s") as caught:
            process.wait_healthy("slow", child.pid, lambda: False, log, timeout=1)
        assert "still booting" in str(caught.value)
    finally:
        process.stop(child.pid)
    assert not process.is_running(child.pid)


def test_stop_ends_the_whole_process_group(tmp_path):
    grandchild = "import time; time.sleep(60)"
    script = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(60)"
    child = process.spawn([sys.executable, "-c", script], tmp_path / "log", env={}, cwd=tmp_path)
    process.stop(child.pid, grace=5)
    assert not process._group_alive(child.pid)


def test_a_missing_binary_says_how_to_install_it():
    with pytest.raises(process.ServiceError, match=r"no-such-server not found; install it with: pip install"):
        services.find_binary("no-such-server", "some-package")


def test_a_busy_port_is_refused_and_zero_means_any():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        with pytest.raises(process.ServiceError, match=f"port {port} for S3 is busy"):
            process.pick_port(port, "S3")
    assert process.pick_port(0, "S3") > 0
