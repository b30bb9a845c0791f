"""What each route lets in before a body is read: which key it needs, which rate limit it counts against, and how
many bytes its body may hold (with the error a larger one gets). Paths are matched as the routers declare them, after
observe.py has lower-cased them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubevision.core.images import MAX_IMAGE_BYTES
from kubevision.core.labelstore.store import MAX_BATCH
from kubevision.core.settings import GatewaySettings
from kubevision.gateway.catalog import KeyKind
from kubevision.gateway.errors import CustomVisionError, PayloadTooLarge, image_too_large
from kubevision.gateway.rate_limits import CallKind

UPLOAD_SLACK = 64 * 1024  # multipart headers and boundaries around one image
UPLOAD_LIMIT = MAX_BATCH * MAX_IMAGE_BYTES + 1024 * 1024  # a full batch of the largest images, and its multipart

KEYED = re.compile(r"^/customvision/[^/]+/(training|prediction)(/|$)")
PREDICTION_IMAGE = re.compile(r"^/customvision/[^/]+/prediction/[^/]+/(classify|detect)/iterations/[^/]+/image"
                              r"(/nostore)?$")
QUICK_TEST_IMAGE = re.compile(r"^/customvision/[^/]+/training/projects/[^/]+/quicktest/image$")
IMAGE_BATCH = re.compile(r"^/customvision/[^/]+/training/projects/[^/]+/images$")
IMAGE_FILES = re.compile(r"^/customvision/[^/]+/training/projects/[^/]+/images/files$")
TRAIN = re.compile(r"^/customvision/[^/]+/training/projects/[^/]+/train$")


@dataclass(frozen=True)
class BodyLimit:
    bytes: int
    error: CustomVisionError  # what a larger body gets


def key_kind(path: str) -> KeyKind | None:
    """The key a path needs: every route under /customvision/<version>/training or /prediction needs one."""
    found = KEYED.match(path)
    return found[1] if found else None  # type: ignore[return-value]


def call_kind(key: KeyKind, method: str, path: str) -> CallKind:
    """The rate limit a keyed call counts against, as Azure's S0 tier counts them: a prediction key's calls store
    their image unless the path ends in /nostore; a training key's are train_project or any other."""
    if key == "prediction":
        return CallKind.PREDICTION if path.endswith("/nostore") else CallKind.STORED_PREDICTION
    return CallKind.TRAIN if method == "POST" and TRAIN.match(path) else CallKind.TRAINING


def batch_too_large() -> CustomVisionError:
    return CustomVisionError(f"The batch is over {UPLOAD_LIMIT} bytes.", "BadRequestImageBatch")


def is_multipart(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "multipart/form-data"


def body_limit(path: str, content_type: str, settings: GatewaySettings) -> BodyLimit:
    """The largest body `path` accepts. Image routes keep the Custom Vision errors of their images; every other
    route takes JSON (or nothing), which a megabyte holds."""
    multipart = is_multipart(content_type)
    if PREDICTION_IMAGE.match(path) or QUICK_TEST_IMAGE.match(path):
        limit = settings.max_image_bytes
        return BodyLimit(limit + UPLOAD_SLACK if multipart else limit, image_too_large(limit))
    if IMAGE_BATCH.match(path):
        if multipart:
            return BodyLimit(UPLOAD_LIMIT, batch_too_large())
        # One raw image: one byte over the limit still reaches the store, which answers that image ErrorImageSize.
        return BodyLimit(MAX_IMAGE_BYTES + 1, image_too_large(MAX_IMAGE_BYTES + 1))
    if IMAGE_FILES.match(path):
        limit = settings.max_files_body_bytes
        return BodyLimit(limit, PayloadTooLarge(f"The body is over {limit} bytes; send bigger batches of images "
                                                "as multipart/form-data (create_images_from_data).", "BadRequest"))
    limit = settings.max_json_body_bytes
    return BodyLimit(limit, PayloadTooLarge(f"The body is over the limit of {limit} bytes.", "BadRequest"))
