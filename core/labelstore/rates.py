"""Calls counted in fixed windows, for the gateway's rate limits (gateway/rate_limits.py).

A counter (a namespace's kind of call) has one window at a time: a call in a later window starts it again at 1. A
call stamped with an earlier window than the counter's (a replica whose clock lags) is counted in the counter's
window, so no replica resets a window that another has begun. Each counter is one row (or one entry), reused window
after window, so nothing grows with time; a counter no longer used is swept.

- `SharedWindows`: in the label store's database, for gateway replicas that share it (PostgreSQL on a cluster). A
  call is one statement (an upsert that answers the count), on an engine of its own in autocommit: one round trip,
  no BEGIN, COMMIT or pre-ping, and no wait for the disk (synchronous_commit off: a crash may forget the last counts
  of a window, which only lets a few more calls in).
- `LocalWindows`: in the process, for the one gateway of local mode (SQLite), whose calls then never wait on the
  write lock that uploads hold.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import bindparam, case, create_engine, delete
from sqlalchemy.orm import Session

from kubevision.core.labelstore.database import BUSY_TIMEOUT_MS, Database
from kubevision.core.labelstore.store import dialect_insert
from kubevision.core.labelstore.tables import RateWindow

# Connections a replica keeps for counting, and as many more at a peak: a call holds one for a statement of about
# 0.2 ms, so 2 serve thousands of calls a second.
SHARED_POOL = 2
WAIT_SECONDS = 3  # the longest a call waits to connect, or for a connection of the pool


@dataclass(frozen=True)
class Count:
    calls: int  # calls counted in the window, this one included
    ends: int  # when that window ends, epoch seconds


class Windows(Protocol):
    shared: bool  # True: the calls block on I/O (run them off the event loop)

    def hit(self, key: str, started: int, ends: int) -> Count:
        """Count one call of `key` in the window [started, ends) (epoch seconds)."""
        ...

    def sweep(self, before: int) -> None:
        """Forget counters whose window ended before `before`."""
        ...

    def close(self) -> None: ...


class SharedWindows:
    """In the database at `url` (any the label store opens: the tests run it on SQLite too)."""

    shared = True

    def __init__(self, url: str):
        if url.startswith("sqlite"):
            self.engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={
                "timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
        else:
            self.engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=SHARED_POOL,
                                        max_overflow=SHARED_POOL, pool_timeout=WAIT_SECONDS,
                                        # A count lost in a crash costs nothing: commits need not wait for the disk.
                                        connect_args={"connect_timeout": WAIT_SECONDS,
                                                      "options": "-c synchronous_commit=off"})
        insert = dialect_insert(Session(self.engine))
        row = insert(RateWindow).values(key=bindparam("key"), started=bindparam("started"), ends=bindparam("ends"),
                                        calls=1)
        later = row.excluded.started > RateWindow.started
        self._upsert = row.on_conflict_do_update(index_elements=[RateWindow.key], set_={
            "calls": case((later, 1), else_=RateWindow.calls + 1),
            "started": case((later, row.excluded.started), else_=RateWindow.started),
            "ends": case((later, row.excluded.ends), else_=RateWindow.ends),
        }).returning(RateWindow.calls, RateWindow.ends)  # built once: each call only binds its values

    def hit(self, key: str, started: int, ends: int) -> Count:
        with self.engine.connect() as connection:
            calls, window_ends = connection.execute(self._upsert, {"key": key, "started": started, "ends": ends}).one()
        return Count(calls, window_ends)

    def sweep(self, before: int) -> None:
        with self.engine.connect() as connection:
            connection.execute(delete(RateWindow).where(RateWindow.ends < before))

    def close(self) -> None:
        self.engine.dispose()


class LocalWindows:
    shared = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, list[int]] = {}  # key: [started, ends, calls]

    def hit(self, key: str, started: int, ends: int) -> Count:
        with self._lock:
            window = self._windows.get(key)
            if window is None or started > window[0]:
                window = self._windows[key] = [started, ends, 0]
            window[2] += 1
            return Count(window[2], window[1])

    def sweep(self, before: int) -> None:
        with self._lock:
            for key in [k for k, window in self._windows.items() if window[1] < before]:
                del self._windows[key]

    def close(self) -> None:
        pass


def windows_for(database: Database) -> Windows:
    """Counted where every replica of the gateway sees them: in the database they share, unless it is local mode's
    SQLite file, which one gateway process serves."""
    return LocalWindows() if database.sqlite else SharedWindows(database.url)
