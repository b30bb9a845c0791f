"""The kind script's upload of the sample photos, run as the script runs it (S3 from KUBEVISION_S3_*), against the
real local S3: the sample project's dataset then holds both tags' photos, and a second run adds nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from kubevision.core.api import CustomVisionProject
from kubevision.core.storage import DatasetLayout, DatasetStore, ObjectStore

REPO = Path(__file__).resolve().parents[2]


def upload(platform, project: Path) -> str:
    s3 = platform.s3_settings()
    environment = {**os.environ, "KUBEVISION_S3_ENDPOINT": s3.endpoint, "KUBEVISION_S3_ACCESS_KEY": s3.access_key,
                   "KUBEVISION_S3_SECRET_KEY": s3.secret_key.get_secret_value()}
    result = subprocess.run([sys.executable, str(REPO / "deploy" / "kind" / "upload_samples.py"), str(project),
                             str(REPO / "examples" / "samples")], env=environment, capture_output=True, text=True,
                            timeout=120, check=True)
    return result.stdout.strip()


def test_the_samples_land_in_the_project_dataset(platform, tmp_path):
    manifest = yaml.safe_load((REPO / "examples" / "project.yaml").read_text())
    manifest["spec"]["dataset"]["prefix"] = "default/kind-upload-test/"  # apart from the demo's copy of the same photos
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(manifest))
    assert upload(platform, path) == "added 20 images"
    project = CustomVisionProject.model_validate(manifest)
    records = DatasetStore(ObjectStore(platform.s3_settings()), DatasetLayout.of(project.spec.dataset)).manifest()
    assert sorted({tag for record in records for tag in record.tags}) == ["Hemlock", "Japanese_Cherry"]
    assert len(records) == 20
    assert upload(platform, path) == "added 0 images"
