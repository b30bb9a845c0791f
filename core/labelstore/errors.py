"""What the label store refuses, with Custom Vision's error codes (the SDK's CustomVisionErrorCodes), so that the
gateway renders them as the API does and the CLI prints them as they are."""

from __future__ import annotations


class StoreError(Exception):
    status = 400

    def __init__(self, message: str, code: str = "BadRequest", status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status or self.status
        self.headers: dict[str, str] = {}


class NotFound(StoreError):
    status = 404


class Conflict(StoreError):
    """The dataset's manifest is written by someone else (docs/storage.md: who owns a manifest)."""

    status = 409

    def __init__(self, message: str):
        super().__init__(message, "Conflict")


class ExportBusy(StoreError):
    """Another process holds the project's export lease past the wait: answered 409, with when to try again."""

    status = 409

    def __init__(self, message: str, retry_after: float):
        super().__init__(message, "Conflict")
        self.headers = {"Retry-After": str(max(1, round(retry_after)))}
