"""The rules of a region (a tagged box of object detection). Its figures are fractions of its image's width and
height, so the rules need no pixel size: a box is inside the image when its edges lie between 0 and 1."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from kubevision.core.labelstore.errors import StoreError

MAX_REGIONS_PER_IMAGE = 200
EDGE_TOLERANCE = 1e-6  # boxes drawn to the very edge, written as floats, may pass 1 by a rounding error


def box_problem(left: float, top: float, width: float, height: float) -> str | None:
    """Why a box cannot be a region of its image, or None."""
    if not all(math.isfinite(figure) for figure in (left, top, width, height)):
        return f"is not a box (left {left}, top {top}, width {width}, height {height})"
    if width <= 0 or height <= 0:
        return f"has zero size (width {width}, height {height})"
    if left < 0 or top < 0 or left + width > 1 + EDGE_TOLERANCE or top + height > 1 + EDGE_TOLERANCE:
        return (f"lies outside the image (left {left}, top {top}, width {width}, height {height}: each edge must be "
                "between 0 and 1)")
    return None


class Box(Protocol):
    left: float
    top: float
    width: float
    height: float


def check_boxes(boxes: Sequence[tuple[str, Box]]) -> None:
    """Refuse the whole request when one box is no region; `boxes` pairs each with where it was sent."""
    for where, region in boxes:
        problem = box_problem(region.left, region.top, region.width, region.height)
        if problem:
            raise StoreError(f"The region of {where} {problem}.", "BadRequestImageRegions")
