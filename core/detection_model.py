"""The contract between an exported object detector, Triton and the gateway: tensor names, shapes and the
preprocessing. The trainer writes models that honour it; the gateway reads them through it.

A detector's config.pbtxt carries the parameter TASK_PARAMETER = "detection" (a classifier's carries none, or
"classification"). The gateway sends one image as a batch of one and reads row 0 of each output.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

TASK_PARAMETER = "kubevision.task"
DETECTION = "detection"

INPUT = "images"  # float32 [batch, 3, size, size], pixels in [0, 1]: the whole image stretched to size x size
BOXES = "boxes"  # float32 [batch, MAX_DETECTIONS, 4]: left, top, width, height, each a fraction of the image
SCORES = "scores"  # float32 [batch, MAX_DETECTIONS], descending; rows past the last detection hold 0
CLASSES = "classes"  # int64 [batch, MAX_DETECTIONS]: the row of labels.txt
MAX_DETECTIONS = 100
# The overlap (IoU) threshold a detector's held-out precision, recall and average precision are counted at: Custom
# Vision's default. The trainer evaluates at it; the training API reports performance at it only.
OVERLAP_THRESHOLD = 0.5


def to_input(image: Image.Image, size: int) -> np.ndarray:
    """The whole image stretched to size x size (no crop: every box stays in view, and a box's fractions of the
    input are its fractions of the original image), CHW float32 in [0, 1]."""
    resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0
