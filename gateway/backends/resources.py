"""Where the training API writes CustomVisionProjects and Iterations: the Kubernetes API in the key's namespace, or
local mode's store. Either admits them as the API server would; the operator (or the local controller) does the
rest, exactly as for resources applied with kubectl."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kubevision.core import api, validation
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


def _invalid(error: validation.InvalidManifest) -> CustomVisionError:
    return CustomVisionError(f"The request makes an invalid resource: {error}", "BadRequest")


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch, as the API server applies it."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


class LocalResources(ResourceWriter):
    def __init__(self, store):
        self.store = store  # kubevision.operator.local_store.LocalStore

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        if await asyncio.to_thread(self.store.get, body["kind"], meta["namespace"], meta["name"]) is not None:
            raise AlreadyExists(meta["name"])
        try:
            stored, _ = await asyncio.to_thread(self.store.apply, body)
        except validation.InvalidManifest as error:
            raise _invalid(error) from error
        return stored

    async def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        current = await asyncio.to_thread(self.store.get, kind, namespace, name)
        if current is None:
            raise CustomVisionError(f"{kind} {name} no longer exists.", "NotFound")
        manifest = merge({k: v for k, v in current.items() if k != "status"}, patch)
        try:
            stored, _ = await asyncio.to_thread(self.store.apply, manifest)
        except validation.InvalidManifest as error:
            raise _invalid(error) from error
        return stored

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        await asyncio.to_thread(self.store.mark_deleted, kind, namespace, name)


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
