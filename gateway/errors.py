"""Typed errors, raised anywhere in the gateway and rendered by one handler (gateway/http/errors.py) into Custom
Vision's error body `{"code": ..., "message": ...}`. Codes are those of the official SDK's CustomVisionErrorCodes."""

from __future__ import annotations


class CustomVisionError(Exception):
    status = 400
    code = "BadRequest"

    def __init__(self, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.headers = headers or {}


class Unauthorized(CustomVisionError):
    status, code = 401, "Unauthorized"


class NotFound(CustomVisionError):
    status, code = 404, "NotFound"


class UnsupportedMediaType(CustomVisionError):
    status, code = 415, "UnsupportedMediaType"


class PayloadTooLarge(CustomVisionError):
    """A request body over its route's limit (the SDK has no code of its own for it)."""

    status, code = 413, "BadRequest"


class RequestTimeout(CustomVisionError):
    """A client that sent its headers or body too slowly."""

    status, code = 408, "BadRequest"


class ServiceUnavailable(CustomVisionError):
    """Inference cannot be served now; the client should come back after Retry-After."""

    status, code = 503, "ErrorPredictionServiceUnavailable"

    def __init__(self, message: str, retry_after: int, code: str | None = None):
        super().__init__(message, code, {"Retry-After": str(retry_after)})


class TooManyRequests(CustomVisionError):
    """A key over its rate limit (gateway/rate_limits.py): Azure Cognitive Services' answer, code "429"."""

    status, code = 429, "429"

    def __init__(self, retry_after: int):
        super().__init__(f"Rate limit is exceeded. Try again in {retry_after} seconds.",
                         headers={"Retry-After": str(retry_after)})


class InternalError(CustomVisionError):
    status, code = 500, "ErrorUnknown"


def image_too_large(limit: int) -> CustomVisionError:
    return CustomVisionError(f"The image is over the limit of {limit} bytes.", "BadRequestImageSizeBytes")
