"""Downloads behind signed links (gateway/links.py): image bytes and exported models, for callers that hold a link
and no key, as Custom Vision's image and export URIs work."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from kubevision.gateway import links


def router() -> APIRouter:
    routes = APIRouter(prefix=links.PREFIX, tags=["Downloads"])

    @routes.get("/{project_id}/images/{sha256}", response_class=Response)
    async def image(request: Request, project_id: str, sha256: str, expires: Annotated[int, Query(ge=0)],
                    signature: Annotated[str, Query(max_length=64)]) -> Response:
        data = await request.app.state.files.image(links.ImageLink(project_id, sha256, expires, signature))
        return Response(data, media_type="application/octet-stream")

    @routes.get("/{project_id}/models/{iteration_id}.onnx", response_class=Response)
    async def model(request: Request, project_id: str, iteration_id: str, expires: Annotated[int, Query(ge=0)],
                    signature: Annotated[str, Query(max_length=64)]) -> Response:
        path = f"{project_id}/models/{iteration_id}.onnx"
        project = request.app.state.files.project(project_id, path, expires, signature)
        bucket, key = request.app.state.exports.model_object(project, iteration_id)
        data = await asyncio.to_thread(request.app.state.objects.get, bucket, key)
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{iteration_id}.onnx"'})

    return routes
