"""One classification training run, after kubevision.trainer.run has read the snapshot and started the MLflow run:
train (Quick or Advanced), evaluate, calibrate, export, record."""

from __future__ import annotations

import time

import torch

from kubevision.core import labels
from kubevision.core.api import ClassificationType, TrainingType
from kubevision.core.dataset import ImageRecord
from kubevision.core.domains import BACKBONES, Backbone
from kubevision.core.heldout import HeldOut, HeldOutImage
from kubevision.core.serving import classification
from kubevision.core.settings import S3Settings
from kubevision.core.storage import DatasetStore, ObjectStore
from kubevision.core.training import ResolvedTraining, TrainingRequest, TrainingResult, classification_type
from kubevision.trainer import backbone, data, export, result
from kubevision.trainer.classification import advanced, evaluation, quick
from kubevision.trainer.classification import export as classifier_export
from kubevision.trainer.classification.network import Classifier
from kubevision.trainer.tracking import Tracker

REFERENCE_IMAGES = 8


def train(records: list[ImageRecord], images: DatasetStore, store: ObjectStore, s3: S3Settings,
          request: TrainingRequest, options: ResolvedTraining, tracker: Tracker) -> TrainingResult:
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
    stored = _export(trained.classifier, network_spec, dataset, store, s3, request, tracker)
    return result.succeeded(store, s3, request, dataset, held_out, metrics, stored, trained.choice or None)


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
    model_name = labels.model_name(iteration.metadata.uid)  # unique across namespaces: see core/labels.py
    onnx = classifier_export.onnx_model(classifier, network_spec)
    # The trainer's own predictions on a few images: the exported model must give them back, here (ONNX Runtime)
    # and where it is served (Triton; see the tests).
    sample = slice(0, REFERENCE_IMAGES)
    reference = classifier_export.reference_predictions(classifier, onnx, network_spec, dataset.images[sample])
    tracker.json({"ids": dataset.ids[sample], "probabilities": reference.tolist()}, "model/reference_predictions.json")
    config = classification.config(model_name, network_spec, len(dataset.tags))
    return export.store_model(store, s3, project, model_name, (onnx, config, dataset.tags), tracker)
