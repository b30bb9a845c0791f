"""What a trained iteration left in S3, as the training API reads it: its held-out predictions (performance at any
threshold, and each held-out image's predictions) and its ONNX model, classifier or detector, run here in ONNX
Runtime to quick-test an iteration that is not published (a published one is quick-tested on Triton, as predictions
are).

Both are written once per iteration and never change, so each is cached, a few iterations at a time: a user
quick-testing or reading the performance of an iteration asks again and again about the same one."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import onnxruntime

from kubevision.core import dataset
from kubevision.core.api import Iteration
from kubevision.core.domains import Backbone
from kubevision.core.heldout import HeldOut
from kubevision.core.serving import classification, detection, model_config
from kubevision.core.serving.detection import Detections
from kubevision.core.settings import GatewaySettings
from kubevision.core.storage import (
    STORAGE_FAULTS,
    DatasetLayout,
    ObjectStore,
    held_out_key,
    is_missing,
    model_labels_key,
    model_onnx_key,
)
from kubevision.core.training import iteration_id
from kubevision.gateway.catalog import Project, annotations
from kubevision.gateway.errors import NotFound, ServiceUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
TAG_IDS_ANNOTATION = "kubevision.io/tag-ids"  # {tag name: id} when trained, for tags whose id is not the derived one
MODEL_SESSIONS = 4  # ONNX Runtime sessions kept (a model of the lite domains takes 15-30 MB)
HELD_OUT_SETS = 8
SNAPSHOTS = 4  # parsed training snapshots (100,000 images take about 100 MB)
SESSION_THREADS = 2  # one quick test must not take every core of the gateway


def session_options() -> onnxruntime.SessionOptions:
    """Few threads, and none busy-waiting between operators: the gateway's event loop needs the same cores."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = SESSION_THREADS
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def tag_ids(project_uid: str, iteration: Iteration | None) -> Callable[[str], str]:
    """The id of each tag an iteration was trained with, by the name its model knows. A tag's id never changes;
    its name may, so an iteration keeps the ids of the tags whose id is not derived from their name then."""
    try:
        kept = json.loads((annotations(iteration) if iteration else {}).get(TAG_IDS_ANNOTATION) or "{}")
    except ValueError:
        kept = {}
    return lambda name: kept.get(name) or dataset.tag_id(project_uid, name)


@dataclass(frozen=True)
class LocalModel:
    """An iteration's exported model in ONNX Runtime, tags in the order of labels.txt. A classifier has the contract
    of core.serving.classification (`images` in, `probabilities` out), a detector that of core.serving.detection
    (boxes, scores and classes out, decoded and suppressed inside the model); its outputs say which it is."""

    session: onnxruntime.InferenceSession
    backbone: Backbone  # a detector's: its input size alone (it stretches, never crops)
    labels: tuple[str, ...]
    task: str = classification.CLASSIFICATION

    def run(self, batch: np.ndarray) -> np.ndarray:
        return classification.probabilities(self._outputs(batch, classification.OUTPUTS))

    def detect(self, batch: np.ndarray) -> Detections:
        return Detections.decode(self._outputs(batch, detection.OUTPUTS))

    def _outputs(self, batch: np.ndarray, names: tuple[str, ...]) -> list[np.ndarray]:
        return self.session.run(list(names), {model_config.INPUT: batch})


class _Cache:
    """The last few values loaded, by key; loads one at a time, so two requests never load the same value twice."""

    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict[str, Any] = OrderedDict()
        self.lock = asyncio.Lock()

    async def get(self, key: str, load: Callable[[], T]) -> T:
        async with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
            value = await asyncio.to_thread(load)
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
            return value


class TrainedIterations:
    def __init__(self, objects: ObjectStore, settings: GatewaySettings):
        self.objects = objects
        self.settings = settings
        self._held_out = _Cache(HELD_OUT_SETS)
        self._models = _Cache(MODEL_SESSIONS)
        self._snapshots = _Cache(SNAPSHOTS)

    def _unavailable(self, what: str, error: Exception) -> ServiceUnavailable:
        log.warning("%s: %s", what, error)
        return ServiceUnavailable(f"{what} cannot be read now; try again shortly.", self.settings.retry_after_seconds)

    async def held_out(self, iteration: Iteration) -> HeldOut | None:
        """The iteration's held-out predictions; None for an iteration trained before they were kept."""
        key = held_out_key(iteration.metadata.namespace, iteration_id(iteration))

        def load() -> HeldOut | None:
            try:
                return HeldOut.model_validate_json(self.objects.get(self.objects.settings.models_bucket, key))
            except STORAGE_FAULTS as error:
                if is_missing(error):
                    return None
                raise self._unavailable("The iteration's held-out predictions", error) from error

        return await self._held_out.get(key, load)

    async def snapshot(self, project: Project, iteration: Iteration) -> list[dataset.ImageRecord]:
        """The manifest the iteration was trained on, frozen when its training started."""
        layout = DatasetLayout(project.dataset_bucket, project.dataset_prefix)
        key = layout.snapshot_key(iteration_id(iteration))

        def load() -> list[dataset.ImageRecord]:
            try:
                return dataset.loads(self.objects.get(layout.bucket, key))
            except STORAGE_FAULTS as error:
                if is_missing(error):
                    raise NotFound(f"Iteration {iteration.metadata.uid} has no training snapshot yet.",
                                   "NotFoundIteration") from error
                raise self._unavailable("The iteration's training snapshot", error) from error

        return await self._snapshots.get(f"{layout.bucket}/{key}", load)

    async def model(self, iteration: Iteration) -> LocalModel:
        uri = iteration.status.model_uri
        if not uri:
            raise NotFound("The iteration has no model.", "NotFoundIteration")
        bucket, labels_key = model_labels_key(uri)
        model_key = model_onnx_key(uri)[1]

        def load() -> LocalModel:
            try:
                onnx, labels = self.objects.get(bucket, model_key), self.objects.get(bucket, labels_key)
            except STORAGE_FAULTS as error:
                if is_missing(error):
                    raise NotFound("The iteration's model is not in storage.", "NotFoundIteration") from error
                raise self._unavailable("The iteration's model", error) from error
            session = onnxruntime.InferenceSession(onnx, session_options(), providers=["CPUExecutionProvider"])
            size = int(session.get_inputs()[0].shape[-1])
            outputs = {output.name for output in session.get_outputs()}
            task = detection.DETECTION if detection.BOXES in outputs else classification.CLASSIFICATION
            return LocalModel(session, Backbone("", "", size), tuple(labels.decode().splitlines()), task)

        return await self._models.get(f"{bucket}/{model_key}", load)
