"""The preprocessing every served model expects, shared by the trainer and the gateway so that they agree."""

from __future__ import annotations

import numpy as np
from PIL import Image

from kubevision.core.domains import Backbone


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
