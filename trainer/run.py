"""One training run: snapshot in; model in the Triton repository, MLflow run and a TrainingResult out."""

from __future__ import annotations

import logging
import time

from minio.error import S3Error

from kubevision.core.api import ProjectType
from kubevision.core.dataset import ManifestError
from kubevision.core.reasons import Reason
from kubevision.core.settings import MLflowSettings, S3Settings
from kubevision.core.storage import (
    DatasetLayout,
    DatasetStore,
    ObjectStore,
    StorageUnavailable,
    retrying,
)
from kubevision.core.training import (
    TrainingRequest,
    TrainingResult,
    iteration_id,
    resolve_training,
)
from kubevision.trainer import data
from kubevision.trainer.classification import run as classification
from kubevision.trainer.detection import run as detection
from kubevision.trainer.seeds import seed_everything
from kubevision.trainer.tracking import Tracker

log = logging.getLogger(__name__)


def train(request: TrainingRequest, s3: S3Settings, mlflow: MLflowSettings) -> TrainingResult:
    """Never raises for a bad dataset or a crash: both end in a result the operator can read."""
    started = time.monotonic()
    project, iteration = request.project, request.iteration
    options = resolve_training(project, iteration)
    store = ObjectStore(s3)
    images = DatasetStore(store, DatasetLayout.of(project.spec.dataset))
    snapshot = iteration_id(iteration)
    try:
        records = retrying(lambda: images.snapshot_records(snapshot), f"the dataset snapshot {snapshot}")
    except StorageUnavailable as error:  # a crash: the Job runs the trainer again
        return TrainingResult(outcome="Failed", reason=Reason.STORAGE_UNAVAILABLE, message=str(error))
    except S3Error as error:  # retrying lets only "not there" through: a dataset problem, no retry helps
        return TrainingResult(outcome="InvalidDataset", reason=Reason.DATASET_NOT_FOUND,
                              message=f"no dataset snapshot for {snapshot}: {error.code}")
    except ManifestError as error:
        return TrainingResult(outcome="InvalidDataset", reason=Reason.MANIFEST_INVALID, message=str(error))
    tracker = None
    try:
        tracker = _tracker(mlflow, project, iteration)
        # The same upload trains the same model: records in content order (the manifest's order follows upload
        # timing), every random generator seeded.
        records = sorted(records, key=lambda record: record.sha256)
        seed_everything(options.seed)
        trainer = detection.train if project.spec.type == ProjectType.OBJECT_DETECTION else classification.train
        result = trainer(records, images, store, s3, request, options, tracker)
    except data.DatasetError as error:
        result = TrainingResult(outcome="InvalidDataset", reason=error.reason, message=str(error),
                                skipped=error.skipped, skipped_count=len(error.skipped))
    except TrackingUnavailable as error:  # a crash: the Job runs the trainer again
        result = TrainingResult(outcome="Failed", reason=Reason.TRACKING_UNAVAILABLE, message=str(error))
    except StorageUnavailable as error:
        result = TrainingResult(outcome="Failed", reason=Reason.STORAGE_UNAVAILABLE, message=str(error))
    except Exception as error:  # a crash still reports, then the process exits non-zero
        log.exception("training failed")
        result = TrainingResult(outcome="Failed", reason=Reason.TRAINING_FAILED,
                                message=f"{type(error).__name__}: {error}")
    result.seconds = round(time.monotonic() - started, 1)
    if tracker is not None:
        result.mlflow_run_id = tracker.run_id
        try:  # the result is what counts: MLflow failing now must not lose it
            tracker.json(result.model_dump(mode="json", exclude_none=True), "result.json")
            tracker.finish(result.outcome == "Succeeded")
        except Exception as error:
            log.warning("MLflow: could not record the result: %s", error)
    return result


class TrackingUnavailable(Exception):
    """MLflow could not be reached to start the run."""


def _tracker(mlflow: MLflowSettings, project, iteration) -> Tracker:
    try:
        return Tracker(mlflow.tracking_uri, project, iteration)
    except Exception as error:  # MLflow's client raises many kinds; all mean "not reachable now"
        raise TrackingUnavailable(f"MLflow at {mlflow.tracking_uri}: {error}") from error
