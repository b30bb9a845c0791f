"""Custom Vision's tags, free of HTTP: the label store's tags of the caller's project."""

from __future__ import annotations

import asyncio

from kubevision.core.labelstore.store import LabelStore, TagView
from kubevision.gateway import wire
from kubevision.gateway.services.lookup import ProjectLookup


class TagService:
    def __init__(self, lookup: ProjectLookup, labels: LabelStore):
        self.lookup = lookup
        self.labels = labels

    @staticmethod
    def _tag_wire(tag: TagView) -> wire.Tag:
        return wire.Tag(id=tag.id, name=tag.name, description=tag.description, type=tag.type,
                        image_count=tag.image_count)

    async def tags(self, namespace: str, project_id: str) -> list[wire.Tag]:
        ref = await self.lookup.labelled(namespace, project_id)
        return [self._tag_wire(t) for t in await asyncio.to_thread(self.labels.tags, ref.id)]

    async def tag(self, namespace: str, project_id: str, tag_id: str) -> wire.Tag:
        ref = await self.lookup.labelled(namespace, project_id)
        return self._tag_wire(await asyncio.to_thread(self.labels.tag, ref.id, tag_id))

    async def create_tag(self, namespace: str, project_id: str, name: str, description: str | None,
                         type: str | None) -> wire.Tag:
        ref = await self.lookup.labelled(namespace, project_id)
        return self._tag_wire(await asyncio.to_thread(self.labels.create_tag, ref.id, name, description or "",
                                                      type or "Regular"))

    async def update_tag(self, namespace: str, project_id: str, tag_id: str, updated: wire.Tag) -> wire.Tag:
        ref = await self.lookup.labelled(namespace, project_id)
        return self._tag_wire(await asyncio.to_thread(
            self.labels.update_tag, ref.id, tag_id, updated.name, updated.description,
            updated.type.value if updated.type else None))

    async def delete_tag(self, namespace: str, project_id: str, tag_id: str) -> None:
        ref = await self.lookup.labelled(namespace, project_id)
        await asyncio.to_thread(self.labels.delete_tag, ref.id, tag_id)
