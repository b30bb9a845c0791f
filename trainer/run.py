"""One training run: snapshot in; model in the Triton repository, MLflow run and a TrainingResult out."""

from __future__ import annotations

import logging
import time

import torch
from minio.error import S3Error

from kubevision.core.api import ClassificationType, ProjectType, TrainingType
from kubevision.core.dataset import ManifestError
from kubevision.core.domains import BACKBONES, Backbone
from kubevision.core.heldout import HeldOut, HeldOutImage
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
    ResolvedTraining,
    TrainingRequest,
    TrainingResult,
    classification_type,
    iteration_id,
    resolve_training,
)
from kubevision.trainer import advanced, backbone, data, evaluation, export, quick
from kubevision.trainer.detection import run as detection
from kubevision.trainer.network import Classifier
from kubevision.trainer.seeds import seed_everything
from kubevision.trainer.tracking import Tracker

log = logging.getLogger(__name__)

REFERENCE_IMAGES = 8


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
        trainer = detection.train if project.spec.type == ProjectType.OBJECT_DETECTION else _train
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


def _train(records, images: DatasetStore, store: ObjectStore, s3: S3Settings, request: TrainingRequest,
           options: ResolvedTraining, tracker: Tracker) -> TrainingResult:
    project = request.project
    kind = classification_type(project)
    multilabel = kind == ClassificationType.MULTILABEL
    network_spec = BACKBONES[project.spec.domain]
    tracker.params({**options.model_dump(mode="json"), "classification_type": kind.value,
                    "domain": project.spec.domain, "backbone": network_spec.architecture,
                    "input_size": network_spec.input_size, "snapshot_images": len(records)})

    dataset = data.load(records, data.fetcher(images), kind, network_spec.resize_size)
    tracker.params({"images": len(dataset.ids), "tags": len(dataset.tags), "skipped": len(dataset.skipped)})
    deadline = time.monotonic() + options.budget_minutes * 60
    network = backbone.load(network_spec)
    if options.training_type == TrainingType.QUICK:
        trained = quick.train(network, dataset, network_spec, options, multilabel)
    else:
        trained = advanced.train(network, dataset, network_spec, options, multilabel, deadline, tracker.metric)
        tracker.params({"advanced_served": trained.choice})
        for name, value in trained.comparison.items():
            tracker.metric(f"advanced.{name}", value)
    targets = dataset.targets[trained.held_out]
    probabilities, threshold = trained.probabilities, options.probability_threshold
    if multilabel:  # each tag its own threshold, behind the one served threshold
        shifts, probabilities = evaluation.calibrate(targets, probabilities, threshold, options.seed)
        with torch.no_grad():
            trained.classifier.head.bias += torch.from_numpy(shifts)
    metrics = evaluation.metrics_at(targets, probabilities, dataset.tags, threshold)
    held_out = HeldOut(threshold=threshold, tags=dataset.tags, images=[
        HeldOutImage(id=dataset.ids[i], tags=[t for t, on in zip(dataset.tags, targets[row], strict=True) if on],
                     probabilities=[round(float(p), 6) for p in probabilities[row]])
        for row, i in sorted(enumerate(trained.held_out), key=lambda pair: pair[1])])  # in upload order
    _record_evaluation(tracker, dataset, targets, probabilities, metrics, held_out, multilabel)
    model_uri, registered = _export(trained.classifier, network_spec, dataset, store, s3, request, tracker)
    export.store_held_out(store, s3, request.iteration, held_out)
    log.info("precision %.3f recall %.3f mAP %.3f; model at %s", metrics.precision, metrics.recall,
             metrics.average_precision, model_uri)
    return TrainingResult(
        outcome="Succeeded", reason=Reason.TRAINING_SUCCEEDED,
        message=f"trained on {len(dataset.ids)} images, {len(dataset.tags)} tags",
        tags=dataset.tags, images_used=len(dataset.ids), skipped=dataset.skipped,
        skipped_count=len(dataset.skipped), metrics=metrics, model_uri=model_uri,
        registered_model=registered[0], registered_version=registered[1], served=trained.choice or None,
    )


def _record_evaluation(tracker: Tracker, dataset, targets, probabilities, metrics, held_out: HeldOut, multilabel):
    tracker.metric("precision", metrics.precision)
    tracker.metric("recall", metrics.recall)
    tracker.metric("mean_average_precision", metrics.average_precision)
    for tag in metrics.per_tag:
        tracker.metric(f"average_precision.{tag.tag}", tag.average_precision)
    if not multilabel:
        tracker.metric("top1_accuracy", evaluation.top1_accuracy(targets, probabilities))
        tracker.confusion_matrix(evaluation.confusion(targets, probabilities), dataset.tags)
    tracker.precision_recall_curves(targets, probabilities, dataset.tags)
    tracker.json(held_out.model_dump(mode="json"), "evaluation/predictions.json")
    tracker.json(metrics.model_dump(mode="json", by_alias=True), "evaluation/metrics.json")


def _export(classifier: Classifier, network_spec: Backbone, dataset, store: ObjectStore, s3: S3Settings,
            request: TrainingRequest, tracker: Tracker) -> tuple[str, tuple[str, str]]:
    project, iteration = request.project, request.iteration
    model_name = iteration.metadata.name
    onnx = export.onnx_model(classifier, network_spec)
    # The trainer's own predictions on a few images: the exported model must give them back, here (ONNX Runtime)
    # and where it is served (Triton; see the tests).
    sample = slice(0, REFERENCE_IMAGES)
    reference = export.reference_predictions(classifier, onnx, network_spec, dataset.images[sample])
    tracker.json({"ids": dataset.ids[sample], "probabilities": reference.tolist()}, "model/reference_predictions.json")
    config = export.triton_config(model_name, network_spec, len(dataset.tags))
    return export.store_model(store, s3, project, model_name, (onnx, config, dataset.tags), tracker)
