"""A project's dataset seeded as the product writes it: through the label store, the one writer of the manifest.

Tests and benchmarks that only need a manifest in S3 (the operator counts it, the trainer reads it) call `seed`: a
throwaway SQLite label store adopts the manifest already there, adds the images one at a time (so the manifest lists
them in the order given), and exports. `photo` makes the small, valid, distinct images the store accepts where a
test used to store any bytes. `write_as_pipeline` plays the other writer docs/storage.md allows, a data pipeline
that writes bytes and manifest lines itself: the only way a file the store refuses reaches the trainer.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, PngImagePlugin

from kubevision.core import dataset
from kubevision.core.labelstore.database import open_database, sqlite_url
from kubevision.core.labelstore.export import ManifestExporter
from kubevision.core.labelstore.store import Created, LabelStore, NewImage, ProjectRef, RegionIn
from kubevision.core.storage import DatasetLayout, DatasetStore, ObjectStore
from kubevision.core.training import NEGATIVE_TAG


@dataclass(frozen=True)
class Seed:
    data: bytes
    tags: Sequence[str] = ()
    regions: Sequence[dataset.Region] = ()
    metadata: dict[str, str] = field(default_factory=dict)


def photo(text: str) -> bytes:
    """A 1x1 PNG unique to `text` (kept in a text chunk): an image the store accepts, as cheap as the bytes were."""
    info = PngImagePlugin.PngInfo()
    info.add_text("seed", text)
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def seed(objects: ObjectStore, layout: DatasetLayout, images: Sequence[Seed]) -> list[Created]:
    """Add `images` to the dataset at `layout` (its bucket is made if missing) and export its manifest; returns
    each image's outcome (OK, OKDuplicate or why the store refused it)."""
    objects.ensure_bucket(layout.bucket)
    namespace = layout.prefix.partition("/")[0]  # a dataset lives under its project's namespace
    project = ProjectRef(f"seed-{layout.bucket}-{layout.prefix}", namespace, "seed", layout.bucket, layout.prefix)
    with tempfile.TemporaryDirectory() as folder:
        database = open_database(sqlite_url(Path(folder) / "labels.db"))
        try:
            store = LabelStore(database, objects)
            store.ensure_project(project)  # adopts the manifest already there
            tag_ids = {t.name: t.id for t in store.tags(project.id)}
            for name in dict.fromkeys(n for s in images for n in [*s.tags, *(r.tag for r in s.regions)]):
                if name not in tag_ids:
                    kind = "Negative" if name == NEGATIVE_TAG else "Regular"
                    tag_ids[name] = store.create_tag(project.id, name, type=kind).id
            results = [store.add_images(project, [NewImage(
                s.data, [tag_ids[t] for t in s.tags], metadata=dict(s.metadata),
                regions=[RegionIn(tag_ids[r.tag], r.left, r.top, r.width, r.height) for r in s.regions],
            )])[0] for s in images]
            refused = [(n, r.status) for n, r in enumerate(results) if r.status not in ("OK", "OKDuplicate")]
            assert not refused, f"the label store refused images (index, status): {refused}"
            ManifestExporter(database, objects).export(project.id)
            return results
        finally:
            database.dispose()


def write_as_pipeline(objects: ObjectStore, layout: DatasetLayout, data: bytes, content_type: str,
                      tags: Sequence[str] = ()) -> str:
    """Store `data` and append its line to the manifest, unchecked, as a pipeline outside the platform may; returns
    the image's id."""
    images = DatasetStore(objects, layout)
    sha256 = dataset.content_hash(data)
    objects.ensure_bucket(layout.bucket)
    objects.put(layout.bucket, layout.image_key(sha256), data, content_type)
    record = dataset.ImageRecord(id=dataset.image_id(sha256), sha256=sha256, content_type=content_type,
                                 size=len(data), tags=list(tags))
    objects.put(layout.bucket, layout.manifest_key, dataset.dumps([*images.manifest(), record]), "application/x-ndjson")
    return record.id
