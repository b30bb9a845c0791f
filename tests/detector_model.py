"""A detector built to the contract, for the gateway's tests of the detect routes: torchvision's RetinaNet over a
two-layer backbone, with seeded random weights, exported to ONNX with the tensors, shapes and preprocessing of
kubevision.core.serving.detection and a config.pbtxt that marks it a detector. It is a fixture, not a model: it detects
nothing real.

Why a fixture and not the trainer's detector: these tests check the serving path (preprocessing, the three outputs,
boxes clipped and sorted, tag ids, stored predictions and their probability filters), which needs many boxes of
every tag with spread probabilities on any picture; they compare the gateway's answer with ONNX Runtime running the
same file, so untrained weights do. A trained detector finds few or no boxes on the tests' synthetic pictures, and
training one takes a minute or more of the suite's time on 2 cores. The trainer's real detector is served end to end
by tests/e2e/test_training_detection.py (Triton against the trainer's own outputs) and
tests/e2e/test_detection_quickstart.py (the SDK: quick tests in the gateway, then Triton, on the same photos).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnxruntime
import torch
from PIL import Image
from torch import nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator

from kubevision.core.serving import detection as contract
from kubevision.core.storage import ModelRepositoryLayout, ObjectStore

SIZE = 64  # the model's square input
OPSET = 17


class TinyBackbone(nn.Sequential):
    out_channels = 8

    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1))


class ContractOutputs(nn.Module):
    """One image in, the contract's three outputs out: boxes as fractions (left, top, width, height), scores
    highest first, classes as rows of labels.txt, padded with zeros to MAX_DETECTIONS rows."""

    def __init__(self, tags: int):
        super().__init__()
        torch.manual_seed(0)
        anchors = AnchorGenerator(sizes=((16, 32),), aspect_ratios=((0.5, 1.0, 2.0),))
        # No resizing and no normalisation inside: the input is already SIZE x SIZE in [0, 1].
        self.detector = RetinaNet(TinyBackbone(), num_classes=tags, anchor_generator=anchors, min_size=SIZE,
                                  max_size=SIZE, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0],
                                  score_thresh=0.3, detections_per_img=contract.MAX_DETECTIONS)
        # RetinaNet starts every score near 0.01; spread them so that scores differ and some pass the threshold.
        nn.init.normal_(self.detector.head.classification_head.cls_logits.bias, std=1.0)

    def forward(self, images: torch.Tensor):
        found = self.detector(list(images))[0]
        corners = found["boxes"] / SIZE
        boxes = torch.cat([corners[:, :2], corners[:, 2:] - corners[:, :2]], dim=1)
        rows = contract.MAX_DETECTIONS  # a static pad: concatenate a full block of zeros, keep the first rows
        boxes = torch.cat([boxes, boxes.new_zeros(rows, 4)])[:rows]
        scores = torch.cat([found["scores"], found["scores"].new_zeros(rows)])[:rows]
        classes = torch.cat([found["labels"], found["labels"].new_zeros(rows)])[:rows]
        return boxes[None], scores[None], classes[None]


def onnx_detector(tags: int) -> bytes:
    model = ContractOutputs(tags).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():  # tracing warns of the data-dependent detections
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 3, SIZE, SIZE),), buffer, input_names=[contract.INPUT],
                          output_names=[contract.BOXES, contract.SCORES, contract.CLASSES], opset_version=OPSET,
                          dynamo=False)
    return buffer.getvalue()


def triton_config(name: str) -> str:
    return f"""name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 1
input [ {{ name: "{contract.INPUT}" data_type: TYPE_FP32 dims: [ 3, {SIZE}, {SIZE} ] }} ]
output [
  {{ name: "{contract.BOXES}" data_type: TYPE_FP32 dims: [ {contract.MAX_DETECTIONS}, 4 ] }},
  {{ name: "{contract.SCORES}" data_type: TYPE_FP32 dims: [ {contract.MAX_DETECTIONS} ] }},
  {{ name: "{contract.CLASSES}" data_type: TYPE_INT64 dims: [ {contract.MAX_DETECTIONS} ] }}
]
parameters {{ key: "{contract.TASK_PARAMETER}" value: {{ string_value: "{contract.DETECTION}" }} }}
"""


def upload(store: ObjectStore, repository: ModelRepositoryLayout, name: str, onnx: bytes, tags: list[str]) -> str:
    """The model's folder as the trainer writes one (config.pbtxt last); returns its URI."""
    store.ensure_bucket(repository.bucket)
    store.put(repository.bucket, repository.model_key(name, "1/model.onnx"), onnx)
    store.put(repository.bucket, repository.model_key(name, "labels.txt"), "\n".join(tags).encode() + b"\n")
    store.put(repository.bucket, repository.model_key(name, "config.pbtxt"), triton_config(name).encode())
    return f"s3://{repository.bucket}/{repository.model_key(name, '')}"


def expected_detections(onnx: bytes, image: Image.Image) -> list[tuple[int, float, list[float]]]:
    """(class row, score, box) of every detection, as onnxruntime computes them from the contract's input."""
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    boxes, scores, classes = session.run([contract.BOXES, contract.SCORES, contract.CLASSES],
                                         {contract.INPUT: contract.to_input(image, SIZE)[np.newaxis]})
    return [(int(c), float(s), b.tolist()) for b, s, c in zip(boxes[0], scores[0], classes[0], strict=True) if s > 0]
