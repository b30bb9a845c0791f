"""The operator's Prometheus metrics (both drivers): reconciles, errors, durations, running training Jobs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("kubevision_reconciles_total", "Reconcile passes, by kind.", ["kind"])
RECONCILE_ERRORS = Counter("kubevision_reconcile_errors_total", "Reconcile passes that raised, by kind.", ["kind"])
RECONCILE_SECONDS = Histogram("kubevision_reconcile_duration_seconds", "Time of one reconcile pass, by kind.",
                              ["kind"])
RUNNING_JOBS = Gauge("kubevision_training_jobs_running", "Iterations whose training is running.")


@contextmanager
def reconcile_timer(kind: str) -> Iterator[None]:
    started = time.monotonic()
    RECONCILES.labels(kind).inc()
    try:
        yield
    except Exception:
        RECONCILE_ERRORS.labels(kind).inc()
        raise
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - started)
