"""The rules of a region (a tagged box of object detection). Its figures are fractions of its image's width and
height, so the rules need no pixel size: a box is inside the image when its edges lie between 0 and 1. The rule is
the manifest's own (core/dataset.fit_box), so that a box the store keeps is always one the manifest can carry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol, TypeVar

from kubevision.core.dataset import fit_box
from kubevision.core.labelstore.errors import StoreError

MAX_REGIONS_PER_IMAGE = 200


class Box(Protocol):
    left: float
    top: float
    width: float
    height: float


B = TypeVar("B", bound=Box)


def fit_boxes(boxes: Sequence[tuple[str, B]]) -> list[B]:
    """Each box (a dataclass) fitted into its image, in order; the whole request is refused when one is no region.
    `boxes` pairs each with where it was sent."""
    fitted = []
    for where, region in boxes:
        try:
            left, top, width, height = fit_box(region.left, region.top, region.width, region.height)
        except ValueError as problem:
            raise StoreError(f"The region of {where} {problem}.", "BadRequestImageRegions") from None
        fitted.append(replace(region, left=left, top=top, width=width, height=height))
    return fitted
