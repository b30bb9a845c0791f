"""The served object detector: one image's pixels in, its boxes, scores and classes out, with box decoding and
non-maximum suppression inside the model. The gateway sends one image as a batch of one and reads row 0 of each
output; its config.pbtxt names the task (TASK_PARAMETER = DETECTION)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from kubevision.core.domains import Backbone
from kubevision.core.serving.model_config import (
    ARCHITECTURE_PARAMETER,
    DETECTION,
    INPUT,
    TASK_PARAMETER,
    Output,
    triton_config,
)

__all__ = ["BOXES", "CLASSES", "DETECTION", "INPUT", "MAX_DETECTIONS", "OUTPUTS", "OVERLAP_THRESHOLD", "SCORES",
           "TASK_PARAMETER", "Detections", "config", "to_input"]

# INPUT: float32 [batch, 3, size, size], pixels in [0, 1]: the whole image stretched to size x size
BOXES = "boxes"  # float32 [batch, MAX_DETECTIONS, 4]: left, top, width, height, each a fraction of the image
SCORES = "scores"  # float32 [batch, MAX_DETECTIONS], descending; rows past the last detection hold 0
CLASSES = "classes"  # int64 [batch, MAX_DETECTIONS]: the row of labels.txt
OUTPUTS = (BOXES, SCORES, CLASSES)
MAX_DETECTIONS = 100
# The overlap (IoU) threshold a detector's held-out precision, recall and average precision are counted at: Custom
# Vision's default. The trainer evaluates at it; the training API reports performance at it only.
OVERLAP_THRESHOLD = 0.5


def config(model_name: str, backbone: Backbone, size: int) -> str:
    """The config.pbtxt the detector is served with. Dynamic batching without a queue delay: requests that wait
    while the model is busy run as one batch, but none waits for company; a detector takes tens of milliseconds an
    image on a CPU, so waiting would only add latency."""
    return triton_config(model_name, size, [
        Output(BOXES, "TYPE_FP32", (MAX_DETECTIONS, 4)),
        Output(SCORES, "TYPE_FP32", (MAX_DETECTIONS,)),
        Output(CLASSES, "TYPE_INT64", (MAX_DETECTIONS,), labelled=True),
    ], {TASK_PARAMETER: DETECTION, ARCHITECTURE_PARAMETER: backbone.architecture})


def to_input(image: Image.Image, size: int) -> np.ndarray:
    """The whole image stretched to size x size (no crop: every box stays in view, and a box's fractions of the
    input are its fractions of the original image), CHW float32 in [0, 1]."""
    resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0


@dataclass(frozen=True)
class Detections:
    """A detector's answer for one image: boxes as fractions of it, highest score first."""

    boxes: np.ndarray  # [n, 4] left, top, width, height
    scores: np.ndarray  # [n]
    classes: np.ndarray  # [n] rows of the labels

    @classmethod
    def of(cls, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> Detections:
        """One image's rows of the model's outputs, the rows past its last detection (score 0) dropped."""
        kept = scores > 0
        return cls(boxes[kept], scores[kept], classes[kept])

    @classmethod
    def decode(cls, outputs: list[np.ndarray]) -> Detections:
        """One image's detections (row 0 of a batch of one), from the outputs in the order of OUTPUTS."""
        return cls.of(*(output[0] for output in outputs))
