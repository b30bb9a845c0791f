"""Export of a detector: ONNX with decoding and suppression inside, a complete config.pbtxt that names the task,
per kubevision.core.detection_model. The model folder's layout and upload are the classifier's
(kubevision.trainer.export)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnxruntime
import torch
from PIL import Image

from kubevision.core.detection_model import (
    BOXES,
    CLASSES,
    DETECTION,
    INPUT,
    MAX_DETECTIONS,
    SCORES,
    TASK_PARAMETER,
    to_input,
)
from kubevision.core.domains import Backbone
from kubevision.trainer.detection.network import Served
from kubevision.trainer.export import MAX_BATCH_SIZE, OPSET

OUTPUTS = (BOXES, SCORES, CLASSES)
TOLERANCE = 1e-4  # largest difference in a score or a box coordinate allowed between trained and exported model


def onnx_model(served: Served) -> bytes:
    served.eval()
    example = torch.rand(2, 3, served.size, served.size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated, and needs no extra package
        warnings.simplefilter("ignore")
        torch.onnx.export(
            served, (example,), buffer, input_names=[INPUT], output_names=list(OUTPUTS),
            dynamic_axes={name: {0: "batch"} for name in (INPUT, *OUTPUTS)}, opset_version=OPSET, dynamo=False,
        )
    return buffer.getvalue()


def reference_predictions(served: Served, onnx: bytes, images: list[Image.Image]) -> dict[str, np.ndarray]:
    """The trained network's outputs for `images`, after checking that the ONNX model gives the same boxes."""
    inputs = torch.from_numpy(np.stack([to_input(image, served.size) for image in images]))
    with torch.inference_mode():
        expected = dict(zip(OUTPUTS, (t.numpy() for t in served.eval()(inputs)), strict=True))
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    exported = dict(zip(OUTPUTS, session.run(list(OUTPUTS), {INPUT: inputs.numpy()}), strict=True))
    for image in range(len(images)):
        missing = unmatched(expected, exported, image) + unmatched(exported, expected, image)
        if missing:
            raise RuntimeError(f"the ONNX export differs from the trained model: {missing} detections of image "
                               f"{image} have no counterpart within {TOLERANCE:.0e}")
    return expected


def unmatched(these: dict[str, np.ndarray], those: dict[str, np.ndarray], image: int) -> int:
    """How many of `these` detections of one image have no counterpart in `those` (same class, score and box within
    TOLERANCE). Compared as sets, not row by row: detections whose scores tie within rounding come in either order."""
    found = those[SCORES][image] > 0
    classes, scores, boxes = those[CLASSES][image][found], those[SCORES][image][found], those[BOXES][image][found]
    missing = 0
    for row in np.flatnonzero(these[SCORES][image] > 0):
        alike = ((classes == these[CLASSES][image][row]) & (np.abs(scores - these[SCORES][image][row]) <= TOLERANCE)
                 & (np.abs(boxes - these[BOXES][image][row]).max(axis=1, initial=0) <= TOLERANCE))
        missing += not alike.any()
    return missing


def triton_config(model_name: str, backbone: Backbone, size: int) -> str:
    """A complete config: Triton needs no auto-completion, and no instance_group (Triton picks per device).

    Dynamic batching without a queue delay: requests that wait while the model is busy run as one batch, but none
    waits for company; a detector takes tens of milliseconds an image on a CPU, so waiting would only add latency."""
    return f"""name: "{model_name}"
platform: "onnxruntime_onnx"
max_batch_size: {MAX_BATCH_SIZE}
input [
  {{ name: "{INPUT}" data_type: TYPE_FP32 dims: [ 3, {size}, {size} ] }}
]
output [
  {{ name: "{BOXES}" data_type: TYPE_FP32 dims: [ {MAX_DETECTIONS}, 4 ] }},
  {{ name: "{SCORES}" data_type: TYPE_FP32 dims: [ {MAX_DETECTIONS} ] }},
  {{ name: "{CLASSES}" data_type: TYPE_INT64 dims: [ {MAX_DETECTIONS} ] label_filename: "labels.txt" }}
]
dynamic_batching {{ }}
parameters {{ key: "{TASK_PARAMETER}" value: {{ string_value: "{DETECTION}" }} }}
parameters {{ key: "kubevision.architecture" value: {{ string_value: "{backbone.architecture}" }} }}
"""
