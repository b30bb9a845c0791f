"""Runs the gateway app in the test's event loop behind a real uvicorn server, as its pod would run it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import uvicorn
from kopf_harness import eventually
from kubernetes_asyncio import client
from limits_files import UNLIMITED_RATES, write_limits

from kubevision.core.limits import LimitsSource
from kubevision.core.settings import GatewaySettings, LimitsSettings, S3Settings
from kubevision.gateway import metrics
from kubevision.gateway.backends.sources import KubernetesSource
from kubevision.gateway.http.server import server_config
from kubevision.gateway.main import create_app
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


@contextlib.asynccontextmanager
async def kubernetes_gateway(emulator, settings: GatewaySettings, s3: S3Settings,
                             limits: Path | None = None) -> AsyncIterator[str]:
    """Yields the base URL of a gateway in Kubernetes mode over the emulator's API, once its catalog has read the
    first complete list. Its limits are those of the file `limits`, else of the one KUBEVISION_LIMITS_FILE names (as
    the chart names its ConfigMap); by default, Azure's without the per-second limits, which the tests that use it
    pass calling the API back to back."""
    limits = limits or LimitsSettings().file or write_limits(Path(settings.data_dir) / "limits.yaml", UNLIMITED_RATES)
    async with client.ApiClient(client.Configuration(host=str(emulator.url).rstrip("/"))) as api_client:
        source = KubernetesSource(settings, api_client)
        async with running_gateway(create_app(settings, source, s3, limits=LimitsSource(limits)), settings) as base:
            await eventually(lambda: source.ready, what="the first complete list")
            yield base


@contextlib.contextmanager
def serving_metrics() -> Iterator[int]:
    """The gateway's metrics on a free port, served as `kubevision gateway` serves them, from a thread of this
    process; yields the port. The counters are this process's: every test's gateway counts in them."""
    port = free_port()
    server = metrics.serve("127.0.0.1", port)
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
