"""Rate limits per key, as Azure's S0 tier sets them: each namespace's calls of one kind counted in fixed windows of
whole seconds against its limits (core/limits.py), in windows every gateway replica shares
(core/labelstore/rates.py). A call over the limit is refused before its body is read (gateway/http/guard.py).

A namespace has one key of each kind, so its counters are named after the namespace and the kind of call: a rotated
key keeps the count of the window it is rotated in, and one namespace's calls never count against another's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from kubevision.core.labelstore.rates import LocalWindows, Windows
from kubevision.core.limits import LimitsSource

log = logging.getLogger(__name__)
SWEEP_SECONDS = 60  # how often a replica forgets counters whose window has ended
AWAY_SECONDS = 1  # while the database is away, how often a replica tries it again
KEEP_SECONDS = 60  # how long an ended window is kept before it is swept


class CallKind(StrEnum):
    """What a call counts against: the field of core.limits.Limits that limits it."""

    STORED_PREDICTION = "stored_predictions_per_second"
    PREDICTION = "predictions_per_second"  # the /nostore routes
    TRAIN = "train_calls_per_second"  # train_project
    TRAINING = "training_calls_per_second"  # every other training call


@dataclass(frozen=True)
class Window:
    seconds: int
    calls: int


def window_of(per_second: float) -> Window:
    """Whole calls in windows of whole seconds: one second, or 1/limit seconds rounded up for a limit under one call
    a second (0.5 a second: one call in 2 s)."""
    seconds = 1 if per_second >= 1 else math.ceil(1 / per_second)
    return Window(seconds, max(1, math.floor(per_second * seconds)))


class RateLimiter:
    """Admits a namespace's call, or says how many seconds to wait. Counts in-process until `use` hands it the
    windows of the database the gateway opens."""

    def __init__(self, limits: LimitsSource, clock: Callable[[], float] = time.time):
        self.limits = limits
        self.clock = clock
        self.windows: Windows = LocalWindows()
        self._full: dict[str, int] = {}  # counter -> end of the window it has filled: refused without counting
        self._away_until = 0.0  # the database failed: calls go on uncounted until then

    def use(self, windows: Windows) -> None:
        self.windows = windows

    async def admit(self, namespace: str, kind: CallKind) -> int | None:
        """None: the call may go on. Else the seconds until its window ends (Retry-After, at least 1)."""
        per_second = getattr(self.limits.for_namespace(namespace), kind.value)
        if per_second is None:
            return None
        window = window_of(per_second)
        now = self.clock()
        key = f"{namespace}/{kind.value}/{window.seconds}"
        full_until = self._full.get(key)
        if full_until is not None and now < full_until:
            return retry_after(full_until, now)
        if now < self._away_until:
            return None
        started = int(now) // window.seconds * window.seconds
        try:
            count = await self._call(self.windows.hit, key, started, started + window.seconds)
        except Exception:  # the database is away: calls go on unlimited rather than fail (or wait) with it
            if not self._away_until:
                log.exception("counting a call for the rate limits; calls are not limited until it works again")
            self._away_until = now + AWAY_SECONDS
            return None
        self._away_until = 0.0
        if count.calls <= window.calls:
            return None
        self._full[key] = count.ends  # this replica refuses the rest of the window without asking the database
        return retry_after(count.ends, now)

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = self.clock()
            self._full = {key: ends for key, ends in self._full.items() if ends > now}
            try:
                await self._call(self.windows.sweep, int(now) - KEEP_SECONDS)
            except Exception:
                log.exception("sweeping ended rate windows")

    async def _call(self, method, *args):
        """Off the event loop when the windows are in the database."""
        return await asyncio.to_thread(method, *args) if self.windows.shared else method(*args)


def retry_after(ends: float, now: float) -> int:
    return max(1, math.ceil(ends - now))
