"""Resident memory of a local service: its process and every process it started, read from /proc."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live process."""
    parents = {}
    for entry in os.listdir(PROC):
        if entry.isdigit():
            try:
                fields = (PROC / entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone while we looked
            parents[int(entry)] = int(fields[1])
    return parents


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn workers, Triton's python backend stubs, ...)."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def rss_bytes(pid: int) -> int:
    """Resident set size of one process; 0 if it is gone."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a service: the sum over its process tree (shared pages counted in each process, as
    `ps` and `top` show them)."""
    return sum(rss_bytes(p) for p in process_tree(pid))


def megabytes(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"
