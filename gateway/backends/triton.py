"""Triton behind one class: a preprocessed image in, a classifier's probabilities or a detector's boxes out (the
model's config says which: core.serving). No Triton type leaves this module.

Clients are pooled per Triton endpoint (async HTTP, binary tensors). What a model needs to be called (its input
size and preprocessing, its labels) is read once per model from Triton's model config and the labels file beside
the model in S3, then cached by (endpoint, model). A model is named after its Iteration's uid (core.labels.model_name),
whose model never changes: the cache never goes stale, and no two namespaces' Iterations share an entry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import tritonclient.http.aio as triton
from tritonclient.utils import InferenceServerException

from kubevision.core.domains import Backbone
from kubevision.core.serving import classification, detection, model_config
from kubevision.core.serving.detection import Detections
from kubevision.core.settings import GatewaySettings
from kubevision.gateway import metrics
from kubevision.gateway.catalog import PublishedModel
from kubevision.gateway.errors import InternalError, ServiceUnavailable

log = logging.getLogger(__name__)

LabelReader = Callable[[str], list[str]]  # model URI -> labels, in output order


@dataclass(frozen=True)
class ModelShape:
    backbone: Backbone  # a detector's: its input size alone (it stretches, never crops)
    labels: tuple[str, ...]
    task: str = classification.CLASSIFICATION  # detection.DETECTION for a detector


class Classifier:
    def __init__(self, settings: GatewaySettings, read_labels: LabelReader):
        self.settings = settings
        self.read_labels = read_labels
        self._clients: dict[str, triton.InferenceServerClient] = {}
        self._shapes: dict[tuple[str, str], ModelShape] = {}

    def _client(self, endpoint: str) -> triton.InferenceServerClient:
        host = urlsplit(endpoint).netloc or endpoint
        if host not in self._clients:
            self._clients[host] = triton.InferenceServerClient(host, conn_timeout=self.settings.triton_timeout_seconds)
        return self._clients[host]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    def _unavailable(self, what: str, code: str | None = None) -> ServiceUnavailable:
        return ServiceUnavailable(what, self.settings.retry_after_seconds, code)

    async def shape(self, model: PublishedModel) -> ModelShape:
        key = (model.endpoint, model.model)
        if key not in self._shapes:
            config = await self._call(self._client(model.endpoint).get_model_config(model.model), model)
            try:
                served = model_config.read_config(config)
            except ValueError as error:  # the gateway would prepare images unlike the trainer
                raise InternalError(f"model {model.model} {error}") from error
            try:
                labels = await asyncio.to_thread(self.read_labels, model.model_uri)
            except Exception as error:  # S3 unreachable or slow: the same as Triton being away
                log.warning("labels of %s at %s: %s", model.model, model.model_uri, error)
                raise self._unavailable("The model's labels cannot be read now; try again shortly.") from error
            self._shapes[key] = ModelShape(served.backbone, tuple(labels), served.task)
        return self._shapes[key]

    async def infer(self, model: PublishedModel, batch: np.ndarray) -> np.ndarray:
        """The model's probabilities for one preprocessed image (batch of one)."""
        return classification.probabilities(await self._run(model, batch, classification.OUTPUTS))

    async def detect(self, model: PublishedModel, batch: np.ndarray) -> Detections:
        """A detector's boxes for one preprocessed image (batch of one), the rows past its last detection dropped."""
        return Detections.decode(await self._run(model, batch, detection.OUTPUTS))

    async def _run(self, model: PublishedModel, batch: np.ndarray, names: tuple[str, ...]) -> list[np.ndarray]:
        """The model's outputs `names`, in that order, for a batch of preprocessed images."""
        request = triton.InferInput(model_config.INPUT, list(batch.shape), "FP32")
        request.set_data_from_numpy(batch, binary_data=True)
        outputs = [triton.InferRequestedOutput(name, binary_data=True) for name in names]
        started = time.perf_counter()
        result = await self._call(self._client(model.endpoint).infer(model.model, [request], outputs=outputs), model)
        metrics.TRITON_SECONDS.observe(time.perf_counter() - started)
        return [result.as_numpy(name) for name in names]

    async def _call(self, call, model: PublishedModel):
        try:
            async with asyncio.timeout(self.settings.triton_timeout_seconds):
                return await call
        except InferenceServerException as error:
            text = str(error)
            if "unknown model" in text or "not ready" in text or "no available" in text or "unavailable" in text:
                raise self._unavailable(f"The model of {model.publish_name!r} is being loaded; try again shortly.",
                                        "ErrorPredictionModelNotCached") from error
            log.error("Triton at %s refused %s: %s", model.endpoint, model.model, text)
            raise InternalError(f"The prediction failed: {text[:300]}", "ErrorPrediction") from error
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            log.warning("Triton at %s: %s", model.endpoint, type(error).__name__)
            raise self._unavailable("The prediction service is unavailable; try again shortly.") from error
