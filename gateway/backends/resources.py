"""Where the training API writes CustomVisionProjects and Iterations: the Kubernetes API in the key's namespace, or
whatever writer the gateway was started with (local mode's store). Either admits them as the API server would; the
operator (or the local controller) does the rest, exactly as for resources applied with kubectl."""

from __future__ import annotations

import json
from typing import Any

from kubevision.core import api
from kubevision.gateway.errors import CustomVisionError

PLURALS = {"CustomVisionProject": "customvisionprojects", "Iteration": "iterations"}


class AlreadyExists(Exception):
    pass


class ResourceWriter:
    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """The stored object (with its uid); AlreadyExists if the name is taken."""
        raise NotImplementedError

    async def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of metadata and spec (a None value removes a field)."""
        raise NotImplementedError

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        raise NotImplementedError


async def _json(response) -> dict[str, Any]:
    """The stored object, read from the raw answer (the client does not deserialize untyped objects)."""
    async with response:
        return json.loads(await response.read())


class KubernetesResources(ResourceWriter):
    """Through the gateway's own ServiceAccount (the chart's gateway ClusterRole grants create, patch and delete)."""

    def __init__(self, source):
        self.source = source  # its ApiClient, made when the watches start

    def _api(self):
        from kubernetes_asyncio import client

        return client.CustomObjectsApi(self.source.api_client)

    @staticmethod
    def _refused(error) -> CustomVisionError:
        return CustomVisionError(f"The Kubernetes API refused the request: {error.status} {error.reason}",
                                 "BadRequest" if error.status in (400, 422) else "ErrorUnknown")

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes_asyncio.client.exceptions import ApiException

        meta = body["metadata"]
        try:
            return await _json(await self._api().create_namespaced_custom_object(
                api.GROUP, api.VERSION, meta["namespace"], PLURALS[body["kind"]], body, _preload_content=False))
        except ApiException as error:
            if error.status == 409:
                raise AlreadyExists(meta["name"]) from error
            raise self._refused(error) from error

    async def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            return await _json(await self._api().patch_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, PLURALS[kind], name, patch,
                _content_type="application/merge-patch+json", _preload_content=False))
        except ApiException as error:
            raise self._refused(error) from error

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            await self._api().delete_namespaced_custom_object(api.GROUP, api.VERSION, namespace, PLURALS[kind], name)
        except ApiException as error:
            if error.status != 404:
                raise self._refused(error) from error
