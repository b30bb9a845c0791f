"""The preprocessing every served model expects, shared by the trainer and the gateway so that they agree."""

from __future__ import annotations

import io
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from kubevision.core.training import SUPPORTED_FORMATS


class ImageProblem(ValueError):
    """Why bytes are no usable image: too many bytes or pixels, a format not supported, or data that cannot be
    decoded. The trainer skips such an image; the gateway answers a Custom Vision error."""

    def __init__(self, kind: Literal["bytes", "pixels", "format", "unreadable"], message: str):
        super().__init__(message)
        self.kind = kind


def decode(data: bytes, max_bytes: int, max_pixels: int) -> tuple[Image.Image, str]:
    """An upright RGB image (EXIF orientation applied, the first frame of a GIF) and its format. The byte count and
    the dimensions are checked before any pixel is decoded, so a decompression bomb costs nothing."""
    if len(data) > max_bytes:
        raise ImageProblem("bytes", f"{len(data)} bytes; the limit is {max_bytes}")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
        if image.width * image.height > max_pixels:
            raise ImageProblem("pixels", f"{image.width}x{image.height} pixels; the limit is {max_pixels}")
        if image.format not in SUPPORTED_FORMATS:
            raise ImageProblem("format", f"{image.format} is not one of {', '.join(SUPPORTED_FORMATS)}")
        return ImageOps.exif_transpose(image).convert("RGB"), image.format
    except Image.DecompressionBombError as error:  # dimensions far beyond any photo
        raise ImageProblem("pixels", str(error)[:200]) from error
    except UnidentifiedImageError as error:
        raise ImageProblem("format", "not an image in a supported format") from error
    except (OSError, ValueError, SyntaxError) as error:  # truncated or corrupt data
        if isinstance(error, ImageProblem):
            raise
        raise ImageProblem("unreadable", str(error)[:200]) from error
