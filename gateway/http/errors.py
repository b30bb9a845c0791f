"""The one handler that renders every error the app can produce in Custom Vision's shape: the typed errors of
gateway/errors.py, the label store's refusals, FastAPI's validation errors and anything unexpected."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from kubevision.core.labelstore.errors import StoreError
from kubevision.gateway.errors import CustomVisionError, InternalError

log = logging.getLogger(__name__)


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
        return JSONResponse(body(error.code, error.message), status_code=error.status,
                            headers=error.headers)

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
