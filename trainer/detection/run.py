"""One object detection training run, after kubevision.trainer.run has read the snapshot and started the MLflow run:
train, evaluate, export, record, as the classifier does."""

from __future__ import annotations

import time

from kubevision.core import detection_metrics, labels
from kubevision.core.dataset import ImageRecord
from kubevision.core.domains import BACKBONES
from kubevision.core.heldout import HeldOut
from kubevision.core.serving import detection
from kubevision.core.settings import S3Settings
from kubevision.core.storage import DatasetStore, ObjectStore
from kubevision.core.training import ResolvedTraining, TrainingRequest, TrainingResult
from kubevision.trainer import data as images_data
from kubevision.trainer import export, result
from kubevision.trainer.detection import data, plots, training
from kubevision.trainer.detection import export as detection_export
from kubevision.trainer.detection.network import input_size
from kubevision.trainer.tracking import Tracker

REFERENCE_IMAGES = 8
DRAWN_IMAGES = 6  # held-out images drawn with their boxes into the MLflow run
WORKING_SCALE = 1.25  # images are kept this much larger than the input, so that crops keep detail
RESERVE = 0.1  # share of the budget kept for evaluation, export and recording


def train(records: list[ImageRecord], images: DatasetStore, store: ObjectStore, s3: S3Settings,
          request: TrainingRequest, options: ResolvedTraining, tracker: Tracker) -> TrainingResult:
    started = time.monotonic()
    project = request.project
    network_spec = BACKBONES[project.spec.domain]
    size = input_size(network_spec)
    tracker.params({**options.model_dump(mode="json"), "task": "detection", "domain": project.spec.domain,
                    "backbone": network_spec.architecture, "input_size": size, "snapshot_images": len(records)})
    dataset = data.load(records, images_data.fetcher(images), round(size * WORKING_SCALE))
    tracker.params({"images": len(dataset.ids), "tags": len(dataset.tags), "skipped": len(dataset.skipped),
                    "regions": sum(len(labels) for labels in dataset.labels)})
    deadline = started + options.budget_minutes * 60 * (1 - RESERVE)
    fitted = training.train(dataset, network_spec, options, deadline, tracker.metric)
    metrics = fitted.evaluation.metrics
    tracker.params({"epochs_trained": fitted.epochs})
    rows = sorted(range(len(fitted.held_out)), key=lambda row: fitted.held_out[row])  # in upload order
    held_out = detection_metrics.held_out(
        [dataset.ids[fitted.held_out[row]] for row in rows], [dataset.boxes[fitted.held_out[row]] for row in rows],
        [dataset.labels[fitted.held_out[row]] for row in rows], [fitted.predictions[row] for row in rows],
        dataset.tags, options.probability_threshold)
    _record_evaluation(tracker, dataset, fitted, held_out, options.probability_threshold)
    stored = _export(fitted, network_spec, dataset, store, s3, request, tracker)
    return result.succeeded(store, s3, request, dataset, held_out, metrics, stored, average_precision="mAP@0.5")


def _record_evaluation(tracker: Tracker, dataset: data.RegionImages, fitted: training.Fitted, held_out: HeldOut,
                       threshold: float):
    metrics = fitted.evaluation.metrics
    tracker.metric("precision", metrics.precision)
    tracker.metric("recall", metrics.recall)
    tracker.metric("mean_average_precision", metrics.average_precision)
    tracker.metric("map_50_95", fitted.evaluation.map_50_95)
    for tag in metrics.per_tag:
        tracker.metric(f"average_precision.{tag.tag}", tag.average_precision)
    tracker.figure(plots.precision_recall(fitted.evaluation, dataset.tags), "plots/precision_recall.png")
    for row, i in enumerate(fitted.held_out[:DRAWN_IMAGES]):
        picture = plots.drawn(dataset.images[i], dataset.boxes[i], dataset.labels[i], fitted.predictions[row],
                              dataset.tags, threshold)
        tracker.image(picture, f"evaluation/held_out_{row}.png")
    tracker.json(held_out.model_dump(mode="json"), "evaluation/predictions.json")
    tracker.json(metrics.model_dump(mode="json", by_alias=True), "evaluation/metrics.json")


def _export(fitted: training.Fitted, network_spec, dataset: data.RegionImages, store: ObjectStore, s3: S3Settings,
            request: TrainingRequest, tracker: Tracker) -> tuple[str, tuple[str, str]]:
    project, iteration = request.project, request.iteration
    model_name = labels.model_name(iteration.metadata.uid)  # unique across namespaces: see core/labels.py
    onnx = detection_export.onnx_model(fitted.served)
    # The trainer's own boxes for a few images: the exported model must give them back, here (ONNX Runtime) and
    # where it is served (Triton; see the tests).
    sample = slice(0, REFERENCE_IMAGES)
    reference = detection_export.reference_predictions(fitted.served, onnx, dataset.images[sample])
    tracker.json({"ids": dataset.ids[sample], **{name: value.tolist() for name, value in reference.items()}},
                 "model/reference_predictions.json")
    config = detection.config(model_name, network_spec, fitted.served.size)
    return export.store_model(store, s3, project, model_name, (onnx, config, dataset.tags), tracker)
