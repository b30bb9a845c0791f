"""The end of every task's successful run, written once: the held-out predictions stored beside the result, and
the TrainingResult the operator reads."""

from __future__ import annotations

import logging
from typing import Protocol

from kubevision.core.api import IterationMetrics
from kubevision.core.heldout import HeldOut
from kubevision.core.reasons import Reason
from kubevision.core.settings import S3Settings
from kubevision.core.storage import ObjectStore
from kubevision.core.training import SkippedImage, TrainingRequest, TrainingResult
from kubevision.trainer import export

log = logging.getLogger(__name__)


class TrainedOn(Protocol):
    """What a task's dataset tells the result: the images used, the model's tags, the images skipped."""

    ids: list[str]
    tags: list[str]
    skipped: list[SkippedImage]


def succeeded(store: ObjectStore, s3: S3Settings, request: TrainingRequest, dataset: TrainedOn, held_out: HeldOut,
              metrics: IterationMetrics, model: tuple[str, tuple[str, str]], served: str | None = None,
              average_precision: str = "mAP") -> TrainingResult:
    """`model` is the stored model's (S3 URI, (registered model, version)); `served`, which model Advanced chose."""
    model_uri, registered = model
    export.store_held_out(store, s3, request.iteration, held_out)
    log.info("precision %.3f recall %.3f %s %.3f; model at %s", metrics.precision, metrics.recall,
             average_precision, metrics.average_precision, model_uri)
    return TrainingResult(
        outcome="Succeeded", reason=Reason.TRAINING_SUCCEEDED,
        message=f"trained on {len(dataset.ids)} images, {len(dataset.tags)} tags",
        tags=dataset.tags, images_used=len(dataset.ids), skipped=dataset.skipped,
        skipped_count=len(dataset.skipped), metrics=metrics, model_uri=model_uri,
        registered_model=registered[0], registered_version=registered[1], served=served,
    )
