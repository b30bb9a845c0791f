"""`kubevision upload` as a user runs it: a folder of tag folders goes through local mode's label store, the
project is applied if it was not, refused files are reported, and the manifest is exported before it returns."""

from __future__ import annotations

import yaml
from conftest import DATASET_BUCKET, FASHION_TAGS, fashion_mnist

from kubevision.core import dataset
from kubevision.core.labelstore.database import open_database
from kubevision.core.labelstore.store import LabelStore
from kubevision.core.labelstore.upload import local_database_url
from kubevision.core.storage import DatasetLayout, ObjectStore
from kubevision.operator.local_store import LocalStore

PROJECT = {
    "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "uploaded"},
    "spec": {"displayName": "Uploaded", "dataset": {"bucket": DATASET_BUCKET, "prefix": "upload/uploaded/"}},
}


def test_upload_goes_through_the_label_store(platform, kubevision_cli, tmp_path):
    photos = tmp_path / "photos"
    for index, (data, label) in enumerate(fashion_mnist(6, [0, 7])):
        folder = photos / FASHION_TAGS[label]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.png").write_bytes(data)
    (photos / "sneaker" / "notes.txt").write_text("not an image")
    project_file = tmp_path / "project.yaml"
    project_file.write_text(yaml.safe_dump(PROJECT))
    data_dir = str(platform.data_dir)

    first = kubevision_cli("upload", "-f", str(project_file), str(photos), "--data-dir", data_dir)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "customvisionproject.kubevision.io/uploaded created",
        f"added 12 images to s3://{DATASET_BUCKET}/upload/uploaded/ (0 were there already)"]
    assert "refused 1 images: ErrorImageFormat" in first.stderr
    again = kubevision_cli("upload", "-f", str(project_file), str(photos), "--data-dir", data_dir)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"added 0 images to s3://{DATASET_BUCKET}/upload/uploaded/ (12 were there already)"]

    body = LocalStore(platform.data_dir / "resources.db").get("CustomVisionProject", "default", "uploaded")
    manifest = dataset.loads(ObjectStore(platform.s3_settings()).get(
        DATASET_BUCKET, DatasetLayout(DATASET_BUCKET, "upload/uploaded/").manifest_key))
    assert len(manifest) == 12 and dataset.tag_counts(manifest) == {"t-shirt": 6, "sneaker": 6}
    database = open_database(local_database_url(platform.data_dir))
    store = LabelStore(database, ObjectStore(platform.s3_settings()))
    assert store.count(body["metadata"]["uid"], tagged=True) == 12
    assert {t.name: t.image_count for t in store.tags(body["metadata"]["uid"])} == {"t-shirt": 6, "sneaker": 6}
    database.dispose()
