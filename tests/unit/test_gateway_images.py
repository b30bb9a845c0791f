"""Prediction images: limits checked before decoding in full, EXIF orientation as the trainer applies it (the
policy for image URLs is tests/unit/test_gateway_url_policy.py's)."""

import io

import pytest
from PIL import Image

from kubevision.core.settings import GatewaySettings
from kubevision.gateway import images
from kubevision.gateway.errors import CustomVisionError

SETTINGS = GatewaySettings(max_image_bytes=1_000_000, max_image_pixels=4_000_000)


def encoded(image: Image.Image, format_: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format_, **options)
    return buffer.getvalue()


def code_of(data: bytes) -> str:
    with pytest.raises(CustomVisionError) as error:
        images.decode(data, SETTINGS)
    return error.value.code


def test_a_photo_decodes_to_rgb_with_its_mime_type():
    image, mime = images.decode(encoded(Image.new("L", (40, 30), 128), "JPEG"), SETTINGS)
    assert (image.mode, image.size, mime) == ("RGB", (40, 30), "image/jpeg")


def test_exif_orientation_is_applied_as_the_trainer_does():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the camera held upright
    image, _ = images.decode(encoded(Image.new("RGB", (40, 30)), "JPEG", exif=exif), SETTINGS)
    assert image.size == (30, 40)


def test_bad_images_get_custom_vision_codes():
    assert code_of(b"") == "BadRequestImageStream"
    assert code_of(b"this is text, not an image") == "BadRequestImageFormat"
    assert code_of(encoded(Image.new("RGB", (40, 30)), "JPEG")[:200]) == "BadRequestImageFormat"  # truncated
    assert code_of(encoded(Image.new("RGB", (8, 8)), "TIFF")) == "BadRequestImageFormat"  # not a Custom Vision format
    assert code_of(b"\xff" * 1_000_001) == "BadRequestImageSizeBytes"


def test_absurd_dimensions_are_refused_before_decoding():
    bomb = encoded(Image.new("1", (4000, 2000)))  # 8 megapixels in a few kilobytes
    assert len(bomb) < 10_000
    assert code_of(bomb) == "BadRequestImageDimensions"
