"""The training API's quick tests of an iteration on one image, and its suggested tags and regions for stored
images."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from kubevision.core.api import Iteration
from kubevision.gateway import wire
from kubevision.gateway.catalog import Project
from kubevision.gateway.http.deps import Iterations, Labeller, Predictions, TrainingNamespace
from kubevision.gateway.http.routing import IMAGES_BODY, IdList, Routes, ids
from kubevision.gateway.http.uploads import image_bytes
from kubevision.gateway.services.predictions import PredictionService

routes = Routes()


@routes("POST", "/projects/{project_id}/quicktest/image", response_model=wire.ImagePrediction,
        openapi_extra=IMAGES_BODY)
async def quick_test_image(request: Request, project_id: str, namespace: TrainingNamespace, iterations: Iterations,
                           predictions: Predictions,
                           iteration_id: Annotated[str | None, Query(alias="iterationId", max_length=64)] = None,
                           store: bool = True):
    target = iterations.quick_test_target(namespace, project_id, iteration_id)
    data = await image_bytes(request, predictions.settings.max_image_bytes)
    return await quick_test(predictions, namespace, target, data, store)


@routes("POST", "/projects/{project_id}/quicktest/url", response_model=wire.ImagePrediction)
async def quick_test_image_url(project_id: str, image: wire.ImageUrl, namespace: TrainingNamespace,
                               iterations: Iterations, predictions: Predictions,
                               iteration_id: Annotated[str | None, Query(alias="iterationId",
                                                                         max_length=64)] = None,
                               store: bool = True):
    target = iterations.quick_test_target(namespace, project_id, iteration_id)
    data = await predictions.fetcher.fetch(image.url)
    return await quick_test(predictions, namespace, target, data, store)


@routes("POST", "/projects/{project_id}/tagsandregions/suggestions", response_model=list[wire.SuggestedTags])
async def suggest_tags_and_regions(project_id: str, namespace: TrainingNamespace, iterations: Iterations,
                                   labeller: Labeller, predictions: Predictions,
                                   iteration_id: Annotated[str, Query(alias="iterationId", max_length=64)],
                                   image_ids: Annotated[IdList, Query(alias="imageIds")] = None):
    project, body, _ = iterations.quick_test_target(namespace, project_id, iteration_id)
    images = await labeller.image_contents(namespace, project_id, ids(image_ids) or [])
    return await predictions.suggest(project, body, images)


async def quick_test(predictions: PredictionService, namespace: str, target: tuple[Project, Iteration, str | None],
                     data: bytes, store: bool) -> wire.ImagePrediction:
    """A published iteration is tested where predictions run (Triton); any other trained one in the gateway."""
    project, body, served = target
    if served:
        kind = predictions.kind(namespace, project.uid)
        return await predictions.predict(namespace, project.uid, served, kind, data, store, None)
    return await predictions.quick_test(project, body, data, store)
