"""The web portal: static pages that call the gateway's own Custom Vision API from the browser, as the SDKs do.
Served by the gateway under /portal; nothing is built and nothing is fetched from elsewhere at run time."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

PATH = "/portal"
ASSETS = Path(__file__).resolve().parent / "static"  # resolved: an editable install links each file
# The pages load only their own scripts and styles; images may come from the gateway's signed links, which name
# the gateway's public URL when one is set.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob: http: https:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class PortalFiles(StaticFiles):
    async def get_response(self, path, scope):
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def mount(app: FastAPI) -> None:
    """The portal at /portal/, and / sends a browser there."""
    app.mount(PATH, PortalFiles(directory=ASSETS, html=True), name="portal")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(f"{PATH}/")
