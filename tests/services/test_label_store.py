"""The label store against the real local S3, on SQLite and on a real PostgreSQL (one parametrised fixture): its
schema is what the migrations make, uploads (of API batches and of folders) keep bytes first and lose nothing under
concurrent writers, and the manifest export is coalesced and never overwrites a manifest that someone else wrote."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import insert, select

from kubevision.core import dataset
from kubevision.core.labelstore import regions, tables
from kubevision.core.labelstore.boxes import MAX_REGIONS_PER_IMAGE
from kubevision.core.labelstore.database import open_database
from kubevision.core.labelstore.errors import Conflict, ExportBusy, StoreError
from kubevision.core.labelstore.export import ManifestExporter
from kubevision.core.labelstore.store import LabelStore, NewImage, ProjectRef, RegionIn
from kubevision.core.labelstore.upload import add_tag_folders
from kubevision.core.limits import LimitsSource
from kubevision.core.storage import DatasetStore, ObjectStore

BUCKET = "label-store-tests"


def png(number: int, size: int = 8) -> bytes:
    """A small PNG unique to `number`."""
    image = Image.new("RGB", (size, size), (number % 256, number // 256 % 256, number // 65536 % 256))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def objects(platform) -> ObjectStore:
    store = ObjectStore(platform.s3_settings())
    store.ensure_bucket(BUCKET)
    return store


@pytest.fixture
def database(database_url):
    db = open_database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def project(database, objects) -> ProjectRef:
    ref = ProjectRef(str(uuid.uuid4()), "tests", "labels", BUCKET, f"tests/{uuid.uuid4().hex}/")
    LabelStore(database, objects).ensure_project(ref)
    return ref


@pytest.mark.parametrize("prefix", ["team-a/trees/", "team-b/", ""])
def test_the_store_refuses_a_project_whose_dataset_is_outside_its_namespace(database, objects, prefix):
    """Team B's project naming team A's dataset: nothing of A's is read, imported or written through it."""
    with pytest.raises(StoreError) as refused:
        ProjectRef(str(uuid.uuid4()), "team-b", "copy", BUCKET, prefix)
    assert (refused.value.status, refused.value.code) == (403, "ForbiddenUserResource")
    assert "outside the project's namespace" in refused.value.message


def test_the_migrations_make_exactly_the_models_schema(database):
    with database.writer.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), tables.Base.metadata)
    assert differences == []
    database.migrate()  # once more: a no-op, as when a second gateway starts


def test_an_upload_batch_reports_each_image_and_stores_only_what_it_accepts(database, objects, project):
    store = LabelStore(database, objects)
    tree = store.create_tag(project.id, "tree")
    negative = store.create_tag(project.id, "Negative", type="Negative")
    with pytest.raises(StoreError) as error:
        store.create_tag(project.id, "TREE")
    assert error.value.code == "BadRequestTagNameNotUnique"
    with pytest.raises(StoreError) as error:
        store.create_tag(project.id, "none", type="Negative")
    assert error.value.code == "BadRequestMultipleNegativeTag"

    batch = [
        NewImage(png(1), [tree.id], metadata={"camera": "3"}),
        NewImage(png(1), [tree.id]),                      # the same photo again, in the same batch
        NewImage(b"not an image", [tree.id]),
        NewImage(png(2, size=7000), [tree.id]),           # 49 megapixels
        NewImage(png(3), ["0" * 8 + "-0000-0000-0000-" + "0" * 12]),
        NewImage(png(4), [tree.id, negative.id]),
        NewImage(png(5), [], regions=[RegionIn(tree.id, 0.1, 0.2, 0.3, 0.4)]),
        NewImage(png(6)),
    ]
    results = store.add_images(project, batch)
    assert [r.status for r in results] == ["OK", "OKDuplicate", "ErrorImageFormat", "ErrorImageDimensions",
                                           "ErrorInvalidTag", "ErrorNegativeAndRegularTagOnSameImage", "OK", "OK"]
    first = results[0].image
    assert first.id == dataset.image_id(dataset.content_hash(png(1))) and (first.width, first.height) == (8, 8)
    assert [name for _, name, _ in first.tags] == ["tree"] and first.metadata == {"camera": "3"}
    assert results[1].image.id == first.id
    assert store.add_images(project, [NewImage(png(1), [])])[0].status == "OKDuplicate"

    assert store.count(project.id) == 3
    assert store.count(project.id, tagged=True) == 2  # the image tag, and the region
    assert store.count(project.id, tagged=False) == 1
    assert store.count(project.id, tagged=True, tag_ids=[negative.id]) == 0
    assert {t.name: t.image_count for t in store.tags(project.id)} == {"tree": 2, "Negative": 0}
    stored = {key.rsplit("/", 1)[1] for key in objects.keys(BUCKET, project.prefix + "images/")}
    assert stored == {dataset.content_hash(png(n)) for n in (1, 5, 6)}  # refused images left no bytes

    with pytest.raises(StoreError) as error:
        store.add_images(project, [NewImage(png(n)) for n in range(65)])
    assert error.value.code == "BadRequestImageBatch"
    assert store.count(project.id) == 3


