"""The labelling service, free of HTTP: Custom Vision's images (from files, URLs and stored predictions), image
tags, regions, metadata and listings, on the label store. Routers only parse and render."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence

from kubevision.core.images import MAX_IMAGE_BYTES
from kubevision.core.labelstore import regions
from kubevision.core.labelstore.predictions import PredictionIndex
from kubevision.core.labelstore.store import (
    MAX_BATCH,
    Created,
    ImageView,
    LabelStore,
    NewImage,
    ProjectRef,
    RegionIn,
)
from kubevision.core.labelstore.tables import Region
from kubevision.core.settings import GatewaySettings
from kubevision.core.storage import ObjectStore
from kubevision.gateway import wire
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.backends.trained import TrainedIterations
from kubevision.gateway.backends.trained import tag_ids as tag_ids_of
from kubevision.gateway.errors import CustomVisionError
from kubevision.gateway.images import ImageFetcher
from kubevision.gateway.links import Signer, image_path
from kubevision.gateway.services.lookup import ProjectLookup
from kubevision.gateway.services.usage import UsageMeter

MAX_TAG_FILTER = 20
URL_FETCHES = 8  # image URLs of one batch fetched at once
STORED_AT_ONCE = 8  # images of an uploaded batch in memory at once (a slice of the batch a store call)
OK_STATUSES = ("OK", "OKDuplicate")


def tag_filter(tag_ids: list[str] | None) -> list[str] | None:
    if tag_ids and len(tag_ids) > MAX_TAG_FILTER:
        raise CustomVisionError(f"At most {MAX_TAG_FILTER} tag ids filter a listing.", "BadRequestInvalidIds")
    return tag_ids or None


def newest_first(order_by: str | None) -> bool:
    if order_by not in (None, "Newest", "Oldest"):
        raise CustomVisionError("orderBy is Newest or Oldest.", "BadRequest")
    return order_by != "Oldest"


async def _store_call(function, *args):
    """A label store call, in a thread (its refusals are rendered by the gateway's error handler)."""
    return await asyncio.to_thread(function, *args)


class LabellingService:
    def __init__(self, settings: GatewaySettings, source: CatalogSource, lookup: ProjectLookup, labels: LabelStore,
                 predictions_index: PredictionIndex, objects: ObjectStore, fetcher: ImageFetcher,
                 trained: TrainedIterations, links: Signer, meter: UsageMeter | None = None):
        self.settings = settings
        self.meter = meter or UsageMeter()
        self.source = source
        self.lookup = lookup
        self.labels = labels
        self.predictions_index = predictions_index  # stored predictions, which images are created from
        self.objects = objects
        self.fetcher = fetcher
        self.trained = trained  # training snapshots: the images an iteration was trained on
        self.links = links

    # ------------------------------------------------------------------------------------------------------------
    # rendering

    def image_wire(self, namespace: str, project_id: str, view: ImageView, base_url: str) -> wire.Image:
        uri = self.links.link(namespace, base_url, image_path(project_id, view.sha256))
        return wire.Image(
            id=view.id, created=view.created, width=view.width, height=view.height, resized_image_uri=uri,
            thumbnail_uri=uri, original_image_uri=uri,
            tags=[wire.ImageTag(tag_id=t, tag_name=n, created=c) for t, n, c in view.tags] or None,
            regions=[wire.ImageRegion(region_id=r.id, tag_name=n, created=r.created, tag_id=r.tag_id, left=r.left,
                                      top=r.top, width=r.width, height=r.height) for r, n in view.regions] or None,
            metadata=view.metadata or None,
        )

    def _summary(self, namespace: str, project_id: str, results: list[Created],
                 base_url: str) -> wire.ImageCreateSummary:
        return wire.ImageCreateSummary(
            is_batch_successful=all(r.status in OK_STATUSES for r in results),
            images=[wire.ImageCreateResult(source_url=r.source, status=r.status, image=self.image_wire(
                namespace, project_id, r.image, base_url) if r.image else None) for r in results])

    # ------------------------------------------------------------------------------------------------------------
    # creating images

    @staticmethod
    def _entry(tag_ids: Sequence[str] | None, regions: Sequence[wire.Region] | None, batch_tags: Sequence[str] | None,
               metadata: dict[str, str] | None, **fields) -> NewImage:
        tags = [t.lower() for t in [*(tag_ids or []), *(batch_tags or [])]]
        return NewImage(tag_ids=list(dict.fromkeys(tags)), metadata=dict(metadata or {}),
                        regions=[RegionIn(r.tag_id.lower(), r.left, r.top, r.width, r.height) for r in regions or []],
                        **fields)

    @staticmethod
    def _check_batch(count: int) -> None:
        if count == 0:
            raise CustomVisionError("The batch holds no image.", "BadRequestImageBatch")
        if count > MAX_BATCH:
            raise CustomVisionError(f"A batch holds at most {MAX_BATCH} images; this one has {count}.",
                                    "BadRequestImageBatch")

    async def from_data(self, namespace: str, project_id: str, parts: Sequence[Callable[[], bytes]],
                        tag_ids: list[str] | None, base_url: str) -> wire.ImageCreateSummary:
        """Each part read when its slice of the batch is stored: 64 images of 6 MiB are never in memory at once.
        Each image is answered as one call would (a copy later in the batch is OKDuplicate)."""
        self._check_batch(len(parts))
        ref = await self.lookup.labelled(namespace, project_id)
        results: list[Created] = []
        for first in range(0, len(parts), STORED_AT_ONCE):
            def add(readers=parts[first:first + STORED_AT_ONCE]) -> list[Created]:
                batch = [self._entry(tag_ids, None, None, None, data=read()) for read in readers]
                added = self.labels.add_images(ref, batch)
                self._count_stored(ref, batch, added)
                return added

            results += await asyncio.to_thread(add)
        return self._summary(namespace, ref.id, results, base_url)

    async def from_files(self, namespace: str, project_id: str, body: wire.ImageFileCreateBatch,
                         base_url: str) -> wire.ImageCreateSummary:
        entries = body.images or []
        self._check_batch(len(entries))
        batch = [self._entry(e.tag_ids, e.regions, body.tag_ids, body.metadata, data=e.contents or b"",
                             source=e.name) for e in entries]
        return await self._add(namespace, project_id, batch, base_url)

    async def from_urls(self, namespace: str, project_id: str, body: wire.ImageUrlCreateBatch,
                        base_url: str) -> wire.ImageCreateSummary:
        entries = body.images or []
        self._check_batch(len(entries))
        self.lookup.project(namespace, project_id)  # an unknown project is told before any fetch
        limit = asyncio.Semaphore(URL_FETCHES)

        async def fetch(url: str) -> bytes:
            async with limit:
                try:
                    return await self.fetcher.fetch(url, MAX_IMAGE_BYTES)
                except CustomVisionError as error:
                    return b"" if error.code != "BadRequestImageSizeBytes" else b"\0" * (MAX_IMAGE_BYTES + 1)

        contents = await asyncio.gather(*(fetch(e.url) for e in entries))
        batch = [self._entry(e.tag_ids, e.regions, body.tag_ids, body.metadata, data=data, source=e.url)
                 for e, data in zip(entries, contents, strict=True)]
        return await self._add(namespace, project_id, batch, base_url)

    async def from_predictions(self, namespace: str, project_id: str, body: wire.ImageIdCreateBatch,
                               base_url: str) -> wire.ImageCreateSummary:
        entries = body.images or []
        self._check_batch(len(entries))
        ref = await self.lookup.labelled(namespace, project_id)
        await asyncio.to_thread(self.predictions_index.catch_up, ref)
        stored = await asyncio.to_thread(self.predictions_index.by_ids, ref.id, [e.id or "" for e in entries])
        batch = []
        for entry in entries:
            row = stored.get((entry.id or "").lower())
            batch.append(self._entry(entry.tag_ids, entry.regions, body.tag_ids, body.metadata, stored=row,
                                     data=None if row else b"", source=entry.id))
        return await self._add(namespace, project_id, batch, base_url)

    async def _add(self, namespace: str, project_id: str, batch: list[NewImage],
                   base_url: str) -> wire.ImageCreateSummary:
        ref = await self.lookup.labelled(namespace, project_id)
        results = await _store_call(self.labels.add_images, ref, batch)
        self._count_stored(ref, batch, results)
        return self._summary(namespace, ref.id, results, base_url)

    def _count_stored(self, project: ProjectRef, batch: list[NewImage], results: list[Created]) -> None:
        """The images a batch added (OK; a duplicate stores nothing), with their bytes, as the project's usage."""
        sizes = [len(item.data) if item.data is not None else item.stored.size if item.stored else 0
                 for item, result in zip(batch, results, strict=True) if result.status == "OK"]
        self.meter.images_stored(project.namespace, project.name, sizes)

    # ------------------------------------------------------------------------------------------------------------
    # listing, tagging, deleting

    async def listing(self, namespace: str, project_id: str, tagged: bool | None, tag_ids: list[str] | None,
                      order_by: str | None, take: int, skip: int, base_url: str,
                      iteration_id: str | None = None) -> list[wire.Image]:
        ref = await self.lookup.labelled(namespace, project_id)
        newest, tag_ids = newest_first(order_by), tag_filter(tag_ids)
        if iteration_id:
            views = await self._trained_on(namespace, project_id, iteration_id, tagged, tag_ids)
            page = (views[::-1] if newest else views)[skip:skip + take]
            sizes = {v.id: v for v in await _store_call(self.labels.images_by_ids, ref.id, [v.id for v in page])}
            for view in page:  # the snapshot has no sizes; an image deleted since has none
                view.width, view.height = (sizes[view.id].width, sizes[view.id].height) if view.id in sizes else (0, 0)
        else:
            page = await _store_call(self.labels.images, ref.id, tagged, tag_ids, newest, skip, take)
        return [self.image_wire(namespace, ref.id, v, base_url) for v in page]

    async def count(self, namespace: str, project_id: str, tagged: bool | None, tag_ids: list[str] | None,
                    iteration_id: str | None = None) -> int:
        ref = await self.lookup.labelled(namespace, project_id)
        if iteration_id:
            return len(await self._trained_on(namespace, project_id, iteration_id, tagged, tag_filter(tag_ids)))
        return await _store_call(self.labels.count, ref.id, tagged, tag_filter(tag_ids))

    async def _trained_on(self, namespace: str, project_id: str, iteration_id: str, tagged: bool | None,
                          tag_ids: list[str] | None) -> list[ImageView]:
        """The images of an iteration's training snapshot, labelled as they were then, in upload order."""
        project = self.lookup.project(namespace, project_id)
        iteration = self.source.catalog.iteration(project, iteration_id)
        records = await self.trained.snapshot(project, iteration)
        tag_id, wanted = tag_ids_of(project.uid, iteration), {t.lower() for t in tag_ids or []}
        views = []
        for record in records:
            names = [*record.tags, *(r.tag for r in record.regions)]
            if tagged is not None and bool(names) != tagged or wanted and not wanted & {tag_id(n) for n in names}:
                continue
            views.append(ImageView(
                record.id, record.sha256, record.content_type, record.created, 0, 0,
                tags=[(tag_id(n), n, record.created) for n in record.tags], metadata=dict(record.metadata),
                regions=[(Region(id=str(uuid.uuid5(uuid.UUID(record.id), str(i))), project_id=project.uid,
                                 image_id=record.id, tag_id=tag_id(r.tag), left=r.left, top=r.top, width=r.width,
                                 height=r.height, created=record.created), r.tag)
                         for i, r in enumerate(record.regions)]))
        return views

    async def by_ids(self, namespace: str, project_id: str, image_ids: list[str], base_url: str) -> list[wire.Image]:
        ref = await self.lookup.labelled(namespace, project_id)
        if len(image_ids) > 256:
            raise CustomVisionError("At most 256 image ids.", "BadRequestInvalidIds")
        views = await _store_call(self.labels.images_by_ids, ref.id, image_ids)
        return [self.image_wire(namespace, ref.id, v, base_url) for v in views]

    async def image_contents(self, namespace: str, project_id: str, image_ids: list[str]) -> list[tuple[str, bytes]]:
        """(id, bytes) of up to 64 of the project's images, in the order asked; BadRequestInvalidIds if one is not
        the project's."""
        ref = await self.lookup.labelled(namespace, project_id)
        wanted = list(dict.fromkeys(i.lower() for i in image_ids))
        if not wanted or len(wanted) > MAX_BATCH:
            raise CustomVisionError(f"Send 1 to {MAX_BATCH} image ids.", "BadRequestInvalidIds")
        views = {v.id: v for v in await _store_call(self.labels.images_by_ids, ref.id, wanted)}
        missing = [i for i in wanted if i not in views]
        if missing:
            raise CustomVisionError(f"Unknown image ids: {', '.join(missing[:10])}.", "BadRequestInvalidIds")
        layout = ref.layout

        def read(image_id: str) -> tuple[str, bytes]:
            return image_id, self.objects.get(layout.bucket, layout.image_key(views[image_id].sha256))

        return await asyncio.gather(*(asyncio.to_thread(read, i) for i in wanted))

    async def tag_images(self, namespace: str, project_id: str,
                         batch: wire.ImageTagCreateBatch) -> wire.ImageTagCreateSummary:
        ref = await self.lookup.labelled(namespace, project_id)
        pairs = [(t.image_id, t.tag_id) for t in batch.tags or []]
        if not pairs or len(pairs) > MAX_BATCH:
            raise CustomVisionError(f"Send 1 to {MAX_BATCH} image tags.", "BadRequestExceededBatchSize")
        created, duplicated = await _store_call(self.labels.tag_images, ref.id, pairs)
        entry = wire.ImageTagCreateEntry
        return wire.ImageTagCreateSummary(created=[entry(image_id=i, tag_id=t) for i, t in created],
                                          duplicated=[entry(image_id=i, tag_id=t) for i, t in duplicated],
                                          exceeded=[])

    async def untag_images(self, namespace: str, project_id: str, image_ids: list[str], tag_ids: list[str]) -> None:
        ref = await self.lookup.labelled(namespace, project_id)
        if not image_ids or not tag_ids or len(image_ids) > MAX_BATCH or len(tag_ids) > MAX_TAG_FILTER:
            raise CustomVisionError(f"Send 1 to {MAX_BATCH} image ids and 1 to {MAX_TAG_FILTER} tag ids.",
                                    "BadRequestInvalidIds")
        await _store_call(self.labels.untag_images, ref.id, image_ids, tag_ids)

    async def delete(self, namespace: str, project_id: str, image_ids: list[str] | None, all_images: bool) -> None:
        ref = await self.lookup.labelled(namespace, project_id)
        if not all_images and not image_ids:
            raise CustomVisionError("Name the images to delete (imageIds), or pass allImages=true.",
                                    "BadRequestInvalidIds")
        if image_ids and len(image_ids) > 256:
            raise CustomVisionError("At most 256 image ids.", "BadRequestInvalidIds")
        await _store_call(self.labels.delete_images, ref.id, None if all_images else image_ids)

    async def create_regions(self, namespace: str, project_id: str,
                             batch: wire.ImageRegionCreateBatch) -> wire.ImageRegionCreateSummary:
        ref = await self.lookup.labelled(namespace, project_id)
        entries = [regions.RegionEntry(r.image_id, RegionIn(r.tag_id.lower(), r.left, r.top, r.width, r.height))
                   for r in batch.regions or []]
        summary = await _store_call(regions.create_regions, self.labels, ref.id, entries)

        def entry(e: regions.RegionEntry) -> wire.ImageRegionCreateEntry:
            box = e.region
            return wire.ImageRegionCreateEntry(image_id=e.image_id, tag_id=box.tag_id, left=box.left, top=box.top,
                                               width=box.width, height=box.height)

        return wire.ImageRegionCreateSummary(
            created=[wire.ImageRegionCreateResult(
                image_id=c.image_id, region_id=c.id, tag_name=c.tag_name, created=c.created, tag_id=c.region.tag_id,
                left=c.region.left, top=c.region.top, width=c.region.width, height=c.region.height)
                for c in summary.created],
            duplicated=[entry(e) for e in summary.duplicated], exceeded=[entry(e) for e in summary.exceeded])

    async def delete_regions(self, namespace: str, project_id: str, region_ids: list[str]) -> None:
        ref = await self.lookup.labelled(namespace, project_id)
        await _store_call(regions.delete_regions, self.labels, ref.id, region_ids)

    async def update_metadata(self, namespace: str, project_id: str, image_ids: list[str],
                              metadata: dict[str, str]) -> wire.ImageMetadataUpdateSummary:
        ref = await self.lookup.labelled(namespace, project_id)
        if not image_ids or len(image_ids) > 256:
            raise CustomVisionError("Send 1 to 256 image ids.", "BadRequestInvalidIds")
        statuses = await _store_call(self.labels.update_metadata, ref.id, image_ids, metadata)
        return wire.ImageMetadataUpdateSummary(
            is_batch_successful=all(s == "OK" for s in statuses.values()),
            images=[wire.ImageMetadataUpdateEntry(image_id=i, status=s, metadata=metadata if s == "OK" else None)
                    for i, s in statuses.items()])
