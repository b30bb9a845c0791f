"""The served classifier: one image's pixels in, one probability a tag out. Normalisation and the final softmax
(Multiclass) or sigmoid (Multilabel) are inside the model, so nothing but `to_input` stands in front of it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from kubevision.core.domains import Backbone
from kubevision.core.serving.model_config import (
    ARCHITECTURE_PARAMETER,
    CLASSIFICATION,
    INPUT,
    RESIZE_PARAMETER,
    Output,
    triton_config,
)

__all__ = ["CLASSIFICATION", "INPUT", "OUTPUT", "OUTPUTS", "config", "probabilities", "to_input"]

OUTPUT = "probabilities"  # float32 [batch, tags], in the order of labels.txt
OUTPUTS = (OUTPUT,)
QUEUE_DELAY_MICROSECONDS = 2000


def config(model_name: str, backbone: Backbone, tags: int) -> str:
    """The config.pbtxt the classifier is served with. Dynamic batching waits 2 ms for company: a classifier
    takes a few milliseconds an image, so a batch pays for the wait."""
    return triton_config(model_name, backbone.input_size, [Output(OUTPUT, "TYPE_FP32", (tags,), labelled=True)],
                         {ARCHITECTURE_PARAMETER: backbone.architecture, RESIZE_PARAMETER: backbone.resize_size},
                         QUEUE_DELAY_MICROSECONDS)


def to_input(image: Image.Image, backbone: Backbone) -> np.ndarray:
    """Shorter side to `resize_size` (bicubic), centre crop to `input_size`, CHW float32 in [0, 1]."""
    image = image.convert("RGB")
    scale = backbone.resize_size / min(image.size)
    size = (max(backbone.input_size, round(image.width * scale)), max(backbone.input_size, round(image.height * scale)))
    resized = image.resize(size, Image.Resampling.BICUBIC)
    left = (resized.width - backbone.input_size) // 2
    top = (resized.height - backbone.input_size) // 2
    cropped = resized.crop((left, top, left + backbone.input_size, top + backbone.input_size))
    return np.asarray(cropped, dtype=np.float32).transpose(2, 0, 1) / 255.0


def probabilities(outputs: list[np.ndarray]) -> np.ndarray:
    """One image's probabilities (row 0 of a batch of one), from the outputs in the order of OUTPUTS."""
    return outputs[0][0]
