"""Custom Vision's create and delete of regions (tagged boxes) on images already stored."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from kubevision.core.labelstore import tables
from kubevision.core.labelstore.boxes import MAX_REGIONS_PER_IMAGE, fit_boxes
from kubevision.core.labelstore.errors import StoreError
from kubevision.core.labelstore.store import LabelStore, RegionIn, now, touch

MAX_BATCH = 64  # regions in one create or delete, as Custom Vision allows


@dataclass(frozen=True)
class RegionEntry:
    image_id: str
    region: RegionIn


@dataclass(frozen=True)
class CreatedRegion:
    id: str
    image_id: str
    tag_name: str
    region: RegionIn
    created: datetime


@dataclass
class RegionsSummary:
    """Custom Vision's ImageRegionCreateSummary: regions created, already there (same image, tag and box), and
    refused because their image holds MAX_REGIONS_PER_IMAGE."""

    created: list[CreatedRegion]
    duplicated: list[RegionEntry]
    exceeded: list[RegionEntry]


def create_regions(store: LabelStore, project_id: str, entries: Sequence[RegionEntry]) -> RegionsSummary:
    """Add regions to stored images. A bad box, an unknown image or tag refuses the whole batch and changes
    nothing; a box a rounding error past an edge is kept on the edge; a box already on its image with the same tag
    is reported, not repeated."""
    if not entries or len(entries) > MAX_BATCH:
        raise StoreError(f"Send 1 to {MAX_BATCH} regions.", "BadRequestExceededBatchSize")
    fitted = fit_boxes([(f"entry {n} (image {e.image_id})", e.region) for n, e in enumerate(entries)])
    entries = [RegionEntry(e.image_id.lower(), box) for e, box in zip(entries, fitted, strict=True)]
    images = {e.image_id for e in entries}
    tag_ids = {e.region.tag_id for e in entries}
    summary = RegionsSummary([], [], [])
    moment = now()
    with store.db.writing() as session:
        known_images = set(session.scalars(select(tables.Image.id).where(
            tables.Image.project_id == project_id, tables.Image.id.in_(images))))
        names = dict(session.execute(select(tables.Tag.id, tables.Tag.name).where(
            tables.Tag.project_id == project_id, tables.Tag.id.in_(tag_ids))).all())
        missing = sorted(images - known_images) + sorted(tag_ids - set(names))
        if missing:
            raise StoreError(f"Unknown image or tag ids: {', '.join(missing[:10])}.", "BadRequestInvalidIds")
        existing = session.execute(select(tables.Region).where(
            tables.Region.project_id == project_id, tables.Region.image_id.in_(images))).scalars().all()
        seen = {(r.image_id, r.tag_id, r.left, r.top, r.width, r.height) for r in existing}
        counts = Counter(r.image_id for r in existing)
        for entry in entries:
            region = entry.region
            key = (entry.image_id, region.tag_id, region.left, region.top, region.width, region.height)
            if key in seen:
                summary.duplicated.append(entry)
                continue
            if counts[entry.image_id] >= MAX_REGIONS_PER_IMAGE:
                summary.exceeded.append(entry)
                continue
            seen.add(key)
            counts[entry.image_id] += 1
            region_id = str(uuid.uuid4())
            session.add(tables.Region(id=region_id, project_id=project_id, image_id=entry.image_id,
                                      tag_id=region.tag_id, left=region.left, top=region.top, width=region.width,
                                      height=region.height, created=moment))
            summary.created.append(CreatedRegion(region_id, entry.image_id, names[region.tag_id], region, moment))
        if summary.created:
            touch(session, project_id)
    return summary


def delete_regions(store: LabelStore, project_id: str, region_ids: Sequence[str]) -> None:
    """Remove regions by id; ids of no region of the project are ignored, as Custom Vision does."""
    if not region_ids or len(region_ids) > MAX_BATCH:
        raise StoreError(f"Send 1 to {MAX_BATCH} region ids.", "BadRequestInvalidIds")
    with store.db.writing() as session:
        removed = session.execute(delete(tables.Region).where(
            tables.Region.project_id == project_id, tables.Region.id.in_([i.lower() for i in region_ids])))
        if removed.rowcount:
            touch(session, project_id)
