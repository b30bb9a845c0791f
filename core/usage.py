"""What a team (a namespace) used, and of which project: the figures every usage view shares (the gateway's and the
operator's Prometheus counters, the label store's usage ledger, `kubevision usage`, the gateway's usage route), the
use of one training as its Iteration records it, and the `--since` windows.

A training's use is read from the Iteration itself, where it is true and stays: when its training started and
ended (status) and the GPUs its Job asked for (spec.resources.gpus). Whoever counts it keys the count to the
Iteration's uid or to the pass that wrote the end, so that a restart never counts it again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from kubevision.core.api import Iteration, IterationStatus


@dataclass(frozen=True)
class Figure:
    field: str  # the ledger's column, the API's field (camelCased)
    column: str  # the CLI table's heading
    metric: str  # the Prometheus counter
    selector: str = ""  # the labels that pick this figure out of its counter


# In the order tables show them.
FIGURES = (
    Figure("predictions_stored", "PREDICTIONS STORED", "kubevision_usage_predictions_total", 'stored="true"'),
    Figure("predictions_not_stored", "NOT STORED", "kubevision_usage_predictions_total", 'stored="false"'),
    Figure("images_stored", "IMAGES", "kubevision_usage_images_stored_total"),
    Figure("image_bytes", "IMAGE BYTES", "kubevision_usage_image_bytes_stored_total"),
    Figure("exports", "EXPORTS", "kubevision_usage_exports_total"),
    Figure("trainings", "TRAININGS", "kubevision_usage_trainings_total"),
    Figure("training_seconds", "TRAINING SECONDS", "kubevision_usage_training_seconds_total"),
    Figure("gpu_seconds", "GPU SECONDS", "kubevision_usage_gpu_seconds_total"),
)
FIELDS = tuple(f.field for f in FIGURES)
COUNTED_BY_GATEWAY = FIELDS[:5]  # counted as calls are answered; the rest, as trainings end


@dataclass(frozen=True)
class Usage:
    """One row of a usage table: a namespace's figures, or one project's (project "" for the namespace's)."""

    namespace: str
    project: str = ""
    predictions_stored: int = 0
    predictions_not_stored: int = 0
    images_stored: int = 0
    image_bytes: int = 0
    exports: int = 0
    trainings: int = 0
    training_seconds: float = 0.0
    gpu_seconds: float = 0.0


@dataclass(frozen=True)
class TrainingUse:
    """One ended training: who, when it ended, how long it ran and on how many GPUs."""

    iteration_uid: str
    namespace: str
    project: str
    iteration: str
    finished: datetime
    seconds: float
    gpus: int
    advanced: bool = False  # counted against the namespace's Advanced budget too

    @property
    def gpu_seconds(self) -> float:
        return self.seconds * self.gpus


def training_use(iteration: Iteration, advanced: bool = False) -> TrainingUse | None:
    """The use of the Iteration's training, once it has ended (None before, or without a start it knows);
    `advanced`: whether it trained Advanced, as its project's defaults resolve it."""
    status = iteration.status
    if status.training_started is None or status.training_finished is None or not iteration.metadata.uid:
        return None
    seconds = max((status.training_finished - status.training_started).total_seconds(), 0.0)
    return TrainingUse(iteration.metadata.uid, iteration.metadata.namespace, iteration.spec.project_ref.name,
                       iteration.metadata.name, status.training_finished, seconds, iteration.spec.resources.gpus,
                       advanced)


def ended_in_this_pass(before: IterationStatus, after: IterationStatus) -> bool:
    """Whether a reconcile pass from status `before` to `after` is the one that records the training's end: the
    status written with it says so to every later pass, and to a restarted operator."""
    return before.training_finished is None and after.training_finished is not None


_WINDOW = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_WINDOW = timedelta(days=400)


def parse_window(text: str) -> timedelta:
    """A `--since` window as Prometheus writes ranges: 90m, 24h, 7d, 2w (at most 400 days); ValueError if not."""
    match = _WINDOW.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is no window: write a number and m, h, d or w (90m, 24h, 7d, 2w)")
    window = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if not timedelta(0) < window <= MAX_WINDOW:
        raise ValueError(f"{text!r} is not between 1m and {MAX_WINDOW.days}d")
    return window
