"""The manifest export: the store writes a project's `manifest.jsonl` (the contract with the operator and the
trainer, docs/storage.md) when its labels change, coalesced, and always before a training it starts.

One exporter at a time per project, across processes: a lease in the project's row, claimed by an atomic UPDATE
(so SQLite and PostgreSQL behave alike). The lease is short and its holder renews it while it works, so a holder
that dies (a gateway killed mid-export) lets it lapse within seconds, however long a live export takes. The holder
exports until the exported version catches up with the labels, so a change made during an export is exported next,
never lost.

Who owns the manifest: the store, from its first export or from the import of a manifest found when the project was
registered. The ETag of what it wrote is kept; a manifest whose ETag differs was written by someone else (a
pipeline, GitOps), and the store then stops exporting that project and says so rather than overwrite it. One
exception: each manifest the store writes carries, in its S3 metadata, the project and the SHA-256 of its content;
a manifest whose content still has that hash is the store's own, written by an exporter that died before it could
record the ETag, and the store takes it back instead of refusing the project forever.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, or_, select, update

from kubevision.core.labelstore import tables
from kubevision.core.labelstore.database import Database
from kubevision.core.labelstore.errors import Conflict, ExportBusy, NotFound
from kubevision.core.labelstore.store import now
from kubevision.core.storage import DatasetLayout, ObjectStore
from kubevision.core.training import NEGATIVE_TAG

log = logging.getLogger(__name__)

LEASE_SECONDS = 30  # how long a dead holder blocks the project's exports
RENEWALS_PER_LEASE = 3  # a live holder renews its lease this often within it: one missed renewal loses nothing
# The S3 metadata of a manifest the store writes: whose it is, and the hash of what it wrote.
WRITTEN_FOR = "kubevision-project"
WRITTEN_SHA256 = "kubevision-sha256"


@dataclass(frozen=True)
class Exported:
    project_id: str
    version: int
    images: int
    written: bool  # False when the manifest was current already


class ManifestExporter:
    def __init__(self, database: Database, objects: ObjectStore, holder: str | None = None,
                 lease_seconds: float = LEASE_SECONDS):
        self.db = database
        self.objects = objects
        self.holder = holder or uuid.uuid4().hex
        self.lease_seconds = lease_seconds

    def pending(self, quiet_seconds: float, max_wait_seconds: float) -> list[str]:
        """Projects with changes to export: quiet for `quiet_seconds` (a burst of uploads is over), or changing
        for longer than `max_wait_seconds` (a long burst still gets exported now and then)."""
        moment = now()
        with self.db.reading() as session:
            return list(session.scalars(select(tables.Project.id).where(
                tables.Project.labels_version > tables.Project.exported_version,
                or_(tables.Project.changed_at <= moment - timedelta(seconds=quiet_seconds),
                    tables.Project.dirty_since <= moment - timedelta(seconds=max_wait_seconds)))))

    def export(self, project_id: str, wait_seconds: float = 120) -> Exported:
        """Make the manifest current; waits for another exporter of the project to finish first. Conflict if the
        manifest belongs to someone else."""
        deadline = time.monotonic() + wait_seconds
        while not self._claim(project_id):
            if time.monotonic() > deadline:
                raise ExportBusy(f"The labels of project {project_id} are being exported by another process; try "
                                 f"again in {self.lease_seconds:g} s.", retry_after=self.lease_seconds)
            time.sleep(0.2)
        try:
            with self._renewing(project_id):
                result = None
                while True:
                    step = self._export_once(project_id)
                    result = step if step.written or result is None else result
                    if not step.written:
                        return result
        finally:
            self._release(project_id)

    def _claim(self, project_id: str) -> bool:
        """Take the lease if it is free, lapsed or ours already (which renews it)."""
        moment = now()
        with self.db.writing() as session:
            if session.get(tables.Project, project_id) is None:
                raise NotFound(f"Project {project_id} not found.", "NotFoundProject")
            claimed = session.execute(update(tables.Project).where(
                tables.Project.id == project_id,
                or_(tables.Project.export_lease_until.is_(None), tables.Project.export_lease_until < moment,
                    tables.Project.export_holder == self.holder),
            ).values(export_holder=self.holder,
                     export_lease_until=moment + timedelta(seconds=self.lease_seconds)))
            return claimed.rowcount == 1

    @contextmanager
    def _renewing(self, project_id: str) -> Iterator[None]:
        """Renews the lease in the background while the block runs: one export step may outlast the lease."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.lease_seconds / RENEWALS_PER_LEASE):
                try:
                    self._claim(project_id)
                except Exception as error:  # the next renewal may get through; the lease outlasts two misses
                    log.warning("project %s: could not renew the export lease: %s", project_id, error)

        renewer = threading.Thread(target=renew, name=f"export lease {project_id}", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()

    def _release(self, project_id: str) -> None:
        with self.db.writing() as session:
            session.execute(update(tables.Project).where(
                tables.Project.id == project_id, tables.Project.export_holder == self.holder,
            ).values(export_holder=None, export_lease_until=None))

    def _export_once(self, project_id: str) -> Exported:
        with self.db.reading() as session:
            project = session.get(tables.Project, project_id)
            version = project.labels_version
            layout = DatasetLayout(project.bucket, project.prefix)
            current, recorded = self.objects.etag(layout.bucket, layout.manifest_key), project.manifest_etag
            unrecorded = current is not None and current != recorded
            if unrecorded and not self._written_here(layout, project_id, current):
                message = project.export_conflict or self._conflict(layout)
                if not project.export_conflict:
                    self._record_conflict(project_id, message)
                raise Conflict(message)
            if not unrecorded:
                if version == project.exported_version and (current is not None or version == 0):
                    return Exported(project_id, version, 0, written=False)
                lines = self.manifest(session, project_id)
        if unrecorded:  # the store's own manifest, whose exporter stopped before it recorded the ETag
            log.warning("project %s: taking back a manifest this store wrote but never recorded", project_id)
            self._record_etag(project_id, recorded, current)
            return self._export_once(project_id)
        body = b"".join(lines)
        etag = self.objects.put(layout.bucket, layout.manifest_key, body, "application/x-ndjson", metadata={
            WRITTEN_FOR: project_id, WRITTEN_SHA256: hashlib.sha256(body).hexdigest()})
        self._written(project_id, version, etag)
        log.info("exported the manifest of project %s: %d images (labels version %d)", project_id, len(lines),
                 version)
        return Exported(project_id, version, len(lines), written=True)

    def _written(self, project_id: str, version: int, etag: str) -> None:
        """Record the manifest just written as the store's own."""
        with self.db.writing() as session:  # a conflict recorded earlier is over: the foreign manifest is gone
            session.execute(update(tables.Project).where(tables.Project.id == project_id).values(
                exported_version=version, manifest_etag=etag, export_conflict=None,
                dirty_since=case((tables.Project.labels_version == version, None),
                                 else_=tables.Project.dirty_since)))

    def _written_here(self, layout: DatasetLayout, project_id: str, etag: str) -> bool:
        """Whether the manifest (of ETag `etag`) is one this store wrote for the project and nobody changed since:
        its metadata names the project, and its content has the hash written with it. A manifest of someone else
        carries no such metadata, or content of another hash."""
        metadata = self.objects.user_metadata(layout.bucket, layout.manifest_key) or {}
        if metadata.get(WRITTEN_FOR) != project_id or not metadata.get(WRITTEN_SHA256):
            return False
        content = self.objects.get(layout.bucket, layout.manifest_key)
        return (hashlib.sha256(content).hexdigest() == metadata[WRITTEN_SHA256]
                and self.objects.etag(layout.bucket, layout.manifest_key) == etag)

    def _record_etag(self, project_id: str, recorded: str | None, etag: str) -> None:
        """Take back a manifest the store wrote: its ETag recorded (unless another exporter recorded one since).
        The exported version stays: the labels it held are exported again at once."""
        with self.db.writing() as session:
            session.execute(update(tables.Project).where(
                tables.Project.id == project_id, tables.Project.manifest_etag.is_(None) if recorded is None
                else tables.Project.manifest_etag == recorded).values(manifest_etag=etag, export_conflict=None))

    @staticmethod
    def _conflict(layout: DatasetLayout) -> str:
        return (f"s3://{layout.bucket}/{layout.manifest_key} was written by someone else after this store's last "
                "export; the store does not overwrite it. Keep labelling where that manifest comes from, or delete "
                "it to let the store export its labels again (docs/storage.md).")

    def _record_conflict(self, project_id: str, message: str) -> None:
        log.warning("project %s: %s", project_id, message)
        with self.db.writing() as session:
            session.execute(update(tables.Project).where(tables.Project.id == project_id).values(
                export_conflict=message))

    @staticmethod
    def manifest(session, project_id: str) -> list[bytes]:
        """The manifest's lines (core/dataset.ImageRecord as JSON), in upload order; a Negative-typed tag is written
        by the name the trainer knows. Rows are read as tuples and written with json: a project may hold 100,000
        images, and building a model or an ORM object for each would take seconds."""
        tags = {tag_id: (NEGATIVE_TAG if kind == "Negative" else name) for tag_id, name, kind in session.execute(
            select(tables.Tag.id, tables.Tag.name, tables.Tag.type).where(tables.Tag.project_id == project_id))}
        image_tags: dict[str, list[str]] = defaultdict(list)
        for image_id, tag_id in session.execute(select(tables.ImageTag.image_id, tables.ImageTag.tag_id).where(
                tables.ImageTag.project_id == project_id).order_by(tables.ImageTag.created, tables.ImageTag.tag_id)):
            image_tags[image_id].append(tags[tag_id])
        regions: dict[str, list[dict]] = defaultdict(list)
        r = tables.Region
        for image_id, tag_id, left, top, width, height in session.execute(
                select(r.image_id, r.tag_id, r.left, r.top, r.width, r.height).where(r.project_id == project_id)
                .order_by(r.created, r.id)):
            regions[image_id].append({"tag": tags[tag_id], "left": left, "top": top, "width": width,
                                      "height": height})
        metadata: dict[str, dict[str, str]] = defaultdict(dict)
        m = tables.ImageMetadata
        for image_id, key, value in session.execute(select(m.image_id, m.key, m.value).where(
                m.project_id == project_id)):
            metadata[image_id][key] = value
        i = tables.Image
        return [json.dumps({
            "id": image_id, "sha256": sha256, "content_type": content_type, "size": size, "tags": image_tags[image_id],
            "regions": regions[image_id], "metadata": metadata[image_id],
            "created": created.isoformat().replace("+00:00", "Z"),
        }, separators=(",", ":")).encode() + b"\n" for image_id, sha256, content_type, size, created in session.execute(
            select(i.id, i.sha256, i.content_type, i.size, i.created).where(i.project_id == project_id)
            .order_by(i.created, i.id))]
