"""Exports manifests in the background: projects whose labels have settled (or kept changing too long) get their
manifest written, one export for a burst of changes (core/labelstore/export.py says how)."""

from __future__ import annotations

import asyncio
import logging

from kubevision.core.labelstore.errors import Conflict, ExportBusy
from kubevision.core.labelstore.export import ManifestExporter
from kubevision.core.settings import GatewaySettings
from kubevision.gateway.backends.sources import CatalogSource

log = logging.getLogger(__name__)


async def export_forever(exporter: ManifestExporter, settings: GatewaySettings, source: CatalogSource) -> None:
    """Only projects in the catalog: one deleted (through another gateway, kubectl or `kubevision delete`) keeps
    its rows until its gateway deletes them, and must never have its manifest written again after its dataset went
    (docs/storage.md)."""
    interval = max(0.2, min(1.0, settings.export_quiet_seconds / 2))
    while True:
        await asyncio.sleep(interval)
        try:
            pending = await asyncio.to_thread(exporter.pending, settings.export_quiet_seconds,
                                              settings.export_max_wait_seconds)
            for project_id in pending:
                if project_id not in source.catalog.projects:
                    continue
                try:
                    await asyncio.to_thread(exporter.export, project_id, 0)
                except (Conflict, ExportBusy):  # someone else's manifest (logged once), or being exported now
                    continue
        except asyncio.CancelledError:
            raise
        except Exception:  # the database or S3 away for a moment: the next pass tries again
            log.exception("exporting manifests")
