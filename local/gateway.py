"""The gateway's local sources: its catalog read from local mode's store and keys file, and the projects and
iterations it creates written to that store. Whoever starts a local gateway (`kubevision gateway --local`) hands
them to create_app, so the gateway itself never imports local mode."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from kubevision.core import validation
from kubevision.core.settings import GatewaySettings, LocalSettings, S3Settings
from kubevision.gateway.backends.resources import AlreadyExists, ResourceWriter
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.catalog import Catalog, NamespaceKeys
from kubevision.gateway.errors import CustomVisionError
from kubevision.local import api_keys
from kubevision.local.store import LocalStore
from kubevision.local.supervisor import LocalPlatform

log = logging.getLogger(__name__)


def store_of(settings: GatewaySettings) -> LocalStore:
    return LocalStore(Path(settings.data_dir) / "resources.db")


def s3_settings(settings: GatewaySettings) -> S3Settings:
    """The platform's S3, from its state file."""
    return LocalPlatform(LocalSettings(data_dir=settings.data_dir)).s3_settings()


class LocalSource(CatalogSource):
    """Re-reads the local store and the keys file every refresh_seconds."""

    def __init__(self, settings: GatewaySettings, store: LocalStore | None = None):
        super().__init__()
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        self._store = store
        self._platform = LocalPlatform(LocalSettings(data_dir=self.data_dir))
        self._ports: frozenset[int] = frozenset()

    def platform_ports(self) -> frozenset[int]:
        """Every port the platform's state file records (S3's master, volume, filer, admin and S3 ports, MLflow,
        Triton, the controller, the gateway), read at each call: `kubevision local up` may restart a service on
        another port while this gateway runs. A state file that cannot be read leaves the last ports read."""
        try:
            state = self._platform.load_state()
        except (OSError, ValueError):
            log.exception("reading the platform's ports")
            return self._ports
        if state is not None:
            self._ports = frozenset({state.s3_port, *(port for record in state.services.values()
                                                      for port in record.ports.values())})
        return self._ports

    def load(self) -> Catalog:
        if self._store is None:
            self._store = store_of(self.settings)
        store = self._store
        keys = {ns: NamespaceKeys(k.get("predictionKey", ""), k.get("trainingKey", ""))
                for ns, k in api_keys.load(self.data_dir).items()}
        return Catalog.build(store.list("CustomVisionProject"), store.list("Iteration"), keys)

    async def observe(self, kind: str, body: dict[str, Any], deleted: bool = False) -> None:
        self.catalog = await asyncio.to_thread(self.load)  # the local store has it already

    async def _run(self) -> None:
        while True:
            try:
                self.catalog = await asyncio.to_thread(self.load)
                self.ready = True
            except Exception:  # a store being written, a keys file mid-rename: the next pass reads it
                log.exception("reading local resources")
            await asyncio.sleep(self.settings.refresh_seconds)


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
    """Admits resources as the API server would; the local controller does the rest."""

    def __init__(self, store: LocalStore):
        self.store = store

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
