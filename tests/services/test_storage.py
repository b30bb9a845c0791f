"""The storage module against the real local S3 (SeaweedFS) that the project's own code starts."""

import httpx
import pytest
from minio.error import S3Error
from pydantic import SecretStr
from seeding import Seed, photo, seed

from kubevision.core import dataset
from kubevision.core.api import DatasetLocation
from kubevision.core.storage import DatasetLayout, DatasetStore, ObjectStore, delete_project_dataset


@pytest.fixture(scope="module")
def store(platform) -> ObjectStore:
    store = ObjectStore(platform.s3_settings())
    store.ensure_bucket("datasets")
    return store


def test_object_round_trip(store):
    store.put("datasets", "round-trip/hello.bin", b"\x00hello\xff", "application/octet-stream")
    assert store.get("datasets", "round-trip/hello.bin") == b"\x00hello\xff"
    assert store.exists("datasets", "round-trip/hello.bin")
    assert not store.exists("datasets", "round-trip/absent.bin")
    assert store.keys("datasets", "round-trip/") == ["round-trip/hello.bin"]


def test_wrong_secret_key_is_refused(platform, store):
    store.put("datasets", "secret/object", b"data")
    wrong = platform.s3_settings().model_copy(update={"secret_key": SecretStr("not-the-key")})
    with pytest.raises(S3Error) as caught:
        ObjectStore(wrong).get("datasets", "secret/object")
    assert caught.value.code in {"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId"}


def test_unsigned_request_is_refused(platform, store):
    store.put("datasets", "secret/object", b"data")
    response = httpx.get(f"{platform.s3_settings().url}/datasets/secret/object")
    assert response.status_code == 403
    assert b"data" != response.content


def test_images_are_stored_once_by_content_and_listed_in_the_manifest(store):
    """Written by the label store, the one writer of a manifest; read through the storage module."""
    layout = DatasetLayout("datasets", "projects/trees/")
    images = DatasetStore(store, layout)
    photo_1, photo_2 = photo("photo-1"), photo("photo-2")
    added = seed(store, layout, [Seed(photo_1, ["hemlock"], metadata={"camera": "x"}), Seed(photo_1, ["hemlock"]),
                                 Seed(photo_2, ["cherry"])])
    assert [r.status for r in added] == ["OK", "OKDuplicate", "OK"]
    first, again, second = (r.image for r in added)
    assert again.id == first.id == dataset.image_id(dataset.content_hash(photo_1))
    assert [r.id for r in images.manifest()] == [first.id, second.id]
    assert images.image(images.manifest()[0]) == photo_1
    assert store.keys("datasets", "projects/trees/images/") == sorted(
        f"projects/trees/images/{r.sha256[:2]}/{r.sha256}" for r in (first, second)
    )
    raw = store.get("datasets", "projects/trees/manifest.jsonl").decode()
    assert len(raw.splitlines()) == 2 and '"tags":["hemlock"]' in raw


def test_a_snapshot_is_immutable(store):
    layout = DatasetLayout("datasets", "projects/birds/")
    images = DatasetStore(store, layout)
    seed(store, layout, [Seed(photo("bird-1"), ["robin"])])
    key = images.snapshot("iteration-1-uid")
    seed(store, layout, [Seed(photo("bird-2"), ["wren"])])
    assert images.snapshot("iteration-1-uid") == key  # taken again: unchanged
    assert [r.tags for r in images.snapshot_records("iteration-1-uid")] == [["robin"]]
    assert len(images.manifest()) == 2


def test_a_deleted_projects_dataset_goes_whole_unless_another_project_uses_it(store):
    """Images, manifest, snapshots, stored predictions and exports: nothing is left for a later project to read. A
    neighbour whose name begins alike keeps its own; another namespace's dataset is never touched."""
    mine, neighbour = DatasetLayout("datasets", "deleting/trees/"), DatasetLayout("datasets", "deleting/trees-2/")
    for layout in (mine, neighbour):
        seed(store, layout, [Seed(photo(f"{layout.prefix}-1"), ["hemlock"])])
        DatasetStore(store, layout).snapshot("trees-1-0a1b2c3d")
        store.put("datasets", layout.export_key("e1"), b"{}")
    location = DatasetLocation(bucket="datasets", prefix=mine.prefix)
    assert "kept" in delete_project_dataset(store, "elsewhere", location, [])
    assert "kept" in delete_project_dataset(store, "deleting", location, [("datasets", "deleting/trees/v2/")])
    assert store.exists("datasets", mine.manifest_key)
    assert "removed (4 objects)" in delete_project_dataset(store, "deleting", location, [("datasets", "deleting/x/")])
    assert store.keys("datasets", mine.prefix) == []
    assert DatasetStore(store, mine).manifest() == []
    assert len(store.keys("datasets", neighbour.prefix)) == 4
