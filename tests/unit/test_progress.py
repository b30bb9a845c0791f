"""Progress output: a bar with rate and ETA on a terminal, plain lines (the last always) anywhere else."""

from __future__ import annotations

import io

from kubevision.cli import progress as progress_module
from kubevision.cli.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_with_count_rate_and_eta(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress("uploading", 3, "files") as advance:
        for _ in range(3):
            advance(1)
    shown = terminal.getvalue()
    assert "\x1b[" in shown  # drawn in place with escape codes
    last = shown.rstrip().rsplit("\r", 1)[-1]
    assert "uploading" in last and "3/3" in last and "files/s" in last and "0:00:00" in last


def test_elsewhere_plain_lines_at_most_every_few_seconds_and_the_last(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    clock = iter([0.0, 1.0, 2.0, 10.0, 11.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    with progress("uploading", 40, "files") as advance:
        for _ in range(4):
            advance(10)
    assert log.getvalue().splitlines() == [
        "uploading: 30/40 files (3.0 files/s, 3 s left)",
        "uploading: 40/40 files (3.6 files/s)",
    ]
