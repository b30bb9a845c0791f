"""Local mode's footprint: seconds from a stopped platform to all services healthy, and each service's idle memory.

`kubevision local up` is timed as a user runs it (the CLI, every port left to the system, in a fresh data folder):
once on the fresh folder, then `--runs` times from stopped, reporting the median. After the last start the platform
idles `--idle-seconds`, then the resident memory of each service's process tree is read, as `kubevision local
status` shows it.

    .venv/bin/python benchmarks/local_footprint.py [--runs 3] [--idle-seconds 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from kubevision.core.settings import LocalSettings
from kubevision.local import memory, services
from kubevision.local.supervisor import LocalPlatform

KUBEVISION = str(Path(sys.executable).parent / "kubevision")
ANY_PORT = ["--s3-port", "0", "--mlflow-port", "0", "--triton-http-port", "0", "--triton-grpc-port", "0",
            "--triton-metrics-port", "0", "--gateway-port", "0"]


def kubevision(*args: str) -> None:
    result = subprocess.run([KUBEVISION, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        sys.exit(f"kubevision {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def timed_up(platform: LocalPlatform) -> tuple[float, dict[str, float], float]:
    """Seconds `kubevision local up` took, seconds until each service first answered its health check, and the
    one-minute load average just before."""
    load = os.getloadavg()[0]
    healthy: dict[str, float] = {}
    done = threading.Event()
    started = time.monotonic()

    def watch() -> None:  # each service's health URL, from the state file that `up` writes as it goes
        while not done.is_set():
            try:
                records = platform.load_state().services
            except (AttributeError, ValueError):  # not written yet, or caught mid-write
                records = {}
            for name, record in records.items():
                if name not in healthy and services.http_ok(record.health_url):
                    healthy[name] = time.monotonic() - started
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        kubevision("local", "up", "--data-dir", str(platform.data_dir), *ANY_PORT)
    finally:
        done.set()
        watcher.join()
    return time.monotonic() - started, healthy, load


def report(label: str, seconds: float, healthy: dict[str, float], load: float) -> None:
    each = ", ".join(f"{name} {at:.1f}" for name, at in sorted(healthy.items(), key=lambda item: item[1]))
    print(f"{label}: {seconds:.1f} s [load {load:.1f}]; healthy at: {each}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="starts from stopped, for the median")
    parser.add_argument("--idle-seconds", type=float, default=60, help="idle time before memory is read")
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="kubevision-footprint-")
    platform = LocalPlatform(LocalSettings(data_dir=data_dir))
    print(f"{os.cpu_count()} CPUs; seconds from the start of `kubevision local up`")
    try:
        report("first start (fresh data folder)", *timed_up(platform))
        starts = []
        for run in range(args.runs):
            kubevision("local", "down", "--data-dir", data_dir)
            seconds, healthy, load = timed_up(platform)
            starts.append(seconds)
            report(f"start {run + 1} from stopped", seconds, healthy, load)
        print(f"median start from stopped: {statistics.median(starts):.1f} s")

        time.sleep(args.idle_seconds)
        print(f"\nidle memory {args.idle_seconds:.0f} s after start (resident, summed over each process tree):")
        total = 0
        for name, record in platform.load_state().services.items():
            pids = memory.process_tree(record.pid)
            size = memory.tree_rss_bytes(record.pid)
            total += size
            print(f"  {name:<11} {memory.megabytes(size):>9}  ({len(pids)} process{'es' if len(pids) > 1 else ''})")
        print(f"  {'total':<11} {memory.megabytes(total):>9}")
    finally:
        platform.down()


if __name__ == "__main__":
    main()
