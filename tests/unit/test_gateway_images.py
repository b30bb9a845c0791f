"""Prediction images: limits checked before decoding in full, EXIF orientation as the trainer applies it, and the
address policy for image URLs."""

import io
import ipaddress

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


@pytest.mark.parametrize(("address", "cluster", "local"), [
    ("93.184.216.34", True, True),       # a public address
    ("127.0.0.1", False, True),          # loopback: local mode only
    ("10.0.0.7", False, False),          # the cluster's own network
    ("192.168.1.10", False, False),
    ("169.254.169.254", False, False),   # cloud metadata endpoint
    ("::ffff:169.254.169.254", False, False),
    ("fd00::1", False, False),
    ("::1", False, True),
])
def test_image_urls_reach_public_addresses_only_unless_opened(address, cluster, local):
    ip = ipaddress.ip_address(address)
    assert images._allowed(ip, GatewaySettings()) is cluster
    assert images._allowed(ip, GatewaySettings(allow_loopback_urls=True)) is local
    assert images._allowed(ip, GatewaySettings(allow_private_urls=True)) is True
