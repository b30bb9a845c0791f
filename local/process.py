"""Child processes of local mode: started detached, probed until healthy, stopped by their own pid.

A pid alone does not name a process for long: after a reboot, or once enough processes came and went, another
process has it. Each started process is recorded with its identity (the boot and its start time), and a process
whose identity differs is not ours: never taken for alive, never signalled."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class ServiceError(RuntimeError):
    """A local service could not be started or found; the message says which and why."""


EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
LISTEN_PORTS_FROM = 20000  # the low end of the ports chosen for servers, below Linux's ephemeral range
_handed_out: set[int] = set()  # chosen by this process and maybe not bound yet: never chosen twice


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range where it can: a port from that range (what binding to
    port 0 gives) may become an outgoing connection's source port before the server that was to listen on it
    starts, and the server then fails with "address already in use"."""
    first_ephemeral = int(EPHEMERAL_PORTS.read_text().split()[0]) if EPHEMERAL_PORTS.is_file() else 0
    if first_ephemeral > LISTEN_PORTS_FROM:
        for port in random.sample(range(LISTEN_PORTS_FROM, first_ephemeral), 50):
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bindable(port: int) -> bool:
    """Free even of connections in TIME_WAIT: a fresh choice need not be shared with the past."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_is_free(port: int) -> bool:
    """Whether a server can listen on the port now. As the servers do, the check reuses an address whose last
    connections are still in TIME_WAIT (as they are for a minute after `down`); a listening socket still refuses."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(requested: int, what: str) -> int:
    """The requested port if it is free, any free port for 0, or a ServiceError naming the busy one."""
    if requested == 0:
        return free_port()
    if not port_is_free(requested):
        raise ServiceError(f"port {requested} for {what} is busy; choose another or 0 for any free port")
    return requested


EXIT_STATUS = "exit-status"


def log_tail(path: Path, lines: int = 20) -> str:
    if not path.is_file():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def spawn_recording_exit(command: list[str], log_path: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """spawn(), through a shell that writes the command's exit status to `cwd`/exit-status when it ends: whoever
    observes it later (a controller restarted since, which is not its parent) can still tell how it ended."""
    return spawn(["/bin/sh", "-c", f'"$@"; echo $? > {EXIT_STATUS}', "kubevision-supervised", *command],
                 log_path, env, cwd)


def how_it_ended(folder: Path) -> str:
    """How a command spawn_recording_exit() started in `folder` ended, in words."""
    try:
        status = int((folder / EXIT_STATUS).read_text())
    except (OSError, ValueError):
        return "it ended without an exit status (its process group was stopped)"
    if status > 128:  # the shell's way of saying a signal ended it
        number = status - 128
        name = signal.Signals(number).name if number in signal.valid_signals() else "unknown"
        return f"it was killed by signal {number} ({name})"
    return f"it exited with status {status}"


def spawn(command: list[str], log_path: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """Start a process in its own session, so that it outlives the CLI and can be stopped as a group."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )


def identity(pid: int) -> str | None:
    """The boot's id and the process's start time (in clock ticks since boot): unique to one process."""
    try:
        started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, IndexError):
        return None
    return f"{boot}/{started}"


def is_ours(pid: int, recorded: str | None) -> bool:
    """Whether `pid` is still the process recorded with `recorded` (a record without one is taken on trust)."""
    return recorded is None or identity(pid) == recorded


def recorded(folder: Path) -> tuple[int, str | None]:
    """A training folder's trainer: its pid and identity, as the local controller recorded them in `pid`."""
    pid, _, identity_ = (folder / "pid").read_text().strip().partition(" ")
    return int(pid), identity_ or None


def is_running(pid: int, recorded: str | None = None) -> bool:
    """Whether the process is alive, and, given its recorded identity, still the same process."""
    if not is_ours(pid, recorded):
        return False
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # our own child: reap it if it died
        if reaped == pid:
            return False
    except ChildProcessError:
        pass  # started by another kubevision process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) not in {"Z", "X"}


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def wait_healthy(
    name: str, pid: int, probe: Callable[[], bool], log_path: Path, timeout: float
) -> float:
    """Seconds until `probe` answers True; ServiceError with the log's tail if the process dies or time runs out."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not is_running(pid):
            raise ServiceError(f"{name} exited while starting; last lines of {log_path}:\n{log_tail(log_path)}")
        if probe():
            return time.monotonic() - start
        time.sleep(0.25)
    raise ServiceError(f"{name} was not healthy after {timeout:.0f} s; last lines of {log_path}:\n{log_tail(log_path)}")


def stop(pid: int, recorded: str | None = None, grace: float = 15.0) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL what is left after `grace` seconds; nothing if `pid` is
    no longer the process recorded."""
    if not is_ours(pid, recorded):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not is_running(pid) and not _group_alive(pid):
                return
            time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(_pgid_of(p) == pgid for p in os.listdir("/proc") if p.isdigit() and _state(int(p)) not in {"Z", "X"})


def _pgid_of(pid: str) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None