def test_no_row_names_missing_bytes(database, objects, project, platform):
    """Bytes first: when S3 refuses the bytes (here, a wrong secret key), no row is written."""
    refused = platform.s3_settings().model_copy(update={"secret_key": SecretStr("wrong")})
    results = LabelStore(database, ObjectStore(refused)).add_images(project, [NewImage(png(10)), NewImage(png(11))])
    assert [r.status for r in results] == ["ErrorStorage", "ErrorStorage"]
    assert LabelStore(database, objects).count(project.id) == 0


def test_deleting_an_image_keeps_its_bytes(database, objects, project):
    store = LabelStore(database, objects)
    image = store.add_images(project, [NewImage(png(20))])[0].image
    store.delete_images(project.id, [image.id])
    assert store.count(project.id) == 0
    assert objects.exists(BUCKET, project.layout.image_key(image.sha256))


def at_once(clients: int, work: Callable[[int, Callable[[], None]], None]) -> None:
    """Runs work(number, ready) for each client on a thread of its own: each calls ready() once it is set up, and
    they all go on together. A client's error stops the others waiting, and fails the test."""
    start = threading.Barrier(clients)
    errors: list[BaseException] = []

    def client(number: int) -> None:
        try:
            work(number, lambda: start.wait(timeout=120))
        except BaseException as error:  # reported below
            errors.append(error)
            start.abort()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, repr(errors[0])


