"""The training API's ONNX exports of an iteration."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from kubevision.gateway import wire
from kubevision.gateway.http.deps import BaseUrl, Exports, TrainingNamespace
from kubevision.gateway.http.routing import Routes

routes = Routes()


@routes("GET", "/projects/{project_id}/iterations/{iteration_id}/export", response_model=list[wire.Export])
async def get_exports(project_id: str, iteration_id: str, namespace: TrainingNamespace, exports: Exports,
                      base: BaseUrl):
    return exports.exports(namespace, project_id, iteration_id, base)


@routes("POST", "/projects/{project_id}/iterations/{iteration_id}/export", response_model=wire.Export)
async def export_iteration(project_id: str, iteration_id: str, namespace: TrainingNamespace, exports: Exports,
                           base: BaseUrl, platform: Annotated[str, Query(max_length=32)],
                           flavor: Annotated[str | None, Query(max_length=32)] = None):
    return exports.export(namespace, project_id, iteration_id, platform, flavor, base)
