"""The storage module against the real local S3 (SeaweedFS) that the project's own code starts."""

import httpx
import pytest
from minio.error import S3Error
from pydantic import SecretStr

from kubevision.core import dataset
from kubevision.core.storage import DatasetLayout, DatasetStore, ObjectStore


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
    images = DatasetStore(store, DatasetLayout("datasets", "projects/trees/"))
    first, new = images.add_image(b"photo-1", "image/jpeg", tags=["hemlock"], metadata={"camera": "x"})
    again, new_again = images.add_image(b"photo-1", "image/jpeg", tags=["hemlock"])
    second, _ = images.add_image(b"photo-2", "image/png", tags=["cherry"])
    assert (new, new_again) == (True, False)
    assert again.id == first.id == dataset.image_id(dataset.content_hash(b"photo-1"))
    assert [r.id for r in images.manifest()] == [first.id, second.id]
    assert images.image(first) == b"photo-1"
    assert store.keys("datasets", "projects/trees/images/") == sorted(
        f"projects/trees/images/{r.sha256[:2]}/{r.sha256}" for r in (first, second)
    )
    raw = store.get("datasets", "projects/trees/manifest.jsonl").decode()
    assert len(raw.splitlines()) == 2 and '"tags":["hemlock"]' in raw


def test_a_snapshot_is_immutable(store):
    images = DatasetStore(store, DatasetLayout("datasets", "projects/birds/"))
    images.add_image(b"bird-1", "image/jpeg", tags=["robin"])
    key = images.snapshot("iteration-1-uid")
    images.add_image(b"bird-2", "image/jpeg", tags=["wren"])
    assert images.snapshot("iteration-1-uid") == key  # taken again: unchanged
    assert [r.tags for r in images.snapshot_records("iteration-1-uid")] == [["robin"]]
    assert len(images.manifest()) == 2
