"""Custom Vision's prediction API (v3.0 and v3.1): classify and detect, from an uploaded image or a URL, with or
without storing the prediction. Thin: parse, call the prediction service, answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from kubevision.gateway.http.deps import PredictionNamespace, Predictions
from kubevision.gateway.http.uploads import image_bytes
from kubevision.gateway.wire import CustomVisionErrorBody, ImagePrediction, ImageUrl

VERSIONS = ("v3.0", "v3.1")
Kind = Literal["classify", "detect"]
Application = Annotated[str | None, Query(max_length=64, description="Name of the calling application.")]

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": CustomVisionErrorBody, "description": description} for status, description in {
        400: "The image, its URL or the request is not acceptable.",
        401: "The Prediction-Key is missing or not valid.",
        404: "No such project for this key, or nothing published under this name.",
        408: "The headers or the body arrived too slowly.",
        413: "The body is over its route's limit (docs/gateway.md, Limits).",
        415: "The body is neither multipart/form-data nor application/octet-stream.",
        429: "The key is over its rate limit (docs/gateway.md, Rate limits); retry after Retry-After seconds.",
        503: "Inference is not available now; retry after Retry-After seconds.",
    }.items()
}
IMAGE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["imageData"], "properties": {
        "imageData": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}}}


def _image_route(kind: Kind, store: bool):
    async def predict_image(request: Request, project_id: str, published_name: str, namespace: PredictionNamespace,
                            service: Predictions, application: Application = None) -> ImagePrediction:
        data = await image_bytes(request, service.settings.max_image_bytes)
        return await service.predict(namespace, project_id, published_name, kind, data, store, application)

    return predict_image


def _url_route(kind: Kind, store: bool):
    async def predict_url(body: ImageUrl, project_id: str, published_name: str, namespace: PredictionNamespace,
                          service: Predictions, application: Application = None) -> ImagePrediction:
        return await service.predict_url(namespace, project_id, published_name, kind, body.url, store, application)

    return predict_url


def router(version: str) -> APIRouter:
    """The eight routes of one API version: {classify, detect} x {image, url} x {stored, nostore}."""
    routes = APIRouter(prefix=f"/customvision/{version}/prediction", tags=[f"Prediction {version}"],
                       responses=ERRORS)
    for kind in ("classify", "detect"):
        for store in (True, False):
            nostore = "" if store else "/nostore"
            for source, endpoint, extra in (("image", _image_route(kind, store), IMAGE_BODY),
                                            ("url", _url_route(kind, store), None)):
                routes.add_api_route(
                    f"/{{project_id}}/{kind}/iterations/{{published_name}}/{source}{nostore}", endpoint,
                    methods=["POST"], response_model=ImagePrediction, response_model_exclude_none=True,
                    name=f"{kind}_{source}{nostore.replace('/', '_')}_{version.replace('.', '_')}",
                    openapi_extra=extra,
                )
    return routes