def test_eight_clients_uploading_at_once_lose_nothing(database_url, objects, project):
    """8 clients, each with its own connections, upload 64-image batches at once; half of each client's images are
    also uploaded by another client at the same time, and all create the same tags."""
    clients, per_batch, batches = 8, 64, 2
    results: list[str] = []

    def client(number: int, ready: Callable[[], None]) -> None:
        db = open_database(database_url)
        store = LabelStore(db, objects)
        tags = {}
        for name in ("even", "odd"):
            try:
                tags[name] = store.create_tag(project.id, name).id
            except StoreError as error:
                assert error.code == "BadRequestTagNameNotUnique"
                tags[name] = dataset.tag_id(project.id, name)
        ready()
        for batch in range(batches):
            # own images, then images that the client's pair (0 and 1, 2 and 3, ...) uploads too
            numbers = [1000 + number * 1000 + batch * per_batch + i for i in range(per_batch // 2)]
            numbers += [500_000 + number // 2 * 1000 + batch * per_batch + i for i in range(per_batch // 2)]
            outcome = store.add_images(project, [NewImage(png(n), [tags["even" if n % 2 == 0 else "odd"]])
                                                 for n in numbers])
            results.extend(r.status for r in outcome)
        db.dispose()

    at_once(clients, client)

    own = clients * batches * per_batch // 2
    shared = clients // 2 * batches * per_batch // 2
    uploads = clients * batches * per_batch
    assert results.count("OK") == own + shared
    assert results.count("OKDuplicate") == uploads - own - shared
    db = open_database(database_url)
    store = LabelStore(db, objects)
    assert store.count(project.id) == own + shared
    with db.reading() as session:
        ids = session.scalars(select(tables.Image.id).where(tables.Image.project_id == project.id)).all()
        links = session.scalars(select(tables.ImageTag.image_id).where(tables.ImageTag.project_id == project.id)).all()
    assert len(ids) == len(set(ids)) == len(links) == len(set(links))
    counts = {t.name: t.image_count for t in store.tags(project.id)}
    assert sum(counts.values()) == own + shared and set(counts) == {"even", "odd"}
    exported = ManifestExporter(db, objects).export(project.id)
    manifest = dataset.loads(objects.get(BUCKET, project.layout.manifest_key))
    assert exported.images == len(manifest) == own + shared
    assert len({r.id for r in manifest}) == len(manifest)
    db.dispose()


def test_a_folder_upload_stores_its_batches_at_once_and_loses_nothing(database, objects, project, tmp_path):
    """More batches than threads, spanning folders; each folder's tag made once; a broken file stored nowhere."""
    folders = [tmp_path / name for name in ("alder", "birch", "cedar", "dogwood")]
    for index, folder in enumerate(folders):
        folder.mkdir()
        for number in range(30 if folder.name != "dogwood" else 0):
            (folder / f"{number}.png").write_bytes(png(index * 1000 + number))
    (folders[3] / "broken.png").write_bytes(png(9999, size=64)[:60])  # a header, then nothing: cannot decode
    store = LabelStore(database, objects)
    steps: list[int] = []
    report = add_tag_folders(store, project, folders, steps.append)
    assert (report.added, report.present, [r.file for r in report.refused]) == (90, 0, ["dogwood/broken.png"])
    assert len(steps) == 6 and sum(steps) == 91  # batches of 16 files
    assert {t.name: t.image_count for t in store.tags(project.id)} == {"alder": 30, "birch": 30, "cedar": 30}
    assert store.count(project.id) == len(objects.keys(BUCKET, f"{project.prefix}images/")) == 90
    again = add_tag_folders(store, project, folders)
    assert (again.added, again.present, again.refused) == (0, 90, report.refused)


def test_the_export_is_coalesced_and_always_current_after_an_explicit_export(database, objects, project):
    store = LabelStore(database, objects)
    exporter = ManifestExporter(database, objects)
    tag = store.create_tag(project.id, "tree")
    for number in range(3):  # a burst
        store.add_images(project, [NewImage(png(100 + number), [tag.id])])
    assert exporter.pending(quiet_seconds=60, max_wait_seconds=60) == []  # still changing: not yet
    assert exporter.pending(quiet_seconds=0, max_wait_seconds=60) == [project.id]
    first = exporter.export(project.id)
    assert first.written and first.images == 3
    assert exporter.pending(quiet_seconds=0, max_wait_seconds=0) == []
    assert not exporter.export(project.id).written  # nothing changed: nothing written
    manifest = dataset.loads(objects.get(BUCKET, project.layout.manifest_key))
    assert [r.tags for r in manifest] == [["tree"]] * 3
    assert [r.id for r in manifest] == [dataset.image_id(dataset.content_hash(png(100 + n))) for n in range(3)]


def test_a_manifest_written_by_someone_else_is_never_overwritten(database, objects, project):
    store = LabelStore(database, objects)
    exporter = ManifestExporter(database, objects)
    tag = store.create_tag(project.id, "tree")
    store.add_images(project, [NewImage(png(200), [tag.id])])
    exporter.export(project.id)
    foreign = b'{"id": "pipeline"}\n'
    objects.put(BUCKET, project.layout.manifest_key, foreign)  # a data pipeline writes the manifest
    store.add_images(project, [NewImage(png(201), [tag.id])])
    with pytest.raises(Conflict) as error:
        exporter.export(project.id)
    assert "written by someone else" in error.value.message
    assert objects.get(BUCKET, project.layout.manifest_key) == foreign
    objects.client.remove_object(BUCKET, project.layout.manifest_key)  # the owner gives it back
    assert exporter.export(project.id).images == 2


def test_a_manifest_found_when_the_project_is_registered_is_imported(database, objects):
    ref = ProjectRef(str(uuid.uuid4()), "tests", "adopted", BUCKET, f"tests/{uuid.uuid4().hex}/")
    records = [dataset.ImageRecord(id=dataset.image_id(dataset.content_hash(png(n))),
                                   sha256=dataset.content_hash(png(n)), content_type="image/png", size=len(png(n)),
                                   tags=["a" if n % 2 else "b"], metadata={"n": str(n)}) for n in range(5)]
    for n in range(5):
        objects.put(BUCKET, ref.layout.image_key(dataset.content_hash(png(n))), png(n))
    objects.put(BUCKET, ref.layout.manifest_key, dataset.dumps(records))
    store = LabelStore(database, objects)
    store.ensure_project(ref)
    store.ensure_project(ref)  # a second registration imports nothing twice
    assert store.count(ref.id) == 5
    assert {t.name: t.image_count for t in store.tags(ref.id)} == {"a": 2, "b": 3}
    assert store.tag(ref.id, dataset.tag_id(ref.id, "a")).name == "a"
    store.add_images(ref, [NewImage(png(9), [dataset.tag_id(ref.id, "a")])])
    exported = ManifestExporter(database, objects).export(ref.id)  # the imported manifest is the store's own now
    assert exported.images == 6


def test_a_tag_keeps_its_id_when_renamed_and_its_old_name_can_be_taken_again(database, objects, project):
    store = LabelStore(database, objects)
    hemlock = store.create_tag(project.id, "Hemlock")
    assert hemlock.id == dataset.tag_id(project.id, "Hemlock")  # named without a lookup while never renamed
    renamed = store.update_tag(project.id, hemlock.id, "Tsuga", None, None)
    assert (renamed.id, renamed.name) == (hemlock.id, "Tsuga")
    again = store.create_tag(project.id, "Hemlock")  # its derived id is the renamed tag's: it gets another one
    assert again.id != hemlock.id and again.name == "Hemlock"
    assert {(t.id, t.name) for t in store.tags(project.id)} == {(hemlock.id, "Tsuga"), (again.id, "Hemlock")}
    with pytest.raises(StoreError) as refused:
        store.create_tag(project.id, "hemlock")
    assert refused.value.code == "BadRequestTagNameNotUnique"


def test_the_store_gathers_postgresql_statistics_after_a_bulk_load(postgres, objects):
    """Before autovacuum's statistics, PostgreSQL would sort a whole project to serve a page of it."""
    database = open_database(postgres.new_database())
    store = LabelStore(database, objects, analyze_every=64)
    ref = ProjectRef(str(uuid.uuid4()), "tests", "labels", BUCKET, f"tests/{uuid.uuid4().hex}/")
    store.ensure_project(ref)
    tag = store.create_tag(ref.id, "a").id

    def manual_analyses() -> int:
        with database.writer.connect() as connection:
            connection.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            return connection.exec_driver_sql(
                "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'images'").scalar_one()

    store.add_images(ref, [NewImage(png(n), [tag]) for n in range(32)])
    assert manual_analyses() == 0
    store.add_images(ref, [NewImage(png(n), [tag]) for n in range(32, 64)])
    assert manual_analyses() == 1
    database.dispose()


def test_regions_are_created_once_limited_per_image_and_a_bad_batch_changes_nothing(database, objects, project):
    store = LabelStore(database, objects)
    fork = store.create_tag(project.id, "fork")
    image = store.add_images(project, [NewImage(data=png(900), regions=[RegionIn(fork.id, 0, 0, 1, 1)])])[0].image
    version = store.project(project.id).labels_version

    def boxes() -> list[tuple]:
        return sorted((r.left, r.top, r.width, r.height) for r, _ in store.images_by_ids(project.id, [image.id])[0]
                      .regions)

    for bad, wanted in ((RegionIn(fork.id, 0.5, 0.5, 0.6, 0.1), "BadRequestImageRegions"),
                        (RegionIn(fork.id, 0.5, 0.5, 0.0, 0.1), "BadRequestImageRegions"),
                        (RegionIn(str(uuid.uuid4()), 0.1, 0.1, 0.1, 0.1), "BadRequestInvalidIds")):
        good = RegionIn(fork.id, 0.2, 0.2, 0.2, 0.2)
        with pytest.raises(StoreError) as error:
            regions.create_regions(store, project.id, [regions.RegionEntry(image.id, good),
                                                       regions.RegionEntry(image.id, bad)])
        assert error.value.code == wanted
    with pytest.raises(StoreError) as error:  # at upload too, before any byte is stored
        store.add_images(project, [NewImage(data=png(901)), NewImage(data=png(902), regions=[
            RegionIn(fork.id, -0.1, 0, 0.5, 0.5)])])
    assert error.value.code == "BadRequestImageRegions" and not objects.exists(
        BUCKET, project.layout.image_key(dataset.content_hash(png(901))))
    assert boxes() == [(0, 0, 1, 1)] and store.project(project.id).labels_version == version

    def batch(top: float) -> list[regions.RegionEntry]:
        return [regions.RegionEntry(image.id.upper(), RegionIn(fork.id, 0.005 * n, top, 0.5, 0.5))
                for n in range(regions.MAX_BATCH)]

    first = regions.create_regions(store, project.id, batch(0))
    again = regions.create_regions(store, project.id, batch(0))  # the same boxes: reported, not repeated
    assert (len(first.created), len(again.created), len(again.duplicated)) == (64, 0, 64)
    assert {c.tag_name for c in first.created} == {"fork"} and len({c.id for c in first.created}) == 64
    for top in (0.1, 0.2):
        regions.create_regions(store, project.id, batch(top))
    assert len(boxes()) == 1 + 3 * regions.MAX_BATCH
    last = regions.create_regions(store, project.id, batch(0.3)[:10])
    assert (len(last.created), len(last.exceeded), last.duplicated) == (MAX_REGIONS_PER_IMAGE - 193, 3, [])
    assert len(boxes()) == MAX_REGIONS_PER_IMAGE

    regions.delete_regions(store, project.id, [c.id.upper() for c in first.created[:63]] + [str(uuid.uuid4())])
    assert len(boxes()) == MAX_REGIONS_PER_IMAGE - 63


def test_a_box_a_rounding_error_past_an_edge_is_kept_on_the_edge_and_the_manifest_carries_it(
        database, objects, project):
    """One rule for the store and the manifest (core/dataset.fit_box): a box that passes an edge by less than the
    tolerance is moved onto it when stored, so the export stays a manifest that the snapshot and the trainer read."""
    store = LabelStore(database, objects)
    exporter = ManifestExporter(database, objects)
    fork = store.create_tag(project.id, "fork")
    image = store.add_images(project, [NewImage(png(950), regions=[RegionIn(fork.id, 0, 0, 1.0000005, 0.5)])])[0]
    created = regions.create_regions(store, project.id, [
        regions.RegionEntry(image.image.id, RegionIn(fork.id, -0.0000004, 0.6, 0.5, 0.4000003))])
    assert (created.created[0].region.left, created.created[0].region.height) == (0, 0.4)
    stored = sorted((r.left, r.top, r.width, r.height) for r, _ in
                    store.images_by_ids(project.id, [image.image.id])[0].regions)
    assert all(0 <= edge <= 1 for box in stored for edge in (box[0], box[1], box[0] + box[2], box[1] + box[3]))
    assert stored == [(0, 0, 1, 0.5), (0, 0.6, 0.4999996, 0.4)]

    exporter.export(project.id)
    records = DatasetStore(objects, project.layout)
    snapshot = records.snapshot("after-the-edge")  # as the operator takes it before a training
    assert sorted((r.left, r.width) for r in records.snapshot_records("after-the-edge")[0].regions) == [
        (0, 0.4999996), (0, 1)]
    assert snapshot.endswith("after-the-edge.jsonl")

    # The manifest model keeps the same rule for manifests written elsewhere: fitted within the tolerance,
    # refused past it.
    assert dataset.Region(tag="fork", left=0.5, top=0, width=0.5000009, height=1).width == 0.5
    with pytest.raises(ValueError, match="outside the image"):
        dataset.Region(tag="fork", left=0.5, top=0, width=0.51, height=1)
    with pytest.raises(StoreError) as error:
        store.add_images(project, [NewImage(png(951), regions=[RegionIn(fork.id, 0, 0, 1.00001, 0.5)])])
    assert error.value.code == "BadRequestImageRegions"


def test_metadata_keeps_the_same_limits_on_update_as_at_upload(database, objects, project):
    """10 pairs an image, keys of 1 to 128 characters without controls, values of at most 256: refused alike at
    upload and on update, on SQLite and on PostgreSQL (whose columns would refuse them with a 500)."""
    store = LabelStore(database, objects)
    full = {f"key{n}": str(n) for n in range(10)}
    image = store.add_images(project, [NewImage(png(960), metadata=full)])[0].image.id
    bare = store.add_images(project, [NewImage(png(961))])[0].image.id
    version = store.project(project.id).labels_version

    def metadata(image_id: str) -> dict[str, str]:
        return store.images_by_ids(project.id, [image_id])[0].metadata

    assert store.update_metadata(project.id, [image, bare], {"key10": "x"}) == {
        image: "ErrorLimitExceed", bare: "OK"}  # the full image keeps its 10 pairs
    assert metadata(image) == full and metadata(bare) == {"key10": "x"}
    assert store.update_metadata(project.id, [image.upper()], {"key3": "three"}) == {image: "OK"}  # replaced
    assert metadata(image) == {**full, "key3": "three"}
    eleven = {f"other{n}": "" for n in range(11)}
    assert store.update_metadata(project.id, [bare], eleven) == {bare: "ErrorLimitExceed"}
    assert store.add_images(project, [NewImage(png(962), metadata=eleven)])[0].status == "ErrorLimitExceed"
    version = store.project(project.id).labels_version

    for pairs, code in (({"k" * 129: "v"}, "BadRequestImageMetadataKey"),
                        ({"": "v"}, "BadRequestImageMetadataKey"),
                        ({"line\nbreak": "v"}, "BadRequestImageMetadataKey"),
                        ({"next\x85line": "v"}, "BadRequestImageMetadataKey"),
                        ({"camera": "v" * 257}, "BadRequestImageMetadataValue"),
                        ({"camera": "nul\x00"}, "BadRequestImageMetadataValue")):
        with pytest.raises(StoreError) as error:
            store.update_metadata(project.id, [bare], pairs)
        assert error.value.code == code, pairs
        with pytest.raises(StoreError) as error:
            store.add_images(project, [NewImage(png(963), metadata=pairs)])
        assert error.value.code == code, pairs
    assert metadata(bare) == {"key10": "x"} and store.project(project.id).labels_version == version
    assert not objects.exists(BUCKET, project.layout.image_key(dataset.content_hash(png(963))))
    longest = {"k" * 128: "v" * 256}
    assert store.update_metadata(project.id, [bare], longest) == {bare: "OK"}
    assert metadata(bare) == {"key10": "x", **longest}


def test_names_that_a_labels_file_could_split_are_refused_and_negative_is_the_negative_tags_alone(
        database, objects, project):
    store = LabelStore(database, objects)
    exporter = ManifestExporter(database, objects)
    fork = store.create_tag(project.id, "fork")
    for name in ("two\nlines", "carriage\rreturn", "tab\tbed", "nul\x00", "del\x7f", "next\x85line",
                 "c1\x9a", "line\u2028separator", "paragraph\u2029separator", "file\x1cseparator"):
        with pytest.raises(StoreError) as error:
            store.create_tag(project.id, name)
        assert error.value.code == "BadRequestTagName", repr(name)
        with pytest.raises(StoreError) as error:
            store.update_tag(project.id, fork.id, name, None, None)
        assert error.value.code == "BadRequestTagName", repr(name)
    with pytest.raises(StoreError) as error:
        store.create_tag(project.id, "described", description="nul\x00")
    assert error.value.code == "BadRequestTagDescription"

    # The manifest names the Negative tag "Negative" whatever its name: no other tag may be called so.
    for name in ("Negative", "negative ", " NEGATIVE"):
        with pytest.raises(StoreError) as error:
            store.create_tag(project.id, name)
        assert error.value.code == "BadRequestTagName", name
        with pytest.raises(StoreError) as error:
            store.update_tag(project.id, fork.id, name, None, None)
        assert error.value.code == "BadRequestTagName", name
    nothing = store.create_tag(project.id, "nothing", type="Negative")
    renamed = store.update_tag(project.id, nothing.id, "Negative", None, None)  # the Negative tag may be
    with pytest.raises(StoreError) as error:  # but not as a regular tag
        store.update_tag(project.id, renamed.id, None, None, "Regular")
    assert error.value.code == "BadRequestTagName"
    assert [(t.name, t.type) for t in store.tags(project.id)] == [("fork", "Regular"), ("Negative", "Negative")]
    store.update_tag(project.id, renamed.id, "nothing", None, None)
    store.add_images(project, [NewImage(png(970), [fork.id]), NewImage(png(971), [nothing.id])])
    exporter.export(project.id)
    manifest = dataset.loads(objects.get(BUCKET, project.layout.manifest_key))
    assert [r.tags for r in manifest] == [["fork"], ["Negative"]]

    # A manifest written elsewhere with such a name is refused when read, never split into other tags.
    line = dataset.ImageRecord(id="x", sha256="0" * 64, content_type="image/png", size=1).model_dump(mode="json")
    with pytest.raises(dataset.ManifestError, match="U\\+2028"):
        dataset.loads(json.dumps({**line, "tags": ["two\u2028tags"]}).encode())


class DiesBeforeRecording(ManifestExporter):
    """An exporter whose process stops after it wrote the manifest and before it recorded the ETag."""

    def _written(self, project_id: str, version: int, etag: str) -> None:
        raise SystemExit("the exporter's process stops here")


def test_a_manifest_whose_exporter_died_before_recording_it_is_taken_back(database, objects, project):
    store = LabelStore(database, objects)
    tag = store.create_tag(project.id, "tree")
    store.add_images(project, [NewImage(png(980), [tag.id])])
    for first_export in (True, False):  # with no manifest recorded yet, and over one recorded before
        store.add_images(project, [NewImage(png(981 + first_export), [tag.id])])
        with pytest.raises(SystemExit):
            DiesBeforeRecording(database, objects).export(project.id)
        assert objects.etag(BUCKET, project.layout.manifest_key) != store.project(project.id).manifest_etag
        store.add_images(project, [NewImage(png(990 + first_export), [tag.id])])  # labelled meanwhile
        exported = ManifestExporter(database, objects).export(project.id)  # no 409: the manifest is taken back
        assert exported.written and exported.images == len(dataset.loads(
            objects.get(BUCKET, project.layout.manifest_key))) == store.count(project.id)
        assert store.project(project.id).manifest_etag == objects.etag(BUCKET, project.layout.manifest_key)


class SlowExporter(ManifestExporter):
    """An exporter each of whose steps outlasts its lease (a project of many images, a slow S3)."""

    def _export_once(self, project_id: str):
        time.sleep(3 * self.lease_seconds)
        return super()._export_once(project_id)


def test_a_dead_exporters_lease_lapses_in_seconds_and_a_live_one_keeps_its_own(database, objects, project):
    """A process killed mid-export never releases its lease: the next export waits for the lease to lapse, seconds,
    not minutes. A live exporter renews its lease while a step outlasts it, so nobody exports beside it; whoever waits
    past its patience gets 409 with Retry-After, not a server error."""
    store = LabelStore(database, objects)
    tag = store.create_tag(project.id, "tree")
    store.add_images(project, [NewImage(png(1000), [tag.id])])
    assert ManifestExporter(database, objects, lease_seconds=2)._claim(project.id)  # then killed: nothing releases it
    with pytest.raises(ExportBusy) as busy:
        ManifestExporter(database, objects).export(project.id, wait_seconds=0.5)
    assert (busy.value.status, busy.value.code, busy.value.headers) == (409, "Conflict", {"Retry-After": "30"})
    started = time.monotonic()
    assert ManifestExporter(database, objects).export(project.id).written
    assert time.monotonic() - started < 10

    store.add_images(project, [NewImage(png(1001), [tag.id])])
    slow = SlowExporter(database, objects, lease_seconds=1)
    exporting = threading.Thread(target=slow.export, args=(project.id,))
    exporting.start()
    time.sleep(0.3)
    with pytest.raises(ExportBusy):  # its lease of 1 s would have lapsed twice over without renewal
        ManifestExporter(database, objects).export(project.id, wait_seconds=2.5)
    exporting.join()
    assert store.project(project.id).exported_version == store.project(project.id).labels_version


def test_a_foreign_manifest_that_copies_the_stores_marks_still_conflicts(database, objects, project):
    """The store takes back only content it wrote: a manifest edited elsewhere, even one that keeps the metadata
    the store wrote with it, is someone else's."""
    store = LabelStore(database, objects)
    exporter = ManifestExporter(database, objects)
    tag = store.create_tag(project.id, "tree")
    store.add_images(project, [NewImage(png(1000), [tag.id])])
    exporter.export(project.id)
    key = project.layout.manifest_key
    marks = objects.user_metadata(BUCKET, key)
    assert marks and marks["kubevision-project"] == project.id
    edited = objects.get(BUCKET, key) + objects.get(BUCKET, key)  # a pipeline appends, copying the metadata
    objects.put(BUCKET, key, edited, "application/x-ndjson", metadata=marks)
    store.add_images(project, [NewImage(png(1001), [tag.id])])
    with pytest.raises(Conflict):
        exporter.export(project.id)
    assert objects.get(BUCKET, key) == edited
    # Marks that hold for the content, but of another project (its manifest copied here).
    for_another = {"kubevision-project": str(uuid.uuid4()), "kubevision-sha256": hashlib.sha256(edited).hexdigest()}
    objects.put(BUCKET, key, edited, "application/x-ndjson", metadata=for_another)
    with pytest.raises(Conflict):
        exporter.export(project.id)


def test_a_folder_named_negative_uploads_to_the_negative_tag(database, objects, project, tmp_path):
    """`kubevision upload`: a regular tag may not be called Negative, so that folder fills the Negative tag."""
    store = LabelStore(database, objects)
    for folder, number in (("negative", 1100), ("Negative", 1101), ("tree", 1102)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.png").write_bytes(png(number))
    first = add_tag_folders(store, project, [tmp_path / "negative", tmp_path / "tree"])
    assert first.added == 2 and not first.refused
    nothing = store.tags(project.id)[0]
    assert (nothing.name, nothing.type) == ("negative", "Negative")
    store.update_tag(project.id, nothing.id, "nothing", None, None)  # the Negative tag, whatever its name
    again = add_tag_folders(store, project, [tmp_path / "Negative"])
    assert again.added == 1 and not again.refused
    assert {(t.name, t.type, t.image_count) for t in store.tags(project.id)} == {
        ("nothing", "Negative", 2), ("tree", "Regular", 1)}
    ManifestExporter(database, objects).export(project.id)
    assert sorted(r.tags[0] for r in dataset.loads(objects.get(BUCKET, project.layout.manifest_key))) == [
        "Negative", "Negative", "tree"]


def limits_file(tmp_path, text: str) -> LimitsSource:
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    return LimitsSource(path)


def test_an_upload_past_the_image_limit_creates_the_images_under_it_and_refuses_the_rest(
        database, objects, project, tmp_path):
    """Custom Vision's per-image ErrorLimitExceed: the images that fit are created, in batch order; those past the
    limit leave no row and no bytes; an image the project holds already adds nothing and stays OKDuplicate."""
    store = LabelStore(database, objects, limits=limits_file(tmp_path, "namespaces: {tests: {images_per_project: 5}}"))
    tag = store.create_tag(project.id, "tree").id
    store.add_images(project, [NewImage(png(n), [tag]) for n in range(3)])
    version = store.project(project.id).labels_version

    results = store.add_images(project, [NewImage(png(n), [tag]) for n in (0, 10, 11, 12, 10, 13)])
    assert [r.status for r in results] == ["OKDuplicate", "OK", "OK", "ErrorLimitExceed", "OKDuplicate",
                                           "ErrorLimitExceed"]
    assert [r.image is None for r in results] == [False, False, False, True, False, True]
    assert store.count(project.id) == 5 and store.tags(project.id)[0].image_count == 5
    stored = {key.rsplit("/", 1)[1] for key in objects.keys(BUCKET, project.prefix + "images/")}
    assert stored == {dataset.content_hash(png(n)) for n in (0, 1, 2, 10, 11)}

    version = store.project(project.id).labels_version
    full = store.add_images(project, [NewImage(png(20), [tag]), NewImage(png(1), [tag])])
    assert [r.status for r in full] == ["ErrorLimitExceed", "OKDuplicate"]
    assert store.count(project.id) == 5 and store.project(project.id).labels_version == version


def test_the_image_that_would_pass_azures_100000_is_refused_by_default(database, objects, project):
    """No limits file: Azure S0's 100,000 images a project. 99,999 rows are seeded straight into the store's table
    (their bytes would only slow the test: the limit counts rows); the next image fits, the one after does not."""
    moment = datetime.now(UTC)
    for first in range(0, 99_999, 20_000):
        shas = [hashlib.sha256(f"seeded-{n}".encode()).hexdigest() for n in range(first, min(first + 20_000, 99_999))]
        with database.writing() as session:
            session.execute(insert(tables.Image), [dict(
                project_id=project.id, id=dataset.image_id(sha), sha256=sha, content_type="image/png", size=100,
                width=64, height=64, created=moment) for sha in shas])
    store = LabelStore(database, objects)
    assert [r.status for r in store.add_images(project, [NewImage(png(1)), NewImage(png(2))])] == [
        "OK", "ErrorLimitExceed"]
    assert store.count(project.id, tagged=None) == 100_000


def test_uploads_racing_for_the_last_image_slots_never_pass_the_limit(database_url, objects, project, tmp_path):
    """8 clients, each with its own connections, upload 8 new images at once into a project with 10 free slots:
    the slots are taken once, between them, and every other image is refused."""
    limits = limits_file(tmp_path, "defaults: {images_per_project: 20}")
    store = LabelStore(open_database(database_url), objects, limits=limits)
    store.add_images(project, [NewImage(png(n)) for n in range(10)])
    clients = 8
    statuses: list[str] = []

    def client(number: int, ready: Callable[[], None]) -> None:
        db = open_database(database_url)
        batch = [NewImage(png(1000 + number * 100 + n)) for n in range(8)]
        ready()
        statuses.extend(r.status for r in LabelStore(db, objects, limits=limits).add_images(project, batch))
        db.dispose()

    at_once(clients, client)
    assert (statuses.count("OK"), statuses.count("ErrorLimitExceed")) == (10, clients * 8 - 10)
    assert store.count(project.id) == 20
    exported = ManifestExporter(store.db, objects).export(project.id)
    assert exported.images == 20
    store.db.dispose()


def test_a_tag_past_the_limit_is_refused_and_changes_nothing_even_when_created_at_once(
        database_url, objects, project, tmp_path):
    limits = limits_file(tmp_path, "defaults: {tags_per_project: 4}\nnamespaces: {other: {tags_per_project: 9}}")
    store = LabelStore(open_database(database_url), objects, limits=limits)
    store.create_tag(project.id, "alder")
    store.create_tag(project.id, "Negative", type="Negative")  # every tag counts, the Negative one too
    version = store.project(project.id).labels_version
    codes: list[str] = []

    def client(number: int, ready: Callable[[], None]) -> None:
        db = open_database(database_url)
        ready()
        try:
            LabelStore(db, objects, limits=limits).create_tag(project.id, f"tree-{number}")
            codes.append("OK")
        except StoreError as error:
            codes.append(error.code)
        finally:
            db.dispose()

    at_once(6, client)
    assert sorted(codes) == ["BadRequestExceedTagPerProjectLimit"] * 4 + ["OK"] * 2
    assert len(store.tags(project.id)) == 4
    assert store.project(project.id).labels_version == version + 2
    with pytest.raises(StoreError) as refused:
        store.create_tag(project.id, "cedar")
    assert (refused.value.status, refused.value.code) == (400, "BadRequestExceedTagPerProjectLimit")
    assert len(store.tags(project.id)) == 4 and store.project(project.id).labels_version == version + 2
    store.db.dispose()
