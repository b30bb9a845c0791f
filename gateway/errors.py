"""Typed errors, raised anywhere in the gateway and rendered by one handler into Custom Vision's error body
`{"code": ..., "message": ...}`. Codes are those of the official SDK's CustomVisionErrorCodes."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from kubevision.core.labelstore.errors import StoreError

log = logging.getLogger(__name__)


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


class ServiceUnavailable(CustomVisionError):
    """Inference cannot be served now; the client should come back after Retry-After."""

    status, code = 503, "ErrorPredictionServiceUnavailable"

    def __init__(self, message: str, retry_after: int, code: str | None = None):
        super().__init__(message, code, {"Retry-After": str(retry_after)})


class InternalError(CustomVisionError):
    status, code = 500, "ErrorUnknown"


def body(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _render(error: CustomVisionError) -> JSONResponse:
    return JSONResponse(body(error.code, error.message), status_code=error.status, headers=error.headers)


def install(app: FastAPI) -> None:
    """Every error the app can produce leaves in Custom Vision's shape."""

    @app.exception_handler(CustomVisionError)
    async def custom_vision_error(_: Request, error: CustomVisionError) -> JSONResponse:
        return _render(error)

    @app.exception_handler(StoreError)
    async def store_refusal(_: Request, error: StoreError) -> JSONResponse:
        return JSONResponse(body(error.code, error.message), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return _render(CustomVisionError(f"invalid request: {problems}", "BadRequest"))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        code = {404: "NotFound", 405: "BadRequestNotSupported"}.get(error.status_code, "BadRequest")
        return JSONResponse(body(code, str(error.detail)), status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=error)
        return _render(InternalError("An unexpected error occurred; it has been logged."))
