"""Downloads behind signed links (gateway/links.py): image bytes and exported models, for callers that hold a link
and no key, as Custom Vision's image and export URIs work."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from kubevision.core.storage import DatasetLayout
from kubevision.gateway import links
from kubevision.gateway.errors import NotFound, Unauthorized

SHA256 = re.compile(r"^[0-9a-f]{64}$")


def router() -> APIRouter:
    routes = APIRouter(prefix=links.PREFIX, tags=["Downloads"])

    def _project(request: Request, project_id: str, path: str, expires: int, signature: str):
        catalog = request.app.state.source.catalog
        project = catalog.projects.get(project_id)
        keys = catalog.keys.get(project.namespace) if project else None
        if project is None or keys is None or not links.valid(keys.training, path, expires, signature):
            raise Unauthorized("The link is not valid, or has expired.")
        return project

    @routes.get("/{project_id}/images/{sha256}", response_class=Response)
    async def image(request: Request, project_id: str, sha256: str, expires: Annotated[int, Query(ge=0)],
                    signature: Annotated[str, Query(max_length=64)]) -> Response:
        project = _project(request, project_id, f"{project_id}/images/{sha256}", expires, signature)
        if not SHA256.match(sha256):
            raise NotFound("No such image.", "NotFoundImage")
        objects = request.app.state.objects
        layout = DatasetLayout(project.dataset_bucket, project.dataset_prefix)
        data = await asyncio.to_thread(objects.get, layout.bucket, layout.image_key(sha256))
        return Response(data, media_type="application/octet-stream")

    @routes.get("/{project_id}/models/{iteration_id}.onnx", response_class=Response)
    async def model(request: Request, project_id: str, iteration_id: str, expires: Annotated[int, Query(ge=0)],
                    signature: Annotated[str, Query(max_length=64)]) -> Response:
        project = _project(request, project_id, f"{project_id}/models/{iteration_id}.onnx", expires, signature)
        bucket, key = request.app.state.exports.model_object(project, iteration_id)
        data = await asyncio.to_thread(request.app.state.objects.get, bucket, key)
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{iteration_id}.onnx"'})

    return routes
