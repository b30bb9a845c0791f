"""Custom Vision's training API (v3.3, and v3.4-preview, which the official SDKs call): one router per API version
over the route groups (domains and projects, tags, images, iterations, performance, exports, stored predictions,
quick tests). Routes are thin: parse, call a service, answer. The Training-Key check is the router's dependency."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from kubevision.gateway import wire
from kubevision.gateway.http.deps import training_namespace
from kubevision.gateway.http.routers import (
    exports,
    images,
    iterations,
    performance,
    predictions,
    projects,
    quicktest,
    tags,
)

VERSIONS = ("v3.3", "v3.4-preview")

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": wire.CustomVisionErrorBody, "description": description} for status, description in {
        400: "The request is not acceptable: the body's code says why.",
        401: "The Training-Key is missing or not valid.",
        404: "No such project, tag, iteration or domain for this key.",
        408: "The headers or the body arrived too slowly.",
        409: "The project's manifest belongs to someone else (docs/storage.md).",
        413: "The body is over its route's limit (docs/gateway.md, Limits).",
        415: "The body's media type is not accepted.",
        429: "The key is over its rate limit (docs/gateway.md, Rate limits); retry after Retry-After seconds.",
        503: "No room for an upload now; retry after Retry-After seconds.",
    }.items()
}
GROUPS = (projects, tags, images, iterations, performance, exports, predictions, quicktest)  # in the order served


def router(version: str) -> APIRouter:
    routes = APIRouter(prefix=f"/customvision/{version}/training", tags=[f"Training {version}"], responses=ERRORS,
                       dependencies=[Depends(training_namespace)])
    suffix = version.replace(".", "_").replace("-", "_")
    for group in GROUPS:
        group.routes.add_to(routes, suffix)
    return routes
