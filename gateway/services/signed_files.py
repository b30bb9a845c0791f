"""What a signed link (gateway/links.py) opens: a project's image bytes, read from its dataset, for a caller that
holds a valid link and no key. The download route serves them, and an image URL that is such a link is read here
rather than over HTTP: the signature proves the link is this gateway's wherever its host points (a private
ingress, or in local mode the gateway's own port, which the URL policy refuses)."""

from __future__ import annotations

import asyncio
import re

from kubevision.core.storage import DatasetLayout, ObjectStore
from kubevision.gateway import links
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.catalog import Project
from kubevision.gateway.errors import NotFound, Unauthorized

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class SignedFiles:
    def __init__(self, source: CatalogSource, objects: ObjectStore):
        self.source = source
        self.objects = objects

    def project(self, project_id: str, path: str, expires: int, signature: str) -> Project:
        """The project a link below it names, if the link is valid: signed by its namespace's Training-Key as it is
        now, and not expired."""
        catalog = self.source.catalog
        project = catalog.projects.get(project_id)
        keys = catalog.keys.get(project.namespace) if project else None
        if project is None or keys is None or not links.valid(keys.training, path, expires, signature):
            raise Unauthorized("The link is not valid, or has expired.")
        return project

    async def image(self, link: links.ImageLink) -> bytes:
        project = self.project(link.project_id, link.path, link.expires, link.signature)
        if not SHA256.match(link.sha256):
            raise NotFound("No such image.", "NotFoundImage")
        layout = DatasetLayout(project.dataset_bucket, project.dataset_prefix)
        return await asyncio.to_thread(self.objects.get, layout.bucket, layout.image_key(link.sha256))

    def is_ours(self, link: links.ImageLink) -> bool:
        """Whether a URL of a link's shape names a project of this gateway (another installation's do not)."""
        return link.project_id in self.source.catalog.projects
