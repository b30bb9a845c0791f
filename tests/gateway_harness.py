"""Runs the gateway app in the test's event loop behind a real uvicorn server, as its pod would run it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn

from kubevision.core.settings import GatewaySettings
from kubevision.gateway.http.server import server_config
from kubevision.local.process import free_port


@contextlib.asynccontextmanager
async def running_gateway(app, settings: GatewaySettings | None = None) -> AsyncIterator[str]:
    """Yields the gateway's base URL once it listens and its lifespan has started; the server runs with `settings`'
    timeouts (the defaults when none are given)."""
    port = free_port()
    server = uvicorn.Server(server_config(app, settings or GatewaySettings(), host="127.0.0.1", port=port))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)
