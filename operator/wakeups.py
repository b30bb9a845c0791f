"""Wake-ups for the operator's reconcile loops: each resource's loop sleeps until something it watches changes, or
until its resync is due. A watch event of an owned object (a Job, a pod, a Deployment) wakes its owner's loop."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator

Key = tuple[str, str, str]  # (kind, namespace, name)


def jittered(seconds: float) -> float:
    """A resync interval, spread over a fifth more, so that resources started together do not resync together."""
    return seconds * random.uniform(1.0, 1.2)


class Wakeups:
    def __init__(self) -> None:
        self._flags: dict[Key, asyncio.Event] = {}

    @contextlib.contextmanager
    def registered(self, key: Key) -> Iterator[asyncio.Event]:
        """The flag of one resource's loop, for as long as the loop runs."""
        flag = self._flags[key] = asyncio.Event()
        try:
            yield flag
        finally:
            if self._flags.get(key) is flag:
                del self._flags[key]

    def wake(self, key: Key) -> None:
        """Have the loop reconcile again now; a resource with no loop (not seen yet, deleted) is no one's concern."""
        if (flag := self._flags.get(key)) is not None:
            flag.set()


async def sleep(flag: asyncio.Event, seconds: float) -> None:
    """Until the flag is set or `seconds` have passed; the flag is cleared for the next sleep."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(flag.wait(), seconds)
    flag.clear()
