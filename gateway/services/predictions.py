"""The prediction service, free of HTTP: find the published model of a project the caller may see, prepare the
image, ask Triton, answer in Custom Vision's shape, and keep the prediction unless asked not to."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from kubevision.core import dataset
from kubevision.core.api import Iteration
from kubevision.core.domains import Backbone
from kubevision.core.labelstore.predictions import PredictionIndex
from kubevision.core.labelstore.store import LabelStore, ProjectRef
from kubevision.core.serving import classification, detection
from kubevision.core.serving.detection import Detections
from kubevision.core.settings import GatewaySettings
from kubevision.core.storage import DatasetLayout, ObjectStore
from kubevision.gateway import images, metrics
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.backends.trained import TrainedIterations, tag_ids
from kubevision.gateway.backends.triton import Classifier
from kubevision.gateway.catalog import Project, PublishedModel
from kubevision.gateway.errors import CustomVisionError
from kubevision.gateway.images import ImageFetcher
from kubevision.gateway.services.usage import UsageMeter
from kubevision.gateway.wire import BoundingBox, ImagePrediction, Prediction, SuggestedTags, TagType

log = logging.getLogger(__name__)

NEGATIVE_TAG = "Negative"
PROJECT_TYPES = {"classify": "Classification", "detect": "ObjectDetection"}
MAX_PENDING_RECORDS = 256  # stored predictions being written; past this, new ones are dropped and counted


class PredictionRecorder:
    """Writes stored predictions to the project's dataset bucket after the answer has left: the image once by
    content, then the record that names it (bytes first, so no record points at missing bytes)."""

    def __init__(self, store: ObjectStore, labels: LabelStore | None = None, index: PredictionIndex | None = None):
        self.store = store
        self.labels = labels
        self.index = index  # the label store's index of stored predictions, which the training API queries
        self._pending: set[asyncio.Task] = set()

    def record(self, project: Project, content_type: str, data: bytes, record: dataset.PredictionRecord) -> None:
        if len(self._pending) >= MAX_PENDING_RECORDS:
            metrics.STORED_PREDICTIONS.labels("dropped").inc()
            log.warning("prediction %s not stored: %d writes are pending", record.id, len(self._pending))
            return
        task = asyncio.create_task(asyncio.to_thread(self._write, project, content_type, data, record))
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._pending.discard(task)
        failed = task.cancelled() or task.exception() is not None
        metrics.STORED_PREDICTIONS.labels("failed" if failed else "stored").inc()
        if failed and not task.cancelled():
            log.warning("storing a prediction failed: %s", task.exception())

    def _write(self, project: Project, content_type: str, data: bytes, record: dataset.PredictionRecord) -> None:
        layout = DatasetLayout(project.dataset_bucket, project.dataset_prefix)
        image_key = layout.image_key(record.sha256)
        if not self.store.exists(layout.bucket, image_key):
            self.store.put(layout.bucket, image_key, data, content_type)
        key = layout.prediction_key(record.created, record.id)
        self.store.put(layout.bucket, key, record.model_dump_json().encode(), "application/json")
        if self.labels and self.index:  # after the record, which stays the truth
            try:
                self.labels.ensure_project(ProjectRef(project.uid, project.namespace, project.name,
                                                      project.dataset_bucket, project.dataset_prefix))
                self.index.add(project.uid, record, key)
            except Exception:
                self.index.rescan(project.uid)  # the next query indexes it from S3
                raise

    async def drain(self) -> None:
        await asyncio.gather(*self._pending, return_exceptions=True)


class PredictionService:
    def __init__(self, settings: GatewaySettings, source: CatalogSource, classifier: Classifier,
                 recorder: PredictionRecorder | None, fetcher: ImageFetcher, trained: TrainedIterations,
                 meter: UsageMeter | None = None):
        self.settings = settings
        self.meter = meter or UsageMeter()
        self.source = source
        self.classifier = classifier
        self.trained = trained  # runs iterations that are not published, for quick tests
        self.recorder = recorder
        self.fetcher = fetcher

    def kind(self, namespace: str, project_id: str) -> str:
        """The prediction a project's models make: classify, or detect for an ObjectDetection project."""
        project_type = self.source.catalog.project(namespace, project_id).type
        return next((kind for kind, wanted in PROJECT_TYPES.items() if wanted == project_type), "classify")

    def _model(self, namespace: str, project_id: str, publish_name: str, kind: str) -> tuple[Project, PublishedModel]:
        catalog = self.source.catalog
        project = catalog.project(namespace, project_id)
        if project.type != PROJECT_TYPES[kind]:
            other = "classify" if kind == "detect" else "detect"
            raise CustomVisionError(f"Project {project.uid} is a {project.type} project: use the {other} routes.",
                                    "BadRequestNotSupported")
        return project, catalog.published_model(project, publish_name)

    async def predict_url(self, namespace: str, project_id: str, publish_name: str, kind: str, url: str,
                          store: bool, application: str | None) -> ImagePrediction:
        self._model(namespace, project_id, publish_name, kind)  # an unknown project is told before any fetch
        data = await self.fetcher.fetch(url)
        return await self.predict(namespace, project_id, publish_name, kind, data, store, application)

    async def predict(self, namespace: str, project_id: str, publish_name: str, kind: str, data: bytes,
                      store: bool, application: str | None) -> ImagePrediction:
        project, model = self._model(namespace, project_id, publish_name, kind)
        shape = await self.classifier.shape(model)
        detector = shape.task == detection.DETECTION
        if detector != (kind == "detect"):
            what = "an object detector" if detector else "a classifier"
            raise CustomVisionError(f"The iteration published as {publish_name!r} is {what}: use the "
                                    f"{'detect' if detector else 'classify'} routes.", "BadRequestNotSupported")
        iteration = self.source.catalog.find_iteration(project, model.iteration_uid)
        tag_id = tag_ids(project.uid, iteration)
        batch, content_type = await asyncio.to_thread(self._prepare, data, shape.backbone, shape.task)
        if detector:
            predictions = _boxes(tag_id, shape.labels, await self.classifier.detect(model, batch))
        else:
            predictions = _tags(tag_id, shape.labels, await self.classifier.infer(model, batch))
        return self._answer(project, model.iteration_uid, model.publish_name, predictions,
                            (data, content_type, application) if store else None)

    async def quick_test(self, project: Project, body: Iteration, data: bytes, store: bool) -> ImagePrediction:
        """An iteration that is not published, classifier or detector, run here in ONNX Runtime from its exported
        model, and answered as its published self would be."""
        model = await self.trained.model(body)
        tag_id = tag_ids(project.uid, body)
        batch, content_type = await asyncio.to_thread(self._prepare, data, model.backbone, model.task)
        if model.task == detection.DETECTION:
            predictions = _boxes(tag_id, model.labels, await asyncio.to_thread(model.detect, batch))
        else:
            predictions = _tags(tag_id, model.labels, await asyncio.to_thread(model.run, batch))
        return self._answer(project, body.metadata.uid, "", predictions, (data, content_type, None) if store else None)

    async def suggest(self, project: Project, body: Iteration, images: list[tuple[str, bytes]]) -> list[SuggestedTags]:
        """Tags, or a detector's tagged regions, for images of the project, from a trained iteration run in the
        gateway (never stored): for labelling, so it never takes Triton's time from the served traffic."""
        suggested = []
        for image_id, data in images:
            answer = await self.quick_test(project, body, data, store=False)
            best = answer.predictions[0].probability if answer.predictions else 0.0  # a detector may find nothing
            suggested.append(SuggestedTags(id=image_id, project=project.uid, iteration=answer.iteration,
                                           created=answer.created, predictions=answer.predictions,
                                           prediction_uncertainty=1 - best))
        return suggested

    def _answer(self, project: Project, iteration_uid: str, publish_name: str, predictions: list[Prediction],
                stored: tuple[bytes, str, str | None] | None) -> ImagePrediction:
        """The answer in Custom Vision's shape; kept as a stored prediction when `stored` holds the image, its type
        and the application."""
        answer = ImagePrediction(id=str(uuid.uuid4()), project=project.uid, iteration=iteration_uid,
                                 created=datetime.now(UTC), predictions=predictions)
        kept = bool(stored and self.recorder and self.settings.store_predictions)
        self.meter.predicted(project.namespace, project.name, stored=kept)
        if kept:
            data, content_type, application = stored
            self.recorder.record(project, content_type, data, self._record(answer, publish_name, data, content_type,
                                                                           application))
        return answer

    def _prepare(self, data: bytes, backbone: Backbone, task: str) -> tuple[np.ndarray, str]:
        image, content_type = images.decode(data, self.settings)
        if task == detection.DETECTION:
            return detection.to_input(image, backbone.input_size)[np.newaxis], content_type
        return classification.to_input(image, backbone)[np.newaxis], content_type

    @staticmethod
    def _record(answer: ImagePrediction, publish_name: str, data: bytes, content_type: str,
                application: str | None) -> dataset.PredictionRecord:
        return dataset.PredictionRecord(
            id=answer.id, project=answer.project, iteration=answer.iteration, published_name=publish_name,
            created=answer.created, sha256=dataset.content_hash(data), content_type=content_type, size=len(data),
            application=application,
            predictions=[dataset.PredictedTag(
                tag_id=p.tag_id, tag_name=p.tag_name, probability=p.probability,
                region=dataset.Region(tag=p.tag_name, **p.bounding_box.model_dump()) if p.bounding_box else None)
                for p in answer.predictions],
        )


