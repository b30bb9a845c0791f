"""The caller's project, as every training service finds it: from the catalog (a 404 for another namespace's), and
registered in the label store before its labels are read or written."""

from __future__ import annotations

import asyncio

from kubevision.core.labelstore.store import LabelStore, ProjectRef
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.catalog import Project


class ProjectLookup:
    def __init__(self, source: CatalogSource, labels: LabelStore):
        self.source = source
        self.labels = labels

    def project(self, namespace: str, project_id: str) -> Project:
        return self.source.catalog.project(namespace, project_id)

    async def labelled(self, namespace: str, project_id: str) -> ProjectRef:
        """The project, registered in the label store (importing a manifest found there the first time)."""
        project = self.project(namespace, project_id)
        ref = ProjectRef(project.uid, project.namespace, project.name, project.dataset_bucket, project.dataset_prefix)
        await asyncio.to_thread(self.labels.ensure_project, ref)
        return ref
