"""The rate limits' windows (core/labelstore/rates.py), in the label store's database (SQLite and a real PostgreSQL)
and in the process: every call counted once under concurrent callers, a later window starting again at 1, a caller
whose clock lags counted in the window already begun, and ended windows swept, so nothing grows with time."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from kubevision.core.labelstore import tables
from kubevision.core.labelstore.database import open_database
from kubevision.core.labelstore.rates import LocalWindows, SharedWindows, windows_for


@pytest.fixture(params=["in process", "sqlite", "postgresql"])
def windows(request, tmp_path):
    if request.param == "in process":
        yield LocalWindows()
        return
    url = f"sqlite:///{tmp_path / 'labels.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("postgres").new_database()
    database = open_database(url)  # the schema, as the gateway opens it
    shared = SharedWindows(url)
    yield shared
    shared.close()
    database.dispose()


def test_concurrent_calls_are_each_counted_once(windows):
    counts: list[int] = []

    def caller():
        for _ in range(25):
            counts.append(windows.hit("team-a/calls/1", 1000, 1001).calls)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 201))


def test_a_later_window_starts_again_and_a_lagging_clock_counts_in_the_window_begun(windows):
    assert [windows.hit("team-a/calls/1", 1000, 1001).calls for _ in range(3)] == [1, 2, 3]
    assert windows.hit("team-b/calls/1", 1000, 1001).calls == 1  # another counter
    later = windows.hit("team-a/calls/1", 1001, 1002)
    assert (later.calls, later.ends) == (1, 1002)
    lagging = windows.hit("team-a/calls/1", 1000, 1001)  # a replica whose clock is behind
    assert (lagging.calls, lagging.ends) == (2, 1002)


def test_ended_windows_are_swept(windows):
    windows.hit("team-a/calls/1", 1000, 1001)
    windows.hit("team-b/calls/1", 1005, 1006)
    windows.sweep(1003)
    assert windows.hit("team-a/calls/1", 1000, 1001).calls == 1  # forgotten, so counted afresh
    assert windows.hit("team-b/calls/1", 1005, 1006).calls == 2  # kept
    windows.sweep(2000)
    if isinstance(windows, SharedWindows):
        with windows.engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(tables.RateWindow)) == 0


def test_local_mode_counts_in_its_process_and_a_cluster_in_its_database(database_url):
    database = open_database(database_url)
    try:
        chosen = windows_for(database)
        assert isinstance(chosen, LocalWindows if database.sqlite else SharedWindows)
        chosen.close()
    finally:
        database.dispose()
