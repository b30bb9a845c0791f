"""From a dataset snapshot to images with tagged boxes: decode, check, skip what cannot be used, refuse what cannot
train. The image rules are the classifier's (kubevision.trainer.data); Custom Vision's detection rule is at least
MIN_REGION_IMAGES_PER_TAG images a tag. Images without regions are not used, as in Custom Vision."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from kubevision.core.dataset import ImageRecord
from kubevision.core.reasons import Reason
from kubevision.core.training import MIN_REGION_IMAGES_PER_TAG, SkippedImage
from kubevision.trainer.data import DatasetError, read_all

log = logging.getLogger(__name__)


@dataclass
class RegionImages:
    ids: list[str]
    images: list[Image.Image]  # RGB, shorter side scaled down to the working size
    boxes: list[np.ndarray]  # per image (regions, 4): left, top, right, bottom as fractions of the image
    labels: list[np.ndarray]  # per image (regions,): the row of `tags`
    tags: list[str]  # output order of the model
    skipped: list[SkippedImage]
    unlabelled: int  # images with no region: not used

    @property
    def primary_labels(self) -> np.ndarray:
        """One label an image, for stratified splits: the rarest of its tags over the dataset, so that rare tags
        land on both sides. A label that only one image would have (a split needs two) joins the commonest."""
        images_per_tag = np.bincount(np.concatenate([np.unique(labels) for labels in self.labels]),
                                     minlength=len(self.tags))
        primary = np.array([min(np.unique(labels), key=lambda tag: images_per_tag[tag]) for labels in self.labels])
        counts = np.bincount(primary, minlength=len(self.tags))
        primary[counts[primary] < 2] = counts.argmax()
        return primary


def load(records: list[ImageRecord], fetch: Callable[[ImageRecord], bytes | None], working_size: int) -> RegionImages:
    """Decode and check every image with regions; DatasetError if what remains cannot train."""
    if not records:
        raise DatasetError(Reason.NO_IMAGES, "the dataset snapshot lists no images")
    labelled = [r for r in records if r.regions]
    skipped: list[SkippedImage] = []

    outcomes = read_all(labelled, fetch, working_size)
    usable = []
    for record, outcome in zip(labelled, outcomes, strict=True):
        if isinstance(outcome, tuple):
            skipped.append(SkippedImage(id=record.id, reason=outcome[0], detail=outcome[1]))
            log.warning("skipped image %s: %s (%s)", record.id, outcome[0], outcome[1])
        else:
            usable.append((record, outcome))
    log.info("loaded %d images with regions, skipped %d, without regions %d", len(usable), len(skipped),
             len(records) - len(labelled))
    tags = _check_counts(labelled, [record for record, _ in usable], skipped)
    index = {tag: i for i, tag in enumerate(tags)}
    boxes, labels = [], []
    for record, _ in usable:
        corners = [(r.left, r.top, min(1.0, r.left + r.width), min(1.0, r.top + r.height)) for r in record.regions]
        boxes.append(np.array(corners, dtype=np.float32))
        labels.append(np.array([index[r.tag] for r in record.regions], dtype=np.int64))
    return RegionImages(ids=[r.id for r, _ in usable], images=[i for _, i in usable], boxes=boxes, labels=labels,
                        tags=tags, skipped=skipped, unlabelled=len(records) - len(labelled))


def _check_counts(labelled: list[ImageRecord], usable: list[ImageRecord], skipped: list[SkippedImage]) -> list[str]:
    wanted = sorted({region.tag for record in labelled for region in record.regions})
    counts = Counter(tag for record in usable for tag in {region.tag for region in record.regions})
    short = [tag for tag in wanted if counts[tag] < MIN_REGION_IMAGES_PER_TAG]
    if not wanted:
        raise DatasetError(Reason.TOO_FEW_TAGS, "no image has a tagged region", skipped)
    if short:
        detail = ", ".join(f'tag "{tag}" has {counts[tag]} usable images' for tag in short)
        raise DatasetError(Reason.TOO_FEW_IMAGES, f"{detail}; {MIN_REGION_IMAGES_PER_TAG} needed", skipped)
    return wanted
