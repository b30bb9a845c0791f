"""Local mode end to end, as a user runs it: `kubevision apply` a project and an iteration; the local controller
(started by `kubevision local up`) trains with the real trainer, S3 and MLflow, and publishes into the real Triton."""

from __future__ import annotations

import io
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import tritonclient.http as triton_http
import yaml
from conftest import DATASET_BUCKET, FASHION_TAGS, fashion_mnist
from PIL import Image
from seeding import Seed, seed

from kubevision.core.domains import BACKBONES
from kubevision.core.labels import model_name
from kubevision.core.serving.classification import to_input
from kubevision.core.storage import DatasetLayout, ModelRepositoryLayout, ObjectStore
from kubevision.local.store import LocalStore

PROJECT = {
    "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "clothes"},
    "spec": {"displayName": "Clothes", "domain": "GeneralCompact",
             "dataset": {"bucket": DATASET_BUCKET, "prefix": "default/clothes/"}},
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
    objects = ObjectStore(platform.s3_settings())
    seed(objects, DatasetLayout(DATASET_BUCKET, "default/clothes/"),
         [Seed(data, [FASHION_TAGS[label]]) for data, label in fashion_mnist(TRAINED_PER_TAG, FASHION_TAGS)])
    manifests = tmp_path / "clothes.yaml"
    manifests.write_text(yaml.safe_dump_all([PROJECT, ITERATION]))
    data_dir = str(platform.data_dir)

    applied = kubevision_cli("apply", "-f", str(manifests), "--data-dir", data_dir)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == ["customvisionproject.kubevision.io/clothes created",
                                           "iteration.kubevision.io/clothes-1 created"]
    store = LocalStore(platform.data_dir / "resources.db")
    wait_for(store, "CustomVisionProject", "clothes", "Ready", timeout=60)
    wait_for(store, "Iteration", "clothes-1", "Training", timeout=60)
    followed = kubevision_cli("logs", "clothes-1", "-f", "--data-dir", data_dir)  # returns when the trainer ends
    published = wait_for(store, "Iteration", "clothes-1", "Published")
    status = published["status"]
    assert status["publishedName"] == "clothes-v1" and status["endpoint"].startswith("http://127.0.0.1:")
    assert status["metrics"]["averagePrecision"] > 0.5 and status["mlflowRunId"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Trained": "True", "TrainingSpecCurrent": "True", "Published": "True", "Ready": "True"}

    listing = kubevision_cli("get", "iterations", "--data-dir", data_dir)
    assert listing.returncode == 0
    header, row = listing.stdout.splitlines()[0].split(), listing.stdout.splitlines()[1].split()
    assert header[:5] == ["NAME", "PROJECT", "TYPE", "PHASE", "REASON"]
    assert row[:5] == ["clothes-1", "clothes", "Quick", "Published", "Published"]

    # Where to read more: per-tag metrics, the MLflow run and the training log, which `logs` prints.
    described = kubevision_cli("describe", "iteration", "clothes-1", "--data-dir", data_dir)
    assert described.returncode == 0, described.stderr
    lines = described.stdout.splitlines()
    per_tag = lines.index("    Per Tag:") + 3  # past the header and its rule
    rows = [line.split() for line in lines[per_tag:per_tag + len(FASHION_TAGS)]]
    assert {row[0] for row in rows} == set(FASHION_TAGS.values()) and {len(row) for row in rows} == {4}
    tracking_uri = platform.mlflow_settings().tracking_uri
    assert f"MLflow Run:   {tracking_uri}/#/experiments/" in described.stdout
    assert f"/runs/{status['mlflowRunId']}" in described.stdout
    log_path = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Training Log:"))
    logs = kubevision_cli("logs", "clothes-1", "--data-dir", data_dir)
    assert logs.returncode == 0 and logs.stdout == open(log_path).read() and logs.stdout.strip()
    assert followed.returncode == 0 and followed.stdout == logs.stdout

    # The served model tells apart clothes it never saw: photos 9 to 12 of each class (it trained on 1 to 8).
    triton = triton_http.InferenceServerClient(platform.triton_settings().http_url)
    model = model_name(published["metadata"]["uid"])  # Triton's name for it, unique across namespaces
    assert triton.is_model_ready(model)
    labels = objects.get(platform.s3_settings().models_bucket, ModelRepositoryLayout(
        platform.s3_settings().models_bucket, "default", "clothes").model_key(model, "labels.txt"))
    tags = labels.decode().split("\n")
    unseen = fashion_mnist(TRAINED_PER_TAG + 4, FASHION_TAGS)
    unseen = [(data, label) for i, (data, label) in enumerate(unseen) if i % (TRAINED_PER_TAG + 4) >= TRAINED_PER_TAG]
    batch = np.stack([to_input(Image.open(io.BytesIO(data)), BACKBONES["GeneralCompact"]) for data, _ in unseen])
    request = triton_http.InferInput("images", list(batch.shape), "FP32")
    request.set_data_from_numpy(batch)
    probabilities = triton.infer(model, [request]).as_numpy("probabilities")
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
    while triton.is_model_ready(model) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not triton.is_model_ready(model)
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


def test_a_project_with_too_few_images_says_why(platform, kubevision_cli, tmp_path):
    seed(ObjectStore(platform.s3_settings()), DatasetLayout(DATASET_BUCKET, "default/few/"),
         [Seed(data, [FASHION_TAGS[label]]) for data, label in fashion_mnist(3, [0, 7])])
    project = {**PROJECT, "metadata": {"name": "few"},
               "spec": {**PROJECT["spec"], "dataset": {"bucket": DATASET_BUCKET, "prefix": "default/few/"}}}
    (tmp_path / "few.yaml").write_text(yaml.safe_dump(project))
    data_dir = str(platform.data_dir)
    command = [str(Path(sys.executable).parent / "kubevision"), "get", "projects", "--watch", "--data-dir", data_dir]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as watch:
        try:
            assert kubevision_cli("apply", "-f", str(tmp_path / "few.yaml"), "--data-dir", data_dir).returncode == 0
            lines: queue.Queue[str] = queue.Queue()
            threading.Thread(target=lambda: [lines.put(line) for line in watch.stdout], daemon=True).start()
            seen = []  # other tests' projects share this platform: only the lines of "few" count
            while not any(line.split()[:1] == ["few"] and "NotReady" in line for line in seen):
                seen.append(lines.get(timeout=60))  # the watch prints the change, no header
        finally:
            watch.terminate()
    assert "DatasetNotReady" in seen[-1].split()

    described = kubevision_cli("describe", "project", "few", "--data-dir", data_dir)
    assert described.returncode == 0, described.stderr
    assert 'TooFewImages  ' in described.stdout and 'tag "sneaker" has 3 images, 5 needed' in described.stdout
    event = next(line.split() for line in described.stdout.splitlines() if line.split()[:1] == ["Warning"])
    assert event[:2] == ["Warning", "TooFewImages"]
    assert kubevision_cli("delete", "project", "few", "--data-dir", data_dir).returncode == 0
