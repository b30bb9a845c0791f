"""Custom Vision's prediction API (v3.0 and v3.1): classify and detect, from an uploaded image or a URL, with or
without storing the prediction. Thin: parse, call the prediction service, answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from kubevision.gateway.http.deps import PredictionNamespace, Predictions
from kubevision.gateway.errors import CustomVisionError, UnsupportedMediaType
from kubevision.gateway.wire import CustomVisionErrorBody, ImagePrediction, ImageUrl

VERSIONS = ("v3.0", "v3.1")
Kind = Literal["classify", "detect"]
Application = Annotated[str | None, Query(max_length=64, description="Name of the calling application.")]
UPLOAD_SLACK = 64 * 1024  # multipart headers and boundaries around the image

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": CustomVisionErrorBody, "description": description} for status, description in {
        400: "The image, its URL or the request is not acceptable.",
        401: "The Prediction-Key is missing or not valid.",
        404: "No such project for this key, or nothing published under this name.",
        415: "The body is neither multipart/form-data nor application/octet-stream.",
        503: "Inference is not available now; retry after Retry-After seconds.",
    }.items()
}
IMAGE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["imageData"], "properties": {
        "imageData": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}}}


async def image_bytes(request: Request, limit: int) -> bytes:
    """The image of a request: the first part of a multipart form (the SDKs send one part, imageData, often
    without a file name), or the raw body."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    multipart = media_type == "multipart/form-data"
    if not multipart and media_type not in ("application/octet-stream", "") and not media_type.startswith("image/"):
        raise UnsupportedMediaType(f"Content-Type {media_type} is not accepted: send multipart/form-data or "
                                   "application/octet-stream.")
    cap = limit + UPLOAD_SLACK if multipart else limit
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise _too_large(limit)
    data = first_part(bytes(body), content_type) if multipart else bytes(body)
    if len(data) > limit:
        raise _too_large(limit)
    return data


def _too_large(limit: int) -> CustomVisionError:
    return CustomVisionError(f"The image is over the limit of {limit} bytes.", "BadRequestImageSizeBytes")


def multipart_parts(body: bytes, content_type: str) -> list[bytes]:
    """The bytes of every part of a multipart body, undecoded (a form parser would decode a part without a file
    name as text)."""
    _, options = parse_options_header(content_type)
    if not options.get(b"boundary"):
        raise CustomVisionError("The multipart body has no boundary.", "BadRequestImageStream")
    parts: list[bytearray] = []
    parser = MultipartParser(options[b"boundary"], {
        "on_part_begin": lambda: parts.append(bytearray()),
        "on_part_data": lambda data, start, end: parts[-1].extend(data[start:end]),
    })
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as error:
        raise CustomVisionError(f"The multipart body cannot be read: {error}", "BadRequestImageStream") from error
    return [bytes(part) for part in parts]


def first_part(body: bytes, content_type: str) -> bytes:
    """The first part of a multipart body: the SDKs send one, imageData."""
    parts = multipart_parts(body, content_type)
    if not parts:
        raise CustomVisionError("The form holds no image (imageData).", "BadRequestImageStream")
    return parts[0]


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
