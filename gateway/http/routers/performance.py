"""The training API's performance of an iteration, overall and per held-out image."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from kubevision.gateway import wire
from kubevision.gateway.http.deps import BaseUrl, Performance, TrainingNamespace
from kubevision.gateway.http.routing import IdList, Routes, Skip, Take, ids
from kubevision.gateway.services.images import newest_first, tag_filter

routes = Routes()


@routes("GET", "/projects/{project_id}/iterations/{iteration_id}/performance",
        response_model=wire.IterationPerformance)
async def get_iteration_performance(project_id: str, iteration_id: str, namespace: TrainingNamespace,
                                    service: Performance, threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
                                    overlap_threshold: Annotated[float | None, Query(
                                        alias="overlapThreshold", ge=0, le=1)] = None):
    return await service.performance(namespace, project_id, iteration_id, threshold, overlap_threshold)


@routes("GET", "/projects/{project_id}/iterations/{iteration_id}/performance/images",
        response_model=list[wire.ImagePerformance])
async def get_image_performances(project_id: str, iteration_id: str, namespace: TrainingNamespace,
                                 service: Performance, base: BaseUrl, tag_ids: Annotated[IdList, Query(
                                     alias="tagIds")] = None,
                                 order_by: Annotated[str | None, Query(alias="orderBy", max_length=16)] = None,
                                 take: Take = 50, skip: Skip = 0):
    return await service.image_performances(namespace, project_id, iteration_id, tag_filter(ids(tag_ids)),
                                            newest_first(order_by), skip, take, base)


@routes("GET", "/projects/{project_id}/iterations/{iteration_id}/performance/images/count", response_model=int)
async def get_image_performance_count(project_id: str, iteration_id: str, namespace: TrainingNamespace,
                                      service: Performance, tag_ids: Annotated[IdList, Query(alias="tagIds")] = None):
    return await service.image_performance_count(namespace, project_id, iteration_id,
                                                 tag_filter(ids(tag_ids)))
