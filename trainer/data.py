"""From a dataset snapshot to labelled images: decode, check, skip what cannot be used, refuse what cannot train.

Custom Vision's rules: jpg, png, bmp, gif or webp, at most 6 MB, at least 5 images a tag, at least 2 tags to tell
apart. An unusable image is skipped and listed, never fatal by itself; too few usable images is a DatasetError.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from minio.error import S3Error
from PIL import Image

from kubevision.core.api import ClassificationType
from kubevision.core.dataset import ImageRecord
from kubevision.core.images import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, ImageProblem
from kubevision.core.images import decode as decode_image
from kubevision.core.reasons import Reason, SkipReason
from kubevision.core.storage import DatasetStore, retrying
from kubevision.core.training import (
    MIN_IMAGES_PER_TAG,
    NEGATIVE_TAG,
    SkippedImage,
)

log = logging.getLogger(__name__)
# decode() skips an image over MAX_IMAGE_PIXELS itself, before Pillow would decode it.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class DatasetError(Exception):
    """The dataset cannot train a model; `reason` becomes the iteration's condition reason."""

    def __init__(self, reason: Reason, message: str, skipped: list[SkippedImage] | None = None):
        super().__init__(message)
        self.reason = reason
        self.skipped = skipped or []


@dataclass
class LabelledImages:
    ids: list[str]
    images: list[Image.Image]  # RGB, shorter side scaled down to `working_size`
    tags: list[str]  # output order of the model
    targets: np.ndarray  # (images, tags) of 0/1
    skipped: list[SkippedImage]
    untagged: int  # images with no tag: not used, as in Custom Vision

    @property
    def primary_labels(self) -> np.ndarray:
        """One label an image, for stratified splits: its first tag, or -1 for an all-negative image."""
        return np.where(self.targets.any(axis=1), self.targets.argmax(axis=1), -1)


SKIP_REASONS = {"bytes": SkipReason.TOO_LARGE, "pixels": SkipReason.TOO_LARGE,
                "format": SkipReason.UNSUPPORTED_FORMAT, "unreadable": SkipReason.UNREADABLE}


def fetcher(images: DatasetStore):
    """Reads an image's bytes; None when it is not there."""

    def fetch(record):
        try:
            return retrying(lambda: images.image(record), f"image {record.id}")
        except S3Error:  # retrying lets only "not there" through; S3 failing throughout ends the run
            return None

    return fetch


def decode(data: bytes, working_size: int) -> Image.Image | tuple[SkipReason, str]:
    """An RGB image no smaller than needed, or why it cannot be used."""
    try:
        image, _ = decode_image(data, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS)
    except ImageProblem as problem:
        return SKIP_REASONS[problem.kind], str(problem)
    scale = working_size / min(image.size)
    if scale < 1:  # keep memory bounded: nothing later needs more pixels than this
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    return image


def read_all(records: list[ImageRecord], fetch: Callable[[ImageRecord], bytes | None],
             working_size: int) -> list[Image.Image | tuple[SkipReason, str]]:
    """Each record's decoded image, or why it cannot be used: read from S3 and decoded four at a time."""

    def read(record: ImageRecord):
        if record.size > MAX_IMAGE_BYTES:  # the manifest knows: no need to download it
            return SkipReason.TOO_LARGE, f"{record.size} bytes; the limit is {MAX_IMAGE_BYTES}"
        data = fetch(record)
        return (SkipReason.MISSING, "not found in S3") if data is None else decode(data, working_size)

    with ThreadPoolExecutor(max_workers=4) as pool:  # S3 reads and JPEG decoding release the GIL
        try:
            return list(pool.map(read, records))
        except BaseException:  # S3 failing throughout: end now, not after every image's retries
            pool.shutdown(cancel_futures=True)
            raise


def load(
    records: list[ImageRecord],
    fetch: Callable[[ImageRecord], bytes | None],
    kind: ClassificationType,
    working_size: int,
) -> LabelledImages:
    """Decode and check every tagged image of a snapshot; DatasetError if what remains cannot train."""
    if not records:
        raise DatasetError(Reason.NO_IMAGES, "the dataset snapshot lists no images")
    tagged = [r for r in records if r.tags]
    untagged = len(records) - len(tagged)
    skipped: list[SkippedImage] = []
    usable: list[tuple[ImageRecord, Image.Image]] = []

    outcomes = read_all(tagged, fetch, working_size)
    for record, outcome in zip(tagged, outcomes, strict=True):
        problem = _label_problem(record, kind)
        if isinstance(outcome, tuple):
            skipped.append(SkippedImage(id=record.id, reason=outcome[0], detail=outcome[1]))
        elif problem:
            skipped.append(SkippedImage(id=record.id, reason=SkipReason.CONFLICTING_TAGS, detail=problem))
        else:
            usable.append((record, outcome))
    log.info("loaded %d images, skipped %d, untagged %d", len(usable), len(skipped), untagged)
    for item in skipped:
        log.warning("skipped image %s: %s (%s)", item.id, item.reason, item.detail)

    tags = _check_counts(tagged, usable, kind, skipped)
    targets = np.zeros((len(usable), len(tags)), dtype=np.float32)
    index = {tag: i for i, tag in enumerate(tags)}
    for row, (record, _) in enumerate(usable):
        for tag in record.tags:
            if tag in index:  # the Negative tag of a Multilabel project has no column: all zeros
                targets[row, index[tag]] = 1
    return LabelledImages(
        ids=[r.id for r, _ in usable], images=[i for _, i in usable], tags=tags, targets=targets,
        skipped=skipped, untagged=untagged,
    )


def _label_problem(record: ImageRecord, kind: ClassificationType) -> str:
    if kind == ClassificationType.MULTICLASS and len(set(record.tags)) > 1:
        return f"a Multiclass image takes one tag, this one has {sorted(set(record.tags))}"
    if NEGATIVE_TAG in record.tags and len(set(record.tags)) > 1:
        return f"the {NEGATIVE_TAG} tag excludes every other tag"
    return ""


def _check_counts(
    tagged: list[ImageRecord], usable: list[tuple[ImageRecord, Image.Image]], kind: ClassificationType,
    skipped: list[SkippedImage],
) -> list[str]:
    """The model's tags in a stable order, once every tag has enough usable images."""
    wanted = sorted({tag for record in tagged for tag in record.tags})
    if kind == ClassificationType.MULTILABEL and NEGATIVE_TAG in wanted:
        wanted.remove(NEGATIVE_TAG)  # negatives are the all-zero target, not an output
    counts = Counter(tag for record, _ in usable for tag in set(record.tags))
    short = [tag for tag in wanted if counts[tag] < MIN_IMAGES_PER_TAG]
    if short:
        detail = ", ".join(f'tag "{tag}" has {counts[tag]} usable images' for tag in short)
        raise DatasetError(Reason.TOO_FEW_IMAGES, f"{detail}; {MIN_IMAGES_PER_TAG} needed", skipped)
    # Two classes to tell apart at least; in a Multilabel project the Negative tag is one.
    classes = len(wanted) + (1 if kind == ClassificationType.MULTILABEL and counts[NEGATIVE_TAG] else 0)
    if classes < 2:
        raise DatasetError(Reason.TOO_FEW_TAGS, f"found tags {wanted}; at least 2 are needed", skipped)
    return wanted
