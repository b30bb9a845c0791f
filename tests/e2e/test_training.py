"""The trainer end to end: real images in the local S3, runs in the local MLflow, models served by the local Triton,
and the served model giving back the trainer's own predictions."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import tritonclient.http as triton_http
from conftest import FASHION_MULTILABEL, FASHION_TAGS, customvision_samples, fashion_mnist
from mlflow.tracking import MlflowClient
from PIL import Image

from kubevision.core.domains import BACKBONES
from kubevision.core.labels import model_name
from kubevision.core.serving.classification import to_input
from kubevision.core.storage import ModelRepositoryLayout
from kubevision.trainer.run import train


def run_training(platform, request):
    return train(request, platform.s3_settings(), platform.mlflow_settings())


def assert_served_like_trained(platform, setup, request, result):
    """Triton, reading the model from S3, answers what the trainer computed for the same images."""
    client = MlflowClient(platform.mlflow_settings().tracking_uri)
    reference = json.loads(open(client.download_artifacts(result.mlflow_run_id, "model/reference_predictions.json"))
                           .read())
    records = {r.id: r for r in setup.images.manifest()}
    backbone = BACKBONES[setup.project.spec.domain]
    batch = np.stack([to_input(Image.open(io.BytesIO(setup.images.image(records[i]))), backbone)
                      for i in reference["ids"]])
    platform.restart_triton()  # a new project's repository is seen when Triton starts
    triton = triton_http.InferenceServerClient(platform.triton_settings().http_url)
    model = model_name(request.iteration.metadata.uid)
    triton.load_model(model)
    request = triton_http.InferInput("images", list(batch.shape), "FP32")
    request.set_data_from_numpy(batch)
    served = triton.infer(model, [request]).as_numpy("probabilities")
    assert np.abs(served - np.array(reference["probabilities"])).max() < 1e-4
    config = triton.get_model_config(model)
    assert config["platform"] == "onnxruntime_onnx" and config["max_batch_size"] == 32


def assert_tracked(platform, result, training_type):
    client = MlflowClient(platform.mlflow_settings().tracking_uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["training_type"] == training_type
    assert run.data.metrics["mean_average_precision"] == pytest.approx(result.metrics.average_precision)
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id, "model")}
    assert {"model/model.onnx", "model/config.pbtxt", "model/labels.txt"} <= artifacts
    if training_type == "Advanced":  # which model it serves, chosen by cross-validation, is recorded
        assert result.served in {"Quick", "FineTuned"}
        assert run.data.params["advanced_served"] == result.served
        score = "mean_average_precision" if run.data.params["classification_type"] == "Multilabel" else "top1_accuracy"
        assert 0 < run.data.metrics[f"advanced.quick_{score}"] <= 1
    else:
        assert result.served is None
    version = client.get_model_version(result.registered_model, result.registered_version)
    assert version.run_id == result.mlflow_run_id
    assert version.tags["kubevision.io/iteration"].startswith("tests/")


def test_quick_multiclass_on_fashion_mnist(platform, setup_project):
    setup = setup_project("fashion-quick")
    for data, label in fashion_mnist(10, FASHION_TAGS):
        setup.add(data, [FASHION_TAGS[label]])
    request = setup.request("fashion-quick-1", "Quick")
    result = run_training(platform, request)
    assert result.outcome == "Succeeded", result.message
    assert result.tags == sorted(FASHION_TAGS.values())
    assert result.images_used == 40 and result.skipped == []
    # held-out figures from 5-fold cross-validation: far above the 0.25 of chance on four tags
    assert result.metrics.average_precision > 0.7
    assert {t.tag for t in result.metrics.per_tag} == set(FASHION_TAGS.values())
    assert_tracked(platform, result, "Quick")
    repository = ModelRepositoryLayout(platform.s3_settings().models_bucket, "tests", "fashion-quick")
    model = model_name(request.iteration.metadata.uid)  # Triton's name for it: the Iteration's uid, not its name
    assert result.model_uri == f"s3://{repository.bucket}/{repository.model_key(model, '')}"
    assert_served_like_trained(platform, setup, request, result)


def test_advanced_multilabel_on_fashion_mnist(platform, setup_project):
    setup = setup_project("fashion-multilabel", "Multilabel")
    for data, label in fashion_mnist(8, FASHION_MULTILABEL):
        setup.add(data, FASHION_MULTILABEL[label])
    request = setup.request("fashion-multilabel-1", "Advanced", budgetMinutes=5, hyperparameters={"maxEpochs": 3})
    result = run_training(platform, request)
    assert result.outcome == "Succeeded", result.message
    # the Negative tag is no output of a Multilabel model: it is the absence of every tag
    assert result.tags == ["ankle-high", "footwear", "long-sleeves", "upper-body"]
    assert result.metrics.average_precision > 0.5
    assert_tracked(platform, result, "Advanced")
    assert_served_like_trained(platform, setup, request, result)


@pytest.mark.parametrize(
    ("training_type", "classification_type"), [("Quick", "Multilabel"), ("Advanced", "Multiclass")]
)
def test_customvision_quickstart_photos(platform, setup_project, training_type, classification_type):
    photos = customvision_samples()
    name = f"trees-{training_type.lower()}-{classification_type.lower()}"
    setup = setup_project(name, classification_type, domain="General")
    for data, tag in photos:
        setup.add(data, [tag], "image/jpeg")
    spec = {"budgetMinutes": 5, "hyperparameters": {"maxEpochs": 3}} if training_type == "Advanced" else {}
    request = setup.request(f"{name}-1", training_type, **spec)
    result = run_training(platform, request)
    assert result.outcome == "Succeeded", result.message
    assert result.tags == ["Hemlock", "Japanese_Cherry"]
    assert result.metrics.recall > 0.5
    assert_served_like_trained(platform, setup, request, result)
