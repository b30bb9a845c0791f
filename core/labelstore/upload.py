"""Folders of tagged images into the label store, as `kubevision upload` and the local demo add them: one
subfolder per tag; each file checked before anything is stored (a refused file is reported with its reason, never
stored), batches stored concurrently, then the manifest exported once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from kubevision.core.images import MAX_IMAGE_BYTES, MAX_PIXELS, ImageProblem, decode
from kubevision.core.labelstore.database import open_database, sqlite_url
from kubevision.core.labelstore.errors import StoreError
from kubevision.core.labelstore.export import ManifestExporter
from kubevision.core.labelstore.store import LabelStore, NewImage, ProjectRef
from kubevision.core.limits import limits_source
from kubevision.core.storage import ObjectStore
from kubevision.core.training import NEGATIVE_TAG

DATABASE_FILE = "labels.db"
UPLOAD_WORKERS = 4  # batches read, decoded and stored at once (the store puts each batch's bytes with 8 threads)
UPLOAD_BATCH = 16  # files a batch: small enough to share a small folder among the workers, large enough that a
# transaction carries many rows


def local_database_url(data_dir: Path) -> str:
    """Local mode's label store: SQLite in the platform's data folder (made if missing), shared by the gateway and
    the CLI."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return sqlite_url(data_dir / DATABASE_FILE)


def project_ref(body: dict) -> ProjectRef:
    """From a stored CustomVisionProject."""
    meta, location = body["metadata"], body["spec"]["dataset"]
    return ProjectRef(meta["uid"], meta["namespace"], meta["name"], location["bucket"], location.get("prefix", ""))


@dataclass(frozen=True)
class Refused:
    file: str  # <tag folder>/<file name>
    reason: str


@dataclass
class UploadReport:
    added: int = 0
    present: int = 0  # stored already, by content
    refused: list[Refused] = field(default_factory=list)

    def merge(self, other: UploadReport) -> None:
        self.added += other.added
        self.present += other.present
        self.refused += other.refused


STORE_REASONS = {"ErrorStorage": "S3 did not take the bytes; check it with: kubevision local status",
                 "ErrorLimitExceed": "the project holds as many images as its namespace's limit allows "
                                     "(images_per_project in limits.yaml of the data folder)"}


def tagged_files(folders: list[Path]) -> list[tuple[Path, str]]:
    """Every file of each tag folder, with the folder's name as its tag; hidden files (.DS_Store) are no images."""
    return [(path, folder.name) for folder in folders for path in sorted(folder.iterdir())
            if path.is_file() and not path.name.startswith(".")]


def checked_bytes(path: Path) -> bytes:
    """The file's bytes, decoded once as the gateway and the trainer decode them and within the store's limits;
    raises ImageProblem or OSError saying why they are no usable image."""
    data = path.read_bytes()
    decode(data, MAX_IMAGE_BYTES, MAX_PIXELS)
    return data


class _TagIds:
    """Tag ids by name; a tag is made when its first image is accepted, so a folder of refused files adds none. A
    folder named `Negative` (in any case) holds images with none of the tags: the project's Negative tag, whatever
    that tag is called."""

    def __init__(self, store: LabelStore, project_id: str):
        self.store, self.project_id = store, project_id
        self.ids = {(NEGATIVE_TAG if t.type == "Negative" else t.name): t.id for t in store.tags(project_id)}
        self.lock = threading.Lock()

    def __call__(self, name: str) -> str:
        negative = name.strip().lower() == NEGATIVE_TAG.lower()
        key = NEGATIVE_TAG if negative else name
        with self.lock:
            if key not in self.ids:
                try:
                    self.ids[key] = self.store.create_tag(self.project_id, name,
                                                          type="Negative" if negative else "Regular").id
                except StoreError as error:  # made by another writer since
                    if error.code not in ("BadRequestTagNameNotUnique", "BadRequestMultipleNegativeTag"):
                        raise
                    self.ids[key] = next(t.id for t in self.store.tags(self.project_id) if (
                        t.type == "Negative" if negative else t.name.lower() == name.strip().lower()))
            return self.ids[key]


def _store_batch(store: LabelStore, project: ProjectRef, tag_ids: _TagIds, batch: list[tuple[Path, str]]
                 ) -> UploadReport:
    report, images = UploadReport(), []
    for path, tag in batch:
        name = f"{tag}/{path.name}"
        try:
            images.append(NewImage(checked_bytes(path), [tag_ids(tag)], source=name))
        except (ImageProblem, OSError) as problem:
            report.refused.append(Refused(name, str(problem)))
    if not images:
        return report
    for result in store.add_images(project, images):
        if result.status == "OK":
            report.added += 1
        elif result.status == "OKDuplicate":
            report.present += 1
        else:  # what the store refuses beyond decoding (Custom Vision's ImageCreateStatus)
            report.refused.append(Refused(result.source, STORE_REASONS.get(result.status, result.status)))
    return report


def add_tag_folders(store: LabelStore, project: ProjectRef, folders: list[Path],
                    advance: Callable[[int], None] = lambda n: None) -> UploadReport:
    """Each folder's files as images tagged with the folder's name (the tag is made if missing). Batches are read,
    checked and stored by a few threads at once; `advance` hears how many files each finished batch held."""
    store.ensure_project(project)
    tag_ids = _TagIds(store, project.id)
    files = tagged_files(folders)
    report = UploadReport()
    with ThreadPoolExecutor(UPLOAD_WORKERS) as pool:
        batches = [files[i:i + UPLOAD_BATCH] for i in range(0, len(files), UPLOAD_BATCH)]
        futures = {pool.submit(_store_batch, store, project, tag_ids, batch): len(batch) for batch in batches}
        try:
            for future in as_completed(futures):
                report.merge(future.result())
                advance(futures[future])
        except BaseException:  # an error or Ctrl-C: what is stored stays (a re-upload skips it), the rest is dropped
            for future in futures:
                future.cancel()
            raise
    report.refused.sort(key=lambda r: r.file)
    return report


def upload_folders(data_dir: Path, objects: ObjectStore, body: dict, folders: list[Path],
                   advance: Callable[[int], None] = lambda n: None) -> UploadReport:
    """`kubevision upload` in local mode: through the store, within the namespace's limits as the gateway keeps
    them, then the manifest exported before returning, so that an iteration applied next trains on every image."""
    database = open_database(local_database_url(data_dir))
    try:
        project = project_ref(body)
        store = LabelStore(database, objects, limits=limits_source(data_dir))
        report = add_tag_folders(store, project, folders, advance)
        ManifestExporter(database, objects).export(project.id)
        return report
    finally:
        database.dispose()
