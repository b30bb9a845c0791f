"""Checks an uploaded image before anything is stored: size, format and dimensions, read from its header."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from kubevision.core.training import MAX_IMAGE_BYTES, SUPPORTED_FORMATS

MAX_PIXELS = 40_000_000  # what the prediction API decodes too
MIN_SIDE = 1


@dataclass(frozen=True)
class Inspected:
    content_type: str
    width: int
    height: int


def inspect(data: bytes) -> Inspected | str:
    """The image's type and size, or the Custom Vision status (ImageCreateStatus) that refuses it."""
    if not data:
        return "ErrorSource"
    if len(data) > MAX_IMAGE_BYTES:
        return "ErrorImageSize"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in SUPPORTED_FORMATS:
                return "ErrorImageFormat"
            width, height = image.size
            if width * height > MAX_PIXELS or min(width, height) < MIN_SIDE:
                return "ErrorImageDimensions"
            image.verify()  # structure and checksums, without decoding the pixels
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "ErrorImageDimensions"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return "ErrorImageFormat"
    return Inspected(Image.MIME[image.format], width, height)
