"""Errors of local services name the service and show why; a pid that is no longer ours is left alone."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubevision.core.settings import LocalSettings
from kubevision.local import process, services
from kubevision.local.supervisor import LocalPlatform, PlatformState, ServiceRecord
from kubevision.local.trainings import LocalTrainings


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


def test_a_port_whose_server_stopped_is_free_again_at_once_but_a_listening_one_is_not():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with pytest.raises(process.ServiceError, match=f"port {port} for S3 is busy"):
            process.pick_port(port, "S3")
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server's side closes first: its address stays in TIME_WAIT, as after `down`
        client.close()
    time_wait = "06"  # the kernel's TCP state numbers, as /proc/net/tcp lists them
    assert any(fields[1].endswith(f":{port:04X}") and fields[3] == time_wait
               for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]))
    assert process.pick_port(port, "S3") == port


@pytest.fixture
def unrelated_process():
    """A process that is not ours, holding a pid a record of ours names (after a reboot, pids are reused)."""
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield other
    other.kill()
    other.wait()


STALE = "a-boot-before-this-one/4242"


def test_a_reused_pid_is_never_taken_for_ours_nor_signalled(unrelated_process):
    pid = unrelated_process.pid
    assert process.is_running(pid, process.identity(pid)) and process.identity(pid) != STALE
    assert not process.is_running(pid, STALE)
    process.stop(pid, STALE, grace=1)
    assert unrelated_process.poll() is None


def test_a_service_whose_pid_was_reused_is_crashed_and_down_leaves_the_process_alone(unrelated_process, tmp_path):
    platform = LocalPlatform(LocalSettings(data_dir=tmp_path))
    record = ServiceRecord(name="mlflow", pid=unrelated_process.pid, identity=STALE, log=tmp_path / "mlflow.log",
                           health_url="http://127.0.0.1:9/health", ports={}, endpoints={})
    platform.state_path.write_text(PlatformState(access_key="k", secret_key="s", s3_port=9,
                                                 services={"mlflow": record}).model_dump_json())
    assert {s.name: s.state for s in platform.status()}["mlflow"] == "crashed"
    assert platform.down() == []
    time.sleep(0.2)
    assert unrelated_process.poll() is None


def test_a_training_past_its_deadline_whose_pid_was_reused_is_not_killed(unrelated_process, tmp_path):
    platform = LocalPlatform(LocalSettings(data_dir=tmp_path))
    platform.state_path.write_text(PlatformState(access_key="k", secret_key="s", s3_port=9).model_dump_json())
    folder = tmp_path / "trainings" / "pets-1-0a1b2c3d"
    folder.mkdir(parents=True)
    (folder / "pid").write_text(f"{unrelated_process.pid} {STALE}")
    (folder / "deadline").write_text(str(time.time() - 60))
    (folder / "trainer.log").write_text("killed by a reboot\n")
    trainings = LocalTrainings(tmp_path / "trainings", platform)
    observed = trainings.observe("ml", "pets-1-0a1b2c3d")
    assert observed.failed and not observed.active and "killed by a reboot" in observed.failure_message
    trainings.stop("pets-1-0a1b2c3d")
    time.sleep(0.2)
    assert unrelated_process.poll() is None


def test_down_stops_running_trainings_first_and_leaves_a_reused_pid_alone(unrelated_process, tmp_path):
    platform = LocalPlatform(LocalSettings(data_dir=tmp_path))
    trainer = process.spawn([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "log", env={},
                            cwd=tmp_path)
    for name, pid, identity in (("pets-1", trainer.pid, process.identity(trainer.pid)),
                                ("pets-2", unrelated_process.pid, STALE)):
        (platform.trainings_dir / name).mkdir(parents=True)
        (platform.trainings_dir / name / "pid").write_text(f"{pid} {identity}")
    assert platform.down() == ["training pets-1"]
    assert trainer.wait(timeout=20) is not None
    assert unrelated_process.poll() is None


def test_a_free_port_is_chosen_below_the_ephemeral_range_and_never_twice():
    """Ports the kernel hands out as outgoing connections' source ports would race the server meant to listen."""
    first_ephemeral = int(process.EPHEMERAL_PORTS.read_text().split()[0])
    ports = [process.free_port() for _ in range(200)]
    assert all(process.LISTEN_PORTS_FROM <= port < first_ephemeral for port in ports)
    assert len(set(ports)) == len(ports)
    assert all(process.port_is_free(port) for port in ports)


def test_how_a_supervised_command_ended_is_known_to_whoever_looks_later(tmp_path):
    """The local trainer's exit status or signal, kept beside it: a controller that was restarted meanwhile is not
    its parent, and could not ask the kernel."""
    folders = {name: tmp_path / name for name in ("exited", "killed", "stopped")}
    for folder in folders.values():
        folder.mkdir()
    exited = process.spawn_recording_exit([sys.executable, "-c", "raise SystemExit(3)"], folders["exited"] / "log",
                                          env={}, cwd=folders["exited"])
    sleeping = [sys.executable, "-c", "import time; time.sleep(60)"]
    killed = process.spawn_recording_exit(sleeping, folders["killed"] / "log", env={}, cwd=folders["killed"])
    stopped = process.spawn_recording_exit(sleeping, folders["stopped"] / "log", env={}, cwd=folders["stopped"])
    children = Path(f"/proc/{killed.pid}/task/{killed.pid}/children")
    deadline = time.monotonic() + 10
    while not children.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.05)
    subprocess.run(["kill", "-9", children.read_text().split()[0]], check=True)  # the command, not its shell
    process.stop(stopped.pid, grace=5)
    for child in (exited, killed, stopped):
        child.wait(timeout=30)
    assert process.how_it_ended(folders["exited"]) == "it exited with status 3"
    assert process.how_it_ended(folders["killed"]) == "it was killed by signal 9 (SIGKILL)"
    assert process.how_it_ended(folders["stopped"]).startswith("it ended without an exit status")
