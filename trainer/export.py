"""Export to the project's Triton model repository: ONNX with fixed names and a dynamic batch, a complete
config.pbtxt, and the labels. Layout and keys come from kubevision.core.storage."""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime
import torch
from PIL import Image

from kubevision.core.api import CustomVisionProject, Iteration
from kubevision.core.domains import Backbone
from kubevision.core.heldout import HeldOut
from kubevision.core.settings import S3Settings
from kubevision.core.storage import ModelRepositoryLayout, ObjectStore, held_out_key, retrying
from kubevision.core.training import iteration_id
from kubevision.trainer.network import Classifier, batch_inputs

if TYPE_CHECKING:  # MLflow is imported only where a run is recorded
    from kubevision.trainer.tracking import Tracker

INPUT = "images"  # float32 [batch, 3, size, size], pixels in [0, 1]
OUTPUT = "probabilities"  # float32 [batch, tags], in the order of labels.txt
MAX_BATCH_SIZE = 32
OPSET = 17
TOLERANCE = 1e-4  # largest difference in probability allowed between the trained and the exported model


def onnx_model(classifier: Classifier, backbone: Backbone) -> bytes:
    classifier.eval()
    example = torch.rand(2, 3, backbone.input_size, backbone.input_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated, and needs no extra package
        warnings.simplefilter("ignore")
        torch.onnx.export(
            classifier, (example,), buffer, input_names=[INPUT], output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=OPSET, dynamo=False,
        )
    return buffer.getvalue()


def reference_predictions(
    classifier: Classifier, onnx: bytes, backbone: Backbone, images: list[Image.Image]
) -> np.ndarray:
    """The trained network's probabilities for `images`, after checking that the ONNX model gives the same."""
    inputs = batch_inputs(images, backbone)
    with torch.inference_mode():
        expected = classifier.eval()(inputs).numpy()
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    exported = session.run([OUTPUT], {INPUT: inputs.numpy()})[0]
    difference = float(np.abs(exported - expected).max())
    if difference > TOLERANCE:
        raise RuntimeError(f"the ONNX export differs from the trained model by {difference:.2e}")
    return expected


def triton_config(model_name: str, backbone: Backbone, tags: int) -> str:
    """A complete config: Triton needs no auto-completion, and no instance_group (Triton picks per device)."""
    size = backbone.input_size
    return f"""name: "{model_name}"
platform: "onnxruntime_onnx"
max_batch_size: {MAX_BATCH_SIZE}
input [
  {{ name: "{INPUT}" data_type: TYPE_FP32 dims: [ 3, {size}, {size} ] }}
]
output [
  {{ name: "{OUTPUT}" data_type: TYPE_FP32 dims: [ {tags} ] label_filename: "labels.txt" }}
]
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
parameters {{ key: "kubevision.architecture" value: {{ string_value: "{backbone.architecture}" }} }}
parameters {{ key: "kubevision.resize_size" value: {{ string_value: "{backbone.resize_size}" }} }}
"""


def upload(
    store: ObjectStore, repository: ModelRepositoryLayout, model_name: str, onnx: bytes, config: str, tags: list[str]
) -> str:
    """Write the model's folder and return its S3 URI. config.pbtxt goes last: a reader that sees it sees a
    complete folder."""
    store.ensure_bucket(repository.bucket)
    store.put(repository.bucket, repository.model_key(model_name, "1/model.onnx"), onnx)
    store.put(repository.bucket, repository.model_key(model_name, "labels.txt"), "\n".join(tags).encode() + b"\n")
    store.put(repository.bucket, repository.model_key(model_name, "config.pbtxt"), config.encode())
    return f"s3://{repository.bucket}/{repository.model_key(model_name, '')}"


def store_model(store: ObjectStore, s3: S3Settings, project: CustomVisionProject, model_name: str,
                model: tuple[bytes, str, list[str]], tracker: Tracker) -> tuple[str, tuple[str, str]]:
    """The model folder (ONNX, config, labels) in the project's Triton repository and in the MLflow run, where it
    is registered: (its S3 URI, (registered model, version))."""
    onnx, config, tags = model
    repository = ModelRepositoryLayout(s3.models_bucket, project.metadata.namespace, project.metadata.name)
    model_uri = upload(store, repository, model_name, onnx, config, tags)
    with tempfile.TemporaryDirectory() as folder:
        files = {"model.onnx": onnx, "config.pbtxt": config.encode(), "labels.txt": "\n".join(tags).encode()}
        for name, content in files.items():
            (Path(folder) / name).write_bytes(content)
            tracker.file(str(Path(folder) / name), "model")
    return model_uri, tracker.register("model")


def store_held_out(store: ObjectStore, s3: S3Settings, iteration: Iteration, held_out: HeldOut) -> None:
    """The held-out predictions beside the iteration's result, where the training API reads them."""
    key = held_out_key(iteration.metadata.namespace, iteration_id(iteration))
    retrying(lambda: store.put(s3.models_bucket, key, held_out.model_dump_json().encode(), "application/json"),
             "the held-out predictions")
