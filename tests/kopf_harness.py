"""Running the real operator in the test's event loop, against the Kubernetes emulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import kopf
from kubernetes_asyncio import client

from kubevision.core.settings import OperatorSettings, S3Settings
from kubevision.operator.cluster import Cluster, operator_settings
from kubevision.operator.handlers import register


class _NotKopfTasks:
    """Tasks kopf must leave alone when it stops. On exit kopf cancels every task born in the loop while it ran;
    in a shared loop those include the emulator's web-server tasks, whose loss hangs the test's next request."""

    def __init__(self) -> None:
        self.existing = asyncio.all_tasks()

    def __contains__(self, task: object) -> bool:
        code = getattr(task.get_coro(), "cr_code", None)  # type: ignore[attr-defined]
        return task in self.existing or "/aiohttp/web_" in getattr(code, "co_filename", "")


@contextlib.asynccontextmanager
async def running_operator(url: str, namespace: str, s3: S3Settings, tracking_uri: str,
                           settings: OperatorSettings | None = None) -> AsyncIterator[None]:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True, default_namespace=namespace)

    async with client.ApiClient(client.Configuration(host=url.rstrip("/"))) as api_client:
        register(registry, Cluster(api_client, settings or OperatorSettings(), s3, tracking_uri),
                 retry_delay=0.2, fault_retry=0.5)
        kopf_settings = operator_settings()
        stop = asyncio.Event()
        ignored = _NotKopfTasks()
        tasks = await kopf.spawn_tasks(registry=registry, settings=kopf_settings, standalone=True,
                                       namespaces=[namespace], stop_flag=stop)
        task = asyncio.create_task(kopf.run_tasks(tasks, ignored=ignored))
        try:
            yield
        finally:
            ignored.existing.add(asyncio.current_task())  # the task stopping kopf (a fixture's teardown) stays
            stop.set()
            await asyncio.wait_for(task, timeout=15)


async def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll until check() returns something truthy: the operator reacts asynchronously."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := check()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)
    return result
