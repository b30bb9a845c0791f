"""Folders of tagged images into the label store, as `kubevision upload` and the local demo add them: one
subfolder per tag, sent in batches of the API's size, then the manifest exported once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from kubevision.core import dataset
from kubevision.core.labelstore.database import open_database, sqlite_url
from kubevision.core.labelstore.errors import StoreError
from kubevision.core.labelstore.export import ManifestExporter
from kubevision.core.labelstore.store import MAX_BATCH, LabelStore, NewImage, ProjectRef
from kubevision.core.storage import ObjectStore

DATABASE_FILE = "labels.db"


def local_database_url(data_dir: Path) -> str:
    """Local mode's label store: SQLite in the platform's data folder (made if missing), shared by the gateway and
    the CLI."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return sqlite_url(data_dir / DATABASE_FILE)


def project_ref(body: dict) -> ProjectRef:
    """From a stored CustomVisionProject."""
    meta, location = body["metadata"], body["spec"]["dataset"]
    return ProjectRef(meta["uid"], meta["namespace"], meta["name"], location["bucket"], location.get("prefix", ""))


def _batches(folders: list[Path], tag_ids: dict[str, str]) -> Iterator[list[NewImage]]:
    batch: list[NewImage] = []
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            batch.append(NewImage(path.read_bytes(), [tag_ids[folder.name]], source=str(path)))
            if len(batch) == MAX_BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def add_tag_folders(store: LabelStore, project: ProjectRef, folders: list[Path]) -> dict[str, int]:
    """Each folder's files as images tagged with the folder's name (the tag is made if missing). Returns the count
    of each image status (OK, OKDuplicate, ErrorImageFormat, ...)."""
    store.ensure_project(project)
    tag_ids = {t.name: t.id for t in store.tags(project.id)}
    for folder in folders:
        if folder.name not in tag_ids:
            try:
                tag_ids[folder.name] = store.create_tag(project.id, folder.name).id
            except StoreError as error:
                if error.code != "BadRequestTagNameNotUnique":
                    raise
                tag_ids[folder.name] = dataset.tag_id(project.id, folder.name)
    statuses: dict[str, int] = {}
    for batch in _batches(folders, tag_ids):
        for result in store.add_images(project, batch):
            statuses[result.status] = statuses.get(result.status, 0) + 1
    return statuses


def upload_folders(data_dir: Path, objects: ObjectStore, body: dict, folders: list[Path]) -> dict[str, int]:
    """`kubevision upload` in local mode: through the store, then the manifest exported before returning, so that
    an iteration applied next trains on every image."""
    database = open_database(local_database_url(data_dir))
    try:
        project = project_ref(body)
        statuses = add_tag_folders(LabelStore(database, objects), project, folders)
        ManifestExporter(database, objects).export(project.id)
        return statuses
    finally:
        database.dispose()
