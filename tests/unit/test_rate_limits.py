"""The rate limiter's arithmetic on a clock the test sets: which limit a call counts against, windows of whole
seconds for limits under one call a second, Retry-After until the window ends, no limit when a namespace has none,
and calls let through, not failed, while the database that counts them is away."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubevision.core.labelstore.rates import LocalWindows, SharedWindows
from kubevision.core.limits import LimitsFile, LimitsSource
from kubevision.gateway.http.limits import call_kind
from kubevision.gateway.rate_limits import CallKind, RateLimiter, Window, window_of
from kubevision.local.process import free_port


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(tmp_path: Path, clock: Clock, **defaults) -> RateLimiter:
    path = tmp_path / "limits.yaml"
    path.write_text(LimitsFile.model_validate({"defaults": defaults}).model_dump_json())  # JSON is YAML
    return RateLimiter(LimitsSource(path), clock)


@pytest.mark.parametrize(("path", "method", "kind"), [
    ("/customvision/v3.0/prediction/p/classify/iterations/v1/image/nostore", "POST", CallKind.PREDICTION),
    ("/customvision/v3.1/prediction/p/detect/iterations/v1/url/nostore", "POST", CallKind.PREDICTION),
    ("/customvision/v3.1/prediction/p/classify/iterations/v1/image", "POST", CallKind.STORED_PREDICTION),
    ("/customvision/v3.1/prediction/p/detect/iterations/v1/url", "POST", CallKind.STORED_PREDICTION),
    ("/customvision/v3.3/training/projects/p/train", "POST", CallKind.TRAIN),
    ("/customvision/v3.4-preview/training/projects/p/train", "POST", CallKind.TRAIN),
    ("/customvision/v3.3/training/projects/p/iterations", "GET", CallKind.TRAINING),
    ("/customvision/v3.3/training/projects/p/images", "POST", CallKind.TRAINING),
    ("/customvision/v3.3/training/projects/p/train/x", "POST", CallKind.TRAINING),
])
def test_each_call_counts_against_the_limit_azure_counts_it_against(path, method, kind):
    key = "prediction" if "/prediction/" in path else "training"
    assert call_kind(key, method, path) is kind


def test_windows_are_whole_seconds_holding_whole_calls():
    assert window_of(20) == Window(1, 20)
    assert window_of(2.5) == Window(1, 2)
    assert window_of(0.5) == Window(2, 1)
    assert window_of(0.2) == Window(5, 1)
    assert window_of(0.3) == Window(4, 1)


async def test_a_call_over_the_limit_waits_until_its_window_ends(tmp_path):
    clock = Clock(1000.25)
    rates = limiter(tmp_path, clock, predictions_per_second=2, training_calls_per_second=0.2)
    assert [await rates.admit("team-a", CallKind.PREDICTION) for _ in range(3)] == [None, None, 1]
    assert await rates.admit("team-b", CallKind.PREDICTION) is None
    clock.now = 1001.0
    assert await rates.admit("team-a", CallKind.PREDICTION) is None
    # One call in 5 s: windows begin at multiples of 5 s, and Retry-After rounds the rest up.
    assert await rates.admit("team-a", CallKind.TRAINING) is None
    clock.now = 1003.5
    assert await rates.admit("team-a", CallKind.TRAINING) == 2
    clock.now = 1005.0
    assert await rates.admit("team-a", CallKind.TRAINING) is None


async def test_calls_refused_in_a_full_window_are_not_counted_again(tmp_path):
    clock = Clock(1000.0)
    rates = limiter(tmp_path, clock, predictions_per_second=1)
    windows = rates.windows
    assert isinstance(windows, LocalWindows)
    assert [await rates.admit("team-a", CallKind.PREDICTION) for _ in range(5)] == [None, 1, 1, 1, 1]
    assert windows.hit(f"team-a/{CallKind.PREDICTION.value}/1", 1000, 1001).calls == 3  # the call let in, the
    # first refused, and this one: the later refusals never reached the counter


async def test_a_namespace_without_a_limit_is_never_refused(tmp_path):
    rates = limiter(tmp_path, Clock(1000.0), train_calls_per_second=None)
    assert {await rates.admit("team-a", CallKind.TRAIN) for _ in range(100)} == {None}


async def test_calls_go_on_unlimited_while_the_database_is_away(tmp_path):
    rates = limiter(tmp_path, Clock(1000.0), predictions_per_second=1)
    away = SharedWindows(f"postgresql+psycopg://kubevision@127.0.0.1:{free_port()}/labels")
    rates.use(away)
    try:
        assert [await rates.admit("team-a", CallKind.PREDICTION) for _ in range(3)] == [None, None, None]
    finally:
        away.close()
