"""The prediction service, free of HTTP: find the published model of a project the caller may see, prepare the
image, ask Triton, answer in Custom Vision's shape, and keep the prediction unless asked not to."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import httpx
import numpy as np

from kubevision.core import dataset
from kubevision.core.labelstore.predictions import PredictionIndex
from kubevision.core.labelstore.store import LabelStore, ProjectRef
from kubevision.core.preprocessing import to_input
from kubevision.core.settings import GatewaySettings
from kubevision.core.storage import DatasetLayout, ObjectStore
from kubevision.gateway import images, metrics
from kubevision.gateway.catalog import Project, PublishedModel
from kubevision.gateway.errors import CustomVisionError
from kubevision.gateway.inference import Classifier
from kubevision.gateway.sources import CatalogSource
from kubevision.gateway.trained import TrainedIterations, tag_ids
from kubevision.gateway.wire import ImagePrediction, Prediction, SuggestedTags, TagType

log = logging.getLogger(__name__)

NEGATIVE_TAG = "Negative"
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
                 recorder: PredictionRecorder | None, http: httpx.AsyncClient, trained: TrainedIterations):
        self.settings = settings
        self.source = source
        self.classifier = classifier
        self.trained = trained  # runs iterations that are not published, for quick tests
        self.recorder = recorder
        self.http = http

    def _model(self, namespace: str, project_id: str, publish_name: str, kind: str) -> tuple[Project, PublishedModel]:
        catalog = self.source.catalog
        project = catalog.project(namespace, project_id)
        if kind == "detect":
            if project.type != "ObjectDetection":
                raise CustomVisionError(f"Project {project.uid} is a {project.type} project: use the classify "
                                        "routes.", "BadRequestNotSupported")
            raise CustomVisionError("Object detection cannot be served yet: its training and serving are still "
                                    "being built.", "BadRequestNotSupported")
        if project.type != "Classification":
            raise CustomVisionError(f"Project {project.uid} is an {project.type} project: use the detect routes.",
                                    "BadRequestNotSupported")
        return project, catalog.published_model(project, publish_name)

    async def predict_url(self, namespace: str, project_id: str, publish_name: str, kind: str, url: str,
                          store: bool, application: str | None) -> ImagePrediction:
        self._model(namespace, project_id, publish_name, kind)  # an unknown project is told before any fetch
        data = await images.fetch(url, self.http, self.settings)
        return await self.predict(namespace, project_id, publish_name, kind, data, store, application)

    async def predict(self, namespace: str, project_id: str, publish_name: str, kind: str, data: bytes,
                      store: bool, application: str | None) -> ImagePrediction:
        project, model = self._model(namespace, project_id, publish_name, kind)
        shape = await self.classifier.shape(model)
        batch, content_type = await asyncio.to_thread(self._prepare, data, shape.backbone)
        probabilities = await self.classifier.infer(model, batch)
        body = next((b for b in self.source.catalog.iterations.get(project.uid, [])
                     if b["metadata"]["uid"] == model.iteration_uid), {"metadata": {"uid": model.iteration_uid}})
        return self._answer(project, body, model.publish_name, shape.labels, probabilities,
                            (data, content_type, application) if store else None)

    async def quick_test(self, project: Project, body: dict, data: bytes, store: bool) -> ImagePrediction:
        """An iteration that is not published, run here in ONNX Runtime from its exported model."""
        model = await self.trained.model(body)
        batch, content_type = await asyncio.to_thread(self._prepare, data, model.backbone)
        probabilities = await asyncio.to_thread(model.run, batch)
        return self._answer(project, body, "", model.labels, probabilities,
                            (data, content_type, None) if store else None)

    async def suggest(self, project: Project, body: dict, images: list[tuple[str, bytes]]) -> list[SuggestedTags]:
        """Tags for images of the project, from a trained iteration run in the gateway (never stored): for
        labelling, so it never takes Triton's time from the served traffic."""
        suggested = []
        for image_id, data in images:
            answer = await self.quick_test(project, body, data, store=False)
            suggested.append(SuggestedTags(id=image_id, project=project.uid, iteration=answer.iteration,
                                           created=answer.created, predictions=answer.predictions,
                                           prediction_uncertainty=1 - answer.predictions[0].probability))
        return suggested

    def _answer(self, project: Project, body: dict, publish_name: str, labels: tuple[str, ...],
                probabilities: np.ndarray, stored: tuple[bytes, str, str | None] | None) -> ImagePrediction:
        """The answer in Custom Vision's shape, each tag by the id it had when the iteration was trained; kept as
        a stored prediction when `stored` holds the image, its type and the application."""
        if probabilities.shape != (len(labels),):
            raise CustomVisionError(f"The model returned {probabilities.shape} scores for {len(labels)} tags.",
                                    "ErrorPrediction")
        tag_id = tag_ids(project.uid, body)
        predictions = sorted(
            (Prediction(probability=p, tag_id=tag_id(tag), tag_name=tag,
                        tag_type=TagType.NEGATIVE if tag == NEGATIVE_TAG else TagType.REGULAR)
             for tag, p in zip(labels, probabilities.tolist(), strict=True)),
            key=lambda p: -p.probability,
        )
        answer = ImagePrediction(id=str(uuid.uuid4()), project=project.uid, iteration=body["metadata"]["uid"],
                                 created=datetime.now(UTC), predictions=predictions)
        if stored and self.recorder and self.settings.store_predictions:
            data, content_type, application = stored
            self.recorder.record(project, content_type, data, self._record(answer, publish_name, data, content_type,
                                                                           application))
        return answer

    def _prepare(self, data: bytes, backbone) -> tuple[np.ndarray, str]:
        image, content_type = images.decode(data, self.settings)
        return to_input(image, backbone)[np.newaxis], content_type

    @staticmethod
    def _record(answer: ImagePrediction, publish_name: str, data: bytes, content_type: str,
                application: str | None) -> dataset.PredictionRecord:
        return dataset.PredictionRecord(
            id=answer.id, project=answer.project, iteration=answer.iteration, published_name=publish_name,
            created=answer.created, sha256=dataset.content_hash(data), content_type=content_type, size=len(data),
            application=application,
            predictions=[dataset.PredictedTag(tag_id=p.tag_id, tag_name=p.tag_name, probability=p.probability)
                         for p in answer.predictions],
        )
