"""Reading images out of requests: the raw body, or the parts of a multipart form read without a form parser (which
would decode a part without a file name as text), each within its byte limit before it is all read."""

from __future__ import annotations

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from kubevision.core.images import MAX_IMAGE_BYTES
from kubevision.core.labelstore.store import MAX_BATCH
from kubevision.gateway.errors import CustomVisionError, UnsupportedMediaType

UPLOAD_SLACK = 64 * 1024  # multipart headers and boundaries around the image
UPLOAD_LIMIT = MAX_BATCH * MAX_IMAGE_BYTES + 1024 * 1024  # a full batch of the largest images, and its multipart


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


async def all_parts(request: Request) -> list[bytes]:
    """Every part of a multipart form (one image each), or the raw body as one image."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        if media_type not in ("application/octet-stream", "") and not media_type.startswith("image/"):
            raise UnsupportedMediaType(f"Content-Type {media_type} is not accepted: send multipart/form-data or "
                                       "application/octet-stream.")
        return [await image_bytes(request, MAX_IMAGE_BYTES + 1)]  # one byte over: the store says ErrorImageSize
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > UPLOAD_LIMIT:
        raise CustomVisionError(f"The batch is over {UPLOAD_LIMIT} bytes.", "BadRequestImageBatch")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > UPLOAD_LIMIT:
            raise CustomVisionError(f"The batch is over {UPLOAD_LIMIT} bytes.", "BadRequestImageBatch")
    return multipart_parts(bytes(body), content_type)
