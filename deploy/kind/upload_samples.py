"""Adds the sample photos (examples/samples, the tags of `make run`'s demo) to the dataset of a project manifest, in
the S3 that KUBEVISION_S3_* names: what `kubevision upload` does for local mode, for a cluster's MinIO reached through
a port-forward (deploy/kind/kind.sh).  Usage: upload_samples.py PROJECT_MANIFEST SAMPLES_FOLDER"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml

from kubevision.core import validation
from kubevision.core.api import CustomVisionProject
from kubevision.core.labelstore.upload import upload_folders
from kubevision.core.settings import S3Settings
from kubevision.core.storage import ObjectStore
from kubevision.local.demo import SAMPLE_TAGS


def upload(manifest: Path, samples: Path, settings: S3Settings) -> int:
    (document,) = [d for d in yaml.safe_load_all(manifest.read_text()) if d and d["kind"] == "CustomVisionProject"]
    project = CustomVisionProject.model_validate(validation.admit(document))
    store = ObjectStore(settings)
    store.ensure_bucket(project.spec.dataset.bucket)
    body = {"metadata": {"uid": project.metadata.uid or f"kind-{project.metadata.name}",
                         "namespace": project.metadata.namespace, "name": project.metadata.name},
            "spec": {"dataset": project.spec.dataset.model_dump()}}
    # The label store is the one writer of a manifest. The cluster's own is not reachable from here: a throwaway
    # one adopts the manifest already there (a second run adds nothing), adds the photos and exports it.
    with tempfile.TemporaryDirectory() as data_dir:
        report = upload_folders(Path(data_dir), store, body, [samples / tag for tag in SAMPLE_TAGS])
    for refused in report.refused:
        print(f"refused {refused.file}: {refused.reason}", file=sys.stderr)
    return report.added


if __name__ == "__main__":
    added = upload(Path(sys.argv[1]), Path(sys.argv[2]), S3Settings())
    print(f"added {added} images")
