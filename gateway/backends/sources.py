"""Where the catalog comes from, kept current in the background: on Kubernetes, watches of CustomVisionProjects,
Iterations and the key Secrets feed it (local mode's source, which re-reads its store, is handed in by whoever starts
a local gateway). Either way a request reads the latest catalog and never waits on a lookup."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

from kubevision.core import api
from kubevision.core.settings import GatewaySettings
from kubevision.gateway.catalog import Catalog, NamespaceKeys

log = logging.getLogger(__name__)


class CatalogSource:
    """Holds the current catalog; `ready` once the first complete view has been built."""

    def __init__(self) -> None:
        self.catalog = Catalog()
        self.ready = False
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=type(self).__name__)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        raise NotImplementedError

    async def observe(self, kind: str, body: dict[str, Any], deleted: bool = False) -> None:
        """A resource this gateway just wrote (kind: projects or iterations): in the catalog at once, so that the
        next request sees it before the watch or the next refresh brings it."""
        raise NotImplementedError

    def platform_ports(self) -> frozenset[int]:
        """The ports on which the platform's own services listen on this machine: image URLs never reach them.
        Empty on a cluster, where the services are other pods, at private addresses that image URLs do not reach."""
        return frozenset()


def secret_keys(body: dict[str, Any]) -> NamespaceKeys:
    data = body.get("data") or {}

    def read(field: str) -> str:
        return base64.b64decode(data[field]).decode().strip() if data.get(field) else ""

    return NamespaceKeys(read("predictionKey"), read("trainingKey"))


class KubernetesSource(CatalogSource):
    """List, then watch from the list's resourceVersion; a watch that ends resumes where it was, and one that is
    too old (410) or fails lists again, so events missed while away are never lost."""

    WATCH_SECONDS = 300
    BACKOFF_SECONDS = (0.5, 1, 2, 5, 10)

    def __init__(self, settings: GatewaySettings, api_client=None):
        super().__init__()
        self.settings = settings
        self.api_client = api_client
        self._bodies: dict[str, dict[tuple[str, str], dict[str, Any]]] = {"projects": {}, "iterations": {}, "keys": {}}
        self._listed: set[tuple[str, str | None]] = set()
        self._streams: list[tuple[str, str | None]] = []

    async def _run(self) -> None:
        from kubernetes_asyncio import client, config

        if self.api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                await config.load_kube_config()
            self.api_client = client.ApiClient()
        namespaces = self.settings.namespaces or [None]
        self._streams = [(kind, ns) for kind in self._bodies for ns in namespaces]
        await asyncio.gather(*(self._follow(kind, ns) for kind, ns in self._streams))

    def _lister(self, kind: str, namespace: str | None):
        from kubernetes_asyncio import client

        if kind == "keys":
            core = client.CoreV1Api(self.api_client)
            selector = {"field_selector": f"metadata.name={self.settings.keys_secret_name}"}
            if namespace is None:
                return core.list_secret_for_all_namespaces, (), selector
            return core.list_namespaced_secret, (namespace,), selector
        custom = client.CustomObjectsApi(self.api_client)
        plural = "customvisionprojects" if kind == "projects" else "iterations"
        if namespace is None:
            return custom.list_cluster_custom_object, (api.GROUP, api.VERSION, plural), {}
        return custom.list_namespaced_custom_object, (api.GROUP, api.VERSION, namespace, plural), {}

    async def _follow(self, kind: str, namespace: str | None) -> None:
        from kubernetes_asyncio import watch
        from kubernetes_asyncio.client.exceptions import ApiException

        function, args, selector = self._lister(kind, namespace)
        failures = 0
        while True:
            try:
                listing = self.api_client.sanitize_for_serialization(await function(*args, **selector))
                version = listing["metadata"]["resourceVersion"]
                self._replace(kind, namespace, listing.get("items") or [])
                failures = 0
                while True:
                    stream = watch.Watch().stream(function, *args, **selector, resource_version=version,
                                                  timeout_seconds=self.WATCH_SECONDS, allow_watch_bookmarks=True)
                    async with stream:
                        async for event in stream:
                            version = event["raw_object"]["metadata"]["resourceVersion"]
                            if event["type"] != "BOOKMARK":
                                self._apply(kind, event["type"], event["raw_object"])
            except asyncio.CancelledError:
                raise
            except ApiException as error:
                if error.status != 410:
                    log.warning("watching %s: %s %s", kind, error.status, error.reason)
            except Exception as error:  # the API server unreachable, a dropped connection
                log.warning("watching %s: %s", kind, error)
            await asyncio.sleep(self.BACKOFF_SECONDS[min(failures, len(self.BACKOFF_SECONDS) - 1)])
            failures += 1

    async def observe(self, kind: str, body: dict[str, Any], deleted: bool = False) -> None:
        self._apply(kind, "DELETED" if deleted else "MODIFIED", body)

    def _replace(self, kind: str, namespace: str | None, items: list[dict[str, Any]]) -> None:
        bodies = self._bodies[kind]
        for key in [k for k in bodies if namespace is None or k[0] == namespace]:
            del bodies[key]
        for body in items:
            bodies[(body["metadata"]["namespace"], body["metadata"]["name"])] = body
        self._listed.add((kind, namespace))
        self._rebuild()

    def _apply(self, kind: str, event: str, body: dict[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if event == "DELETED":
            self._bodies[kind].pop(key, None)
        else:
            self._bodies[kind][key] = body
        self._rebuild()

    def _rebuild(self) -> None:
        keys = {ns: secret_keys(body) for (ns, _), body in self._bodies["keys"].items()}
        self.catalog = Catalog.build(self._bodies["projects"].values(), self._bodies["iterations"].values(), keys)
        self.ready = self._listed.issuperset(self._streams)
