"""Object detection through the trainer end to end: Microsoft's fork and scissors photos with their regions in the
local S3, a run in the local MLflow, the exported detector served by the local Triton, giving back the trainer's
own boxes in the shapes of kubevision.core.serving.detection, as the gateway's own run of the model (for quick tests of
an unpublished iteration) does."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
import tritonclient.http as triton_http
from conftest import DATASET_BUCKET, EXAMPLES, TrainingSetup
from mlflow.tracking import MlflowClient
from PIL import Image

from kubevision.core import api
from kubevision.core.dataset import Region
from kubevision.core.labels import model_name
from kubevision.core.reasons import Reason
from kubevision.core.serving.detection import (
    BOXES,
    CLASSES,
    DETECTION,
    INPUT,
    MAX_DETECTIONS,
    SCORES,
    TASK_PARAMETER,
    to_input,
)
from kubevision.core.settings import GatewaySettings
from kubevision.gateway.backends.trained import TrainedIterations
from kubevision.trainer.detection import export
from kubevision.trainer.run import train

DETECTION_SAMPLES = EXAMPLES / "detection"


def detection_samples() -> list[tuple[bytes, list[Region]]]:
    entries = json.loads((DETECTION_SAMPLES / "regions.json").read_text())
    return [((DETECTION_SAMPLES / e["image"]).read_bytes(), [Region(**r) for r in e["regions"]]) for e in entries]


class DetectionSetup(TrainingSetup):
    def __init__(self, store, name: str):
        super().__init__(store, name, None)
        self.project = api.CustomVisionProject(
            metadata={"name": name, "namespace": "tests", "uid": f"{name}-uid"},
            spec={"displayName": name, "type": "ObjectDetection", "domain": "GeneralCompact",
                  "dataset": {"bucket": DATASET_BUCKET, "prefix": f"tests/{name}/"}},
        )


def per_tag(forks: int) -> list[tuple[bytes, list[Region]]]:
    """`forks` fork photos and 15 scissors photos."""
    samples = detection_samples()
    return ([s for s in samples if s[1][0].tag == "fork"][:forks]
            + [s for s in samples if s[1][0].tag == "scissors"][:15])


@pytest.mark.timeout(1200)  # Advanced trains Quick's part first: more than the suite's 600 s a test on 2 busy cores
def test_detector_trains_and_triton_serves_its_boxes(platform, object_store):
    setup = DetectionSetup(object_store, "forks")
    for data, regions in per_tag(15):  # Custom Vision's minimum: the least a detector trains on
        setup.add(data, [], "image/jpeg", regions=regions)
    request = setup.request("forks-1", "Advanced", hyperparameters={"maxEpochs": 1})
    result = train(request, platform.s3_settings(), platform.mlflow_settings())
    assert result.outcome == "Succeeded", result.message
    assert result.tags == ["fork", "scissors"] and result.images_used == 30
    assert [t.tag for t in result.metrics.per_tag] == ["fork", "scissors"]
    assert result.metrics.probability_threshold == 0.5

    client = MlflowClient(platform.mlflow_settings().tracking_uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED" and run.data.params["task"] == "detection"
    assert run.data.metrics["mean_average_precision"] == pytest.approx(result.metrics.average_precision)
    assert "held_out_map_50" in run.data.metrics  # Advanced scores every epoch for early stopping
    artifacts = {a.path for folder in ("model", "plots", "evaluation")
                 for a in client.list_artifacts(result.mlflow_run_id, folder)}
    assert {"model/model.onnx", "model/config.pbtxt", "model/labels.txt", "plots/precision_recall.png",
            "evaluation/held_out_0.png", "evaluation/metrics.json"} <= artifacts

    reference = json.loads(open(client.download_artifacts(result.mlflow_run_id, "model/reference_predictions.json"))
                           .read())
    records = {r.id: r for r in setup.images.manifest()}
    batch = np.stack([to_input(Image.open(io.BytesIO(setup.images.image(records[i]))), 320) for i in reference["ids"]])
    platform.restart_triton()  # a new project's repository is seen when Triton starts
    triton = triton_http.InferenceServerClient(platform.triton_settings().http_url)
    model = model_name(request.iteration.metadata.uid)
    triton.load_model(model)
    config = triton.get_model_config(model)
    assert config["parameters"][TASK_PARAMETER]["string_value"] == DETECTION
    assert config["input"][0]["dims"] == [3, 320, 320]
    inputs = triton_http.InferInput(INPUT, list(batch.shape), "FP32")
    inputs.set_data_from_numpy(batch)
    served = triton.infer(model, [inputs])
    boxes, scores, classes = (served.as_numpy(name) for name in (BOXES, SCORES, CLASSES))
    assert boxes.shape == (len(batch), MAX_DETECTIONS, 4) and classes.dtype == np.int64
    np.testing.assert_allclose(scores, reference[SCORES], atol=1e-4)
    # the same detections, matched as sets: tied scores may come in either order
    answered = {BOXES: boxes, SCORES: scores, CLASSES: classes}
    expected = {name: np.array(reference[name]) for name in (BOXES, SCORES, CLASSES)}
    for image in range(len(batch)):
        assert export.unmatched(answered, expected, image) == export.unmatched(expected, answered, image) == 0
    assert (np.diff(scores, axis=1) <= 0).all() and (scores > 0).any()
    assert set(np.unique(classes[scores > 0])) <= {0, 1}

    # The gateway runs the same model itself to quick-test an unpublished iteration: the same boxes as Triton.
    trained = TrainedIterations(object_store, GatewaySettings())
    iteration = api.Iteration.model_validate({"metadata": {"name": "cutlery-1"}, "spec": {"projectRef": {
        "name": "cutlery"}}, "status": {"modelUri": result.model_uri}})
    local = asyncio.run(trained.model(iteration))
    assert (local.task, local.backbone.input_size, local.labels) == (DETECTION, 320, ("fork", "scissors"))
    for row in range(len(batch)):
        found = local.detect(batch[row:row + 1])
        kept = scores[row] > 0
        assert len(found.scores) == kept.sum()
        np.testing.assert_allclose(found.scores, scores[row][kept], atol=1e-4)
        np.testing.assert_allclose(found.boxes, boxes[row][kept], atol=1e-4)


def test_too_few_images_of_a_tag_is_a_dataset_error(platform, object_store):
    setup = DetectionSetup(object_store, "few-forks")
    for data, regions in per_tag(14):
        setup.add(data, [], "image/jpeg", regions=regions)
    result = train(setup.request("few-forks-1", "Quick"), platform.s3_settings(), platform.mlflow_settings())
    assert result.outcome == "InvalidDataset" and result.reason == Reason.TOO_FEW_IMAGES
    assert 'tag "fork" has 14 usable images; 15 needed' in result.message
