"""The operator's work queue, as controller-runtime's: a watch event queues the key of each resource it concerns, a
few workers reconcile the queued keys (one key never twice at once), and a key comes back after the retry its
reconcile asked for, or after its resync. No task or timer per resource: a resource that waits costs one entry in a
heap, so 10,000 finished Iterations cost no more than their entries."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import random
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)
Reconcile = Callable[[Key], Awaitable[float | None]]  # seconds until it is wanted again; None: the resource is gone


def jittered(seconds: float) -> float:
    """A resync interval, spread over a fifth more, so that resources started together do not resync together."""
    return seconds * random.uniform(1.0, 1.2)


class WorkQueue:
    def __init__(self, reconcile: Reconcile, resync_seconds: float, workers: int, retry_delay: float) -> None:
        self._reconcile = reconcile
        self._resync = resync_seconds
        self._workers = workers
        self._retry_delay = retry_delay  # after an unforeseen error
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()  # in the queue, not taken yet
        self._running: set[Key] = set()
        self._again: set[Key] = set()  # woken while being reconciled: queued again once done
        self._due: list[tuple[float, Key]] = []  # a heap; an entry whose time is not _due_at's is stale
        self._due_at: dict[Key, float] = {}
        self._earlier = asyncio.Event()  # a key came due before the one the timer waits for

    def add(self, key: Key) -> None:
        """Reconcile `key` soon; a key already queued is queued once."""
        if key in self._running:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def run(self) -> None:
        """The workers and the timer, until cancelled."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self._workers):
                group.create_task(self._work())
            group.create_task(self._wake_when_due())

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._running.add(key)
            delay: float | None
            try:
                delay = await self._reconcile(key)
            except Exception:  # an unforeseen error of this resource alone: logged, tried again
                log.exception("reconciling %s/%s/%s failed", *key)
                delay = self._retry_delay
            finally:
                self._running.discard(key)
            if delay is None:  # gone: nothing is due
                self._due_at.pop(key, None)
            else:
                self._schedule(key, min(delay, jittered(self._resync)))
            if key in self._again:
                self._again.discard(key)
                self.add(key)

    def _schedule(self, key: Key, delay: float) -> None:
        if math.isinf(delay):
            return
        at = asyncio.get_running_loop().time() + delay
        self._due_at[key] = at
        heapq.heappush(self._due, (at, key))
        if self._due[0][0] == at:
            self._earlier.set()

    async def _wake_when_due(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self._due and self._due[0][0] <= loop.time():
                at, key = heapq.heappop(self._due)
                if self._due_at.get(key) == at:
                    del self._due_at[key]
                    self.add(key)
            timeout = self._due[0][0] - loop.time() if self._due else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._earlier.wait(), timeout)
            self._earlier.clear()
