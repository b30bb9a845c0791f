"""The operator's Prometheus metrics (both drivers): reconciles, errors, durations, running training Jobs; and each
team's trainings, their seconds and GPU seconds (namespace and project labels, core.usage.FIGURES)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

from kubevision.core.api import Iteration, IterationStatus
from kubevision.core.usage import ended_in_this_pass, training_use

RECONCILES = Counter("kubevision_reconciles_total", "Reconcile passes, by kind.", ["kind"])
RECONCILE_ERRORS = Counter("kubevision_reconcile_errors_total", "Reconcile passes that raised, by kind.", ["kind"])
RECONCILE_SECONDS = Histogram("kubevision_reconcile_duration_seconds", "Time of one reconcile pass, by kind.",
                              ["kind"])
RUNNING_JOBS = Gauge("kubevision_training_jobs_running", "Iterations whose training is running.")
USAGE_TRAININGS = Counter("kubevision_usage_trainings_total", "Trainings ended, by namespace and project.",
                          ["namespace", "project"])
USAGE_TRAINING_SECONDS = Counter("kubevision_usage_training_seconds_total", "Seconds of ended trainings, from "
                                 "their start to their end, by namespace and project.", ["namespace", "project"])
USAGE_GPU_SECONDS = Counter("kubevision_usage_gpu_seconds_total", "Training seconds times the GPUs the training "
                            "asked for, by namespace and project.", ["namespace", "project"])


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


def count_training(iteration: Iteration, written: IterationStatus) -> None:
    """After a pass wrote `written` over the Iteration's status: count its training if this pass recorded its
    end. A later pass, or a restarted operator, reads the end from the status and counts nothing."""
    use = training_use(iteration.model_copy(update={"status": written}))
    if use is None or not ended_in_this_pass(iteration.status, written):
        return
    labels = (use.namespace, use.project)
    USAGE_TRAININGS.labels(*labels).inc()
    USAGE_TRAINING_SECONDS.labels(*labels).inc(use.seconds)
    USAGE_GPU_SECONDS.labels(*labels).inc(use.gpu_seconds)
