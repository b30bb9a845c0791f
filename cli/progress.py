"""Progress of a long command on stderr: a bar with rate and ETA on a terminal (rich), plain lines otherwise, so
that a log or a CI job keeps one readable line now and then instead of redrawn bars."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

PLAIN_EVERY_SECONDS = 5.0  # how often a plain line is printed at most (the last one always is)


class _Rate(ProgressColumn):
    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} {self.unit}/s" if task.speed else f"- {self.unit}/s")


@contextlib.contextmanager
def progress(description: str, total: int, unit: str) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`, to call as `n` more of the `total` are done."""
    if sys.stderr.isatty():
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(unit),
                      TimeRemainingColumn(), console=Console(stderr=True)) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
        return
    start = last = time.monotonic()
    done = 0

    def advance(n: int) -> None:
        nonlocal done, last
        done += n
        moment = time.monotonic()
        if done < total and moment - last < PLAIN_EVERY_SECONDS:
            return
        last = moment
        rate = done / max(moment - start, 1e-3)
        left = f", {(total - done) / rate:.0f} s left" if done < total else ""
        print(f"{description}: {done}/{total} {unit} ({rate:.1f} {unit}/s{left})", file=sys.stderr, flush=True)

    yield advance
