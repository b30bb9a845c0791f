"""`kubevision upload` as a user runs it: a folder of tag folders goes through local mode's label store, the
project is applied if it was not, every file is checked before anything is stored (a refused file is listed with its
reason and changes nothing), a re-upload adds nothing, and the manifest is exported before it returns."""

from __future__ import annotations

import io

import numpy as np
import yaml
from conftest import DATASET_BUCKET, FASHION_TAGS, fashion_mnist
from PIL import Image

from kubevision.core import dataset
from kubevision.core.images import MAX_IMAGE_BYTES
from kubevision.core.labelstore.database import open_database
from kubevision.core.labelstore.store import LabelStore
from kubevision.core.labelstore.upload import local_database_url
from kubevision.core.storage import DatasetLayout, ObjectStore
from kubevision.local.store import LocalStore

PROJECT = {
    "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "uploaded"},
    "spec": {"displayName": "Uploaded", "dataset": {"bucket": DATASET_BUCKET, "prefix": "default/uploaded/"}},
}
LAYOUT = DatasetLayout(DATASET_BUCKET, "default/uploaded/")


def noise_png(side: int) -> bytes:
    """A real image that no compression shrinks: random pixels, stored uncompressed."""
    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def test_upload_stores_the_valid_images_and_refuses_the_rest(platform, kubevision_cli, tmp_path):
    photos = tmp_path / "photos"
    valid = []
    for index, (data, label) in enumerate(fashion_mnist(6, [0, 7])):
        folder = photos / FASHION_TAGS[label]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.png").write_bytes(data)
        valid.append(data)
    (photos / "sneaker" / "bad.jpg").write_text("not an image")
    (photos / "rose").mkdir()
    huge = noise_png(1600)
    assert len(huge) > MAX_IMAGE_BYTES
    (photos / "rose" / "huge.png").write_bytes(huge)  # the only file of its tag: no tag "rose" may appear
    (photos / "sneaker" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # a hidden file is no image, and not counted
    project_file = tmp_path / "project.yaml"
    project_file.write_text(yaml.safe_dump(PROJECT))
    data_dir = str(platform.data_dir)
    objects = ObjectStore(platform.s3_settings())

    first = kubevision_cli("upload", "-f", str(project_file), str(photos), "--data-dir", data_dir)
    assert first.returncode == 1, first.stderr
    location = f"s3://{DATASET_BUCKET}/default/uploaded/"
    assert first.stdout.splitlines() == [
        "customvisionproject.kubevision.io/uploaded created",
        f"12 added, 0 already present: project default/uploaded ({location})"]
    errors = first.stderr.splitlines()
    assert f"refused {photos}/rose/huge.png: {len(huge)} bytes; the limit is {MAX_IMAGE_BYTES}" in errors
    assert f"refused {photos}/sneaker/bad.jpg: not an image in a supported format" in errors
    assert errors[-1] == ("error: 2 of 14 files refused, not stored in project default/uploaded; fix or remove them "
                          "and run the same upload again (images stored already are skipped)")
    # not a terminal: plain progress lines, no bar redrawn in place
    assert errors[0].startswith("uploading: 14/14 files (") and "\r" not in first.stderr and "\x1b" not in first.stderr

    body = LocalStore(platform.data_dir / "resources.db").get("CustomVisionProject", "default", "uploaded")
    stored_keys = objects.keys(DATASET_BUCKET, f"{LAYOUT.prefix}images/")
    assert sorted(stored_keys) == sorted({LAYOUT.image_key(dataset.content_hash(d)) for d in valid})
    manifest = dataset.loads(objects.get(DATASET_BUCKET, LAYOUT.manifest_key))
    assert len(manifest) == 12 and dataset.tag_counts(manifest) == {"t-shirt": 6, "sneaker": 6}
    database = open_database(local_database_url(platform.data_dir))
    store = LabelStore(database, objects)
    assert store.count(body["metadata"]["uid"]) == 12
    assert {t.name: t.image_count for t in store.tags(body["metadata"]["uid"])} == {"t-shirt": 6, "sneaker": 6}
    labels_version = store.project(body["metadata"]["uid"]).labels_version
    manifest_etag = objects.etag(DATASET_BUCKET, LAYOUT.manifest_key)

    again = kubevision_cli("upload", "-f", str(project_file), str(photos), "--data-dir", data_dir)
    assert again.returncode == 1 and again.stderr.count("refused ") == 2, again.stderr
    assert again.stdout.splitlines() == [f"0 added, 12 already present: project default/uploaded ({location})"]
    (photos / "sneaker" / "bad.jpg").unlink()
    (photos / "rose" / "huge.png").unlink()
    fixed = kubevision_cli("upload", "-f", str(project_file), str(photos), "--data-dir", data_dir)
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.splitlines() == [f"0 added, 12 already present: project default/uploaded ({location})"]

    assert store.project(body["metadata"]["uid"]).labels_version == labels_version  # re-uploads changed nothing
    assert objects.etag(DATASET_BUCKET, LAYOUT.manifest_key) == manifest_etag
    assert sorted(objects.keys(DATASET_BUCKET, f"{LAYOUT.prefix}images/")) == sorted(stored_keys)
    database.dispose()