def _tags(tag_id: Callable[[str], str], labels: tuple[str, ...], probabilities: np.ndarray) -> list[Prediction]:
    if probabilities.shape != (len(labels),):
        raise CustomVisionError(f"The model returned {probabilities.shape} scores for {len(labels)} tags.",
                                "ErrorPrediction")
    return sorted((_prediction(tag_id, tag, p) for tag, p in zip(labels, probabilities.tolist(), strict=True)),
                  key=lambda p: -p.probability)


def _boxes(tag_id: Callable[[str], str], labels: tuple[str, ...], found: Detections) -> list[Prediction]:
    if found.classes.size and not 0 <= int(found.classes.min()) <= int(found.classes.max()) < len(labels):
        raise CustomVisionError(f"The model named a tag outside its {len(labels)} labels.", "ErrorPrediction")
    predictions = []
    for (left, top, width, height), score, row in zip(found.boxes.tolist(), found.scores.tolist(),
                                                      found.classes.tolist(), strict=True):
        # The model's boxes may reach past the image by a rounding error; Custom Vision's stay inside it.
        left, top = min(max(left, 0.0), 1.0), min(max(top, 0.0), 1.0)
        box = BoundingBox(left=left, top=top, width=min(max(width, 0.0), 1 - left),
                          height=min(max(height, 0.0), 1 - top))
        if box.width > 0 and box.height > 0:
            predictions.append(_prediction(tag_id, labels[row], score, box))
    return sorted(predictions, key=lambda p: -p.probability)


def _prediction(tag_id: Callable[[str], str], tag: str, probability: float, box: BoundingBox | None = None
                ) -> Prediction:
    return Prediction(probability=probability, tag_id=tag_id(tag), tag_name=tag, bounding_box=box,
                      tag_type=TagType.NEGATIVE if tag == NEGATIVE_TAG else TagType.REGULAR)
