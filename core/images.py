"""The one image policy: what bytes must be to be stored, trained on or predicted on, and how they are read.

Every reader of images applies it: the label store (`inspect`, before anything is stored), `kubevision upload`,
the trainer and the gateway's predictions (`decode`, so that all of them see the same pixels). Each maps an
`ImageProblem`'s kind to its own words: an upload status, a skip reason, a Custom Vision error code.

The limits differ on purpose by path: a training image may be 6 MB (Custom Vision's rule); a prediction image
4 MB by default, configurable in the gateway's settings, whose defaults are the constants below.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")
MAX_IMAGE_BYTES = 6 * 1024 * 1024  # a training image: uploaded, then read by the trainer
MAX_PIXELS = 40_000_000  # an uploaded training image, and a prediction image unless the gateway is told otherwise
MAX_IMAGE_PIXELS = 89_478_485  # the trainer: where Pillow starts to warn of decompression bombs; about 270 MB as RGB
MAX_PREDICTION_BYTES = 4 * 1024 * 1024  # Custom Vision's limit on a prediction image; the gateway's default
MIN_SIDE = 1


class ImageProblem(ValueError):
    """Why bytes are no usable image: too many bytes or pixels, a format not supported, or data that cannot be
    decoded. The trainer skips such an image; the gateway answers a Custom Vision error; the store refuses it."""

    def __init__(self, kind: Literal["bytes", "pixels", "format", "unreadable"], message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Inspected:
    content_type: str
    width: int
    height: int


@contextmanager
def _reading() -> Iterator[None]:
    """Pillow's errors as ImageProblems."""
    try:
        yield
    except ImageProblem:
        raise
    except Image.DecompressionBombError as error:  # dimensions far beyond any photo
        raise ImageProblem("pixels", str(error)[:200]) from error
    except UnidentifiedImageError as error:
        raise ImageProblem("format", "not an image in a supported format") from error
    except (OSError, ValueError, SyntaxError) as error:  # truncated or corrupt data
        raise ImageProblem("unreadable", str(error)[:200]) from error


def _too_large(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise ImageProblem("bytes", f"{len(data)} bytes; the limit is {max_bytes}")


def inspect(data: bytes, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_PIXELS) -> Inspected:
    """The image's type and size, from its header and a structural check, without decoding a pixel; raises
    ImageProblem."""
    _too_large(data, max_bytes)
    with _reading(), warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombWarning as warning:
            raise ImageProblem("pixels", str(warning)[:200]) from warning
        if image.format not in SUPPORTED_FORMATS:
            raise ImageProblem("format", f"{image.format} is not one of {', '.join(SUPPORTED_FORMATS)}")
        width, height = image.size
        if width * height > max_pixels or min(width, height) < MIN_SIDE:
            raise ImageProblem("pixels", f"{width}x{height} pixels; the limit is {max_pixels}")
        image.verify()  # structure and checksums, without decoding the pixels
    return Inspected(Image.MIME[image.format], width, height)


def decode(data: bytes, max_bytes: int, max_pixels: int) -> tuple[Image.Image, str]:
    """An upright RGB image (EXIF orientation applied, the first frame of a GIF) and its format. The byte count and
    the dimensions are checked before any pixel is decoded, so a decompression bomb costs nothing."""
    _too_large(data, max_bytes)
    with _reading():
        image = Image.open(io.BytesIO(data))  # reads the header only
        if image.width * image.height > max_pixels:
            raise ImageProblem("pixels", f"{image.width}x{image.height} pixels; the limit is {max_pixels}")
        if image.format not in SUPPORTED_FORMATS:
            raise ImageProblem("format", f"{image.format} is not one of {', '.join(SUPPORTED_FORMATS)}")
        return ImageOps.exif_transpose(image).convert("RGB"), image.format
