"""What the training API's route groups share: a table of routes declared once and added to the router of each API
version, the query parameter types of ids and pages, and the OpenAPI body of image uploads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

IMAGES_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "imageData": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}}}


def ids(value: str | None) -> list[str] | None:
    """A comma-separated list of ids, as the SDKs send them."""
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


IdList = Annotated[str | None, Query(max_length=10_000, description="Comma-separated ids.")]
Take = Annotated[int, Query(ge=0, le=256, description="At most 256 a page.")]
Skip = Annotated[int, Query(ge=0, le=10_000_000)]


class Routes:
    """A group's routes, declared at module level with `@routes(method, path, ...)`; each API version's router gets
    them all, named `<endpoint>_<version>` so that both versions keep distinct operation names."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, object, dict]] = []

    def __call__(self, method: str, path: str, **options):
        def register(endpoint):
            self.entries.append((method, path, endpoint, options))
            return endpoint

        return register

    def add_to(self, router: APIRouter, suffix: str) -> None:
        for method, path, endpoint, options in self.entries:
            router.add_api_route(path, endpoint, methods=[method], name=f"{endpoint.__name__}_{suffix}",
                                 response_model_exclude_none=True, **options)
