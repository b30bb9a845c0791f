"""Local mode end to end, as a user runs it: `kubevision apply` a project and an iteration; the local controller
(started by `kubevision local up`) trains with the real trainer, S3 and MLflow, and publishes into the real Triton."""

from __future__ import annotations

import io
import time

import numpy as np
import tritonclient.http as triton_http
import yaml
from conftest import DATASET_BUCKET, FASHION_TAGS, fashion_mnist
from PIL import Image

from kubevision.core.domains import BACKBONES
from kubevision.core.preprocessing import to_input
from kubevision.core.storage import DatasetLayout, DatasetStore, ModelRepositoryLayout, ObjectStore
from kubevision.operator.local_store import LocalStore

PROJECT = {
    "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "clothes"},
    "spec": {"displayName": "Clothes", "domain": "GeneralCompact",
             "dataset": {"bucket": DATASET_BUCKET, "prefix": "local-mode/clothes/"}},
}
TRAINED_PER_TAG = 8
ITERATION = {
    "apiVersion": "kubevision.io/v1alpha1", "kind": "Iteration", "metadata": {"name": "clothes-1"},
    "spec": {"projectRef": {"name": "clothes"}, "trainingType": "Quick", "publishName": "clothes-v1"},
}


def wait_for(store: LocalStore, kind: str, name: str, phase: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = store.get(kind, "default", name)
        if (body.get("status") or {}).get("phase") == phase:
            return body
        time.sleep(1)
    raise AssertionError(f"{kind} {name} did not reach {phase}: {body.get('status')}")


def test_apply_trains_and_publishes(platform, kubevision_cli, tmp_path):
    images = DatasetStore(ObjectStore(platform.s3_settings()), DatasetLayout(DATASET_BUCKET, "local-mode/clothes/"))
    images.store.ensure_bucket(DATASET_BUCKET)
    for data, label in fashion_mnist(TRAINED_PER_TAG, FASHION_TAGS):
        images.add_image(data, "image/png", tags=[FASHION_TAGS[label]])
    manifests = tmp_path / "clothes.yaml"
    manifests.write_text(yaml.safe_dump_all([PROJECT, ITERATION]))
    data_dir = str(platform.data_dir)

    applied = kubevision_cli("apply", "-f", str(manifests), "--data-dir", data_dir)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == ["customvisionproject.kubevision.io/clothes created",
                                           "iteration.kubevision.io/clothes-1 created"]
    store = LocalStore(platform.data_dir / "resources.db")
    wait_for(store, "CustomVisionProject", "clothes", "Ready", timeout=60)
    published = wait_for(store, "Iteration", "clothes-1", "Published")
    status = published["status"]
    assert status["publishedName"] == "clothes-v1" and status["endpoint"].startswith("http://127.0.0.1:")
    assert status["metrics"]["averagePrecision"] > 0.5 and status["mlflowRunId"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Trained": "True", "TrainingSpecCurrent": "True", "Published": "True", "Ready": "True"}

    listing = kubevision_cli("get", "iterations", "--data-dir", data_dir)
    assert listing.returncode == 0
    header, row = listing.stdout.splitlines()[0].split(), listing.stdout.splitlines()[1].split()
    assert header[:5] == ["NAMESPACE", "NAME", "PROJECT", "TYPE", "PHASE"]
    assert row[:5] == ["default", "clothes-1", "clothes", "Quick", "Published"]

    # The served model tells apart clothes it never saw: photos 9 to 12 of each class (it trained on 1 to 8).
    triton = triton_http.InferenceServerClient(platform.triton_settings().http_url)
    assert triton.is_model_ready("clothes-1")
    labels = images.store.get(platform.s3_settings().models_bucket, ModelRepositoryLayout(
        platform.s3_settings().models_bucket, "default", "clothes").model_key("clothes-1", "labels.txt"))
    tags = labels.decode().split("\n")
    unseen = fashion_mnist(TRAINED_PER_TAG + 4, FASHION_TAGS)
    unseen = [(data, label) for i, (data, label) in enumerate(unseen) if i % (TRAINED_PER_TAG + 4) >= TRAINED_PER_TAG]
    batch = np.stack([to_input(Image.open(io.BytesIO(data)), BACKBONES["GeneralCompact"]) for data, _ in unseen])
    request = triton_http.InferInput("images", list(batch.shape), "FP32")
    request.set_data_from_numpy(batch)
    probabilities = triton.infer("clothes-1", [request]).as_numpy("probabilities")
    predicted = [tags[i] for i in probabilities.argmax(axis=1)]
    right = sum(tag == FASHION_TAGS[label] for tag, (_, label) in zip(predicted, unseen, strict=True))
    assert right >= 0.75 * len(unseen), list(zip(predicted, [FASHION_TAGS[label] for _, label in unseen],
                                                 strict=True))

    # Removing the publish name unpublishes; applying the same spec again changes nothing.
    unpublished = {**ITERATION, "spec": {k: v for k, v in ITERATION["spec"].items() if k != "publishName"}}
    manifests.write_text(yaml.safe_dump(unpublished))
    assert kubevision_cli("apply", "-f", str(manifests), "--data-dir", data_dir).stdout.strip() == \
        "iteration.kubevision.io/clothes-1 configured"
    wait_for(store, "Iteration", "clothes-1", "Trained", timeout=60)
    deadline = time.monotonic() + 30
    while triton.is_model_ready("clothes-1") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not triton.is_model_ready("clothes-1")
    assert kubevision_cli("apply", "-f", str(manifests), "--data-dir", data_dir).stdout.strip() == \
        "iteration.kubevision.io/clothes-1 unchanged"


def test_apply_refuses_an_invalid_manifest_naming_the_field(platform, kubevision_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**ITERATION, "metadata": {"name": "clothes-9"},
                                   "spec": {"projectRef": {"name": "clothes"}, "resources": {"gpus": -1}}}))
    result = kubevision_cli("apply", "-f", str(bad), "--data-dir", str(platform.data_dir))
    assert result.returncode == 1
    assert "spec.resources.gpus: -1 is less than the minimum of 0" in result.stderr
    assert LocalStore(platform.data_dir / "resources.db").get("Iteration", "default", "clothes-9") is None
