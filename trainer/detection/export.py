"""Export of a detector, per kubevision.core.serving.detection: ONNX with decoding and suppression inside, checked
against the trained network. The model folder's upload is every task's (kubevision.trainer.export)."""

from __future__ import annotations

import numpy as np
import onnxruntime
import torch
from PIL import Image

from kubevision.core.serving.detection import BOXES, CLASSES, INPUT, OUTPUTS, SCORES, to_input
from kubevision.trainer import export
from kubevision.trainer.detection.network import Served

TOLERANCE = 1e-4  # largest difference in a score or a box coordinate allowed between trained and exported model


def onnx_model(served: Served) -> bytes:
    return export.onnx_model(served, served.size, OUTPUTS)


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
