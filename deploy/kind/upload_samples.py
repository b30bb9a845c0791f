"""Adds the sample photos (examples/samples, the tags of `make run`'s demo) to the dataset of a project manifest, in
the S3 that KUBEVISION_S3_* names: what `kubevision upload` does for local mode, for a cluster's MinIO reached through
a port-forward (deploy/kind/kind.sh).  Usage: upload_samples.py PROJECT_MANIFEST SAMPLES_FOLDER"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from kubevision.core import validation
from kubevision.core.api import CustomVisionProject
from kubevision.core.settings import S3Settings
from kubevision.core.storage import DatasetLayout, DatasetStore, ObjectStore
from kubevision.local.demo import SAMPLE_TAGS


def upload(manifest: Path, samples: Path, settings: S3Settings) -> int:
    (document,) = [d for d in yaml.safe_load_all(manifest.read_text()) if d and d["kind"] == "CustomVisionProject"]
    project = CustomVisionProject.model_validate(validation.admit(document))
    store = ObjectStore(settings)
    store.ensure_bucket(project.spec.dataset.bucket)
    images = DatasetStore(store, DatasetLayout.of(project.spec.dataset))
    added = 0
    for tag in SAMPLE_TAGS:  # a cluster has no label store yet: straight into the manifest the operator reads
        for path in sorted((samples / tag).glob("*.jpg")):
            added += images.add_image(path.read_bytes(), "image/jpeg", tags=[tag])[1]
    return added


if __name__ == "__main__":
    added = upload(Path(sys.argv[1]), Path(sys.argv[2]), S3Settings())
    print(f"added {added} images")
