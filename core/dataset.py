"""The dataset manifest: one JSON line per image, naming its stored content, tags and regions."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from kubevision.core.names import name_problem

# Image ids are derived from content, so the same photo uploaded twice is one image (Custom Vision's OKDuplicate).
_IMAGE_NAMESPACE = uuid.UUID("6f1c1a4e-3a52-4c55-9a51-7d8f3c0b8e10")
# Tag ids are derived from the project and the tag's name, so every component names a tag alike without a lookup.
_TAG_NAMESPACE = uuid.UUID("0b7e3c52-94d4-4f0e-8d0c-5f2a1e6b9c31")


def _plain_name(name: str) -> str:
    problem = name_problem(name)
    if problem:
        raise ValueError(f"the tag name {name!r} {problem}")
    return name


TagName = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True),
                    AfterValidator(_plain_name)]

EDGE_TOLERANCE = 1e-6  # boxes drawn to the very edge, written as floats, may pass 1 by a rounding error


def fit_box(left: float, top: float, width: float, height: float) -> tuple[float, float, float, float]:
    """The one rule of a region, for the label store and the manifest alike: a box whose edges lie between 0 and 1
    (within EDGE_TOLERANCE, and then moved onto the edge it passed), of non-zero size. Returns the box fitted into
    its image; ValueError says why it is no region."""
    if not all(math.isfinite(figure) for figure in (left, top, width, height)):
        raise ValueError(f"is not a box (left {left}, top {top}, width {width}, height {height})")
    if width <= 0 or height <= 0:
        raise ValueError(f"has zero size (width {width}, height {height})")
    if (left < -EDGE_TOLERANCE or top < -EDGE_TOLERANCE or left + width > 1 + EDGE_TOLERANCE
            or top + height > 1 + EDGE_TOLERANCE):
        raise ValueError(f"lies outside the image (left {left}, top {top}, width {width}, height {height}: each "
                         "edge must be between 0 and 1)")
    left, width = _fit_span(left, width)
    top, height = _fit_span(top, height)
    if width <= 0 or height <= 0:
        raise ValueError(f"has zero size inside the image (width {width}, height {height})")
    return left, top, width, height


def _fit_span(start: float, length: float) -> tuple[float, float]:
    """One axis of a box, its edges moved within [0, 1]; left alone when inside already, so figures keep their
    exact value."""
    if start < 0:
        start, length = 0.0, length + start
    start = min(start, 1.0)
    if start + length > 1:
        length = 1 - start
    return start, length


class Region(BaseModel):
    """A tagged box, normalised to the image size as Custom Vision gives it (fit_box's rule: a box a rounding
    error past an edge is moved onto it)."""

    model_config = ConfigDict(extra="forbid")

    tag: TagName
    left: float = Field(ge=0, le=1)
    top: float = Field(ge=0, le=1)
    width: float = Field(gt=0, le=1)
    height: float = Field(gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _fitted(cls, data):
        figures = ("left", "top", "width", "height")
        if not isinstance(data, dict) or not all(isinstance(data.get(f), int | float) for f in figures):
            return data  # the fields' own checks say what is wrong
        try:
            fitted = fit_box(*(float(data[f]) for f in figures))
        except ValueError as problem:
            raise ValueError(f"the region {problem}") from None
        return {**data, **dict(zip(figures, fitted, strict=True))}


class ImageRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Stable image id, derived from the content hash.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hash of the stored bytes; names the image object.")
    content_type: str = Field(description="MIME type the image was uploaded with.")
    size: int = Field(ge=0, description="Bytes.")
    tags: list[TagName] = Field(default_factory=list, description="Image-level tags (classification).")
    regions: list[Region] = Field(default_factory=list, description="Tagged boxes (object detection).")
    metadata: dict[str, str] = Field(default_factory=dict, description="Free key/value pairs given at upload.")
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_id(sha256: str) -> str:
    return str(uuid.uuid5(_IMAGE_NAMESPACE, sha256))


def tag_id(project_uid: str, tag: str) -> str:
    return str(uuid.uuid5(_TAG_NAMESPACE, f"{project_uid}/{tag}"))


def dumps(records: list[ImageRecord]) -> bytes:
    return b"".join(r.model_dump_json().encode() + b"\n" for r in records)


class ManifestError(ValueError):
    """A manifest line that is no image record; the message names the line and the field."""


def loads(data: bytes) -> list[ImageRecord]:
    records = []
    for number, line in enumerate(data.splitlines(), 1):
        if line.strip():
            try:
                records.append(ImageRecord.model_validate_json(line))
            except ValidationError as error:
                problem = error.errors()[0]
                where = ".".join(str(part) for part in problem["loc"]) or "the line"
                raise ManifestError(f"manifest line {number}: {where}: {problem['msg']}") from error
    return records


def tag_counts(records: list[ImageRecord]) -> Counter[str]:
    """Images per tag; an image with several regions of one tag counts once for it."""
    counts: Counter[str] = Counter()
    for record in records:
        counts.update(set(record.tags) | {region.tag for region in record.regions})
    return counts


class PredictedTag(BaseModel):
    tag_id: str
    tag_name: str
    probability: float
    region: Region | None = Field(default=None, description="Object detection: the box (its tag is tag_name).")


class PredictionRecord(BaseModel):
    """A prediction kept for Custom Vision's stored-predictions API: the image (by content, under images/) and what
    the published model answered."""

    model_config = ConfigDict(extra="forbid")

    id: str
    project: str = Field(description="The project's uid.")
    iteration: str = Field(description="The uid of the Iteration that answered.")
    published_name: str
    created: datetime
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str
    size: int = Field(ge=0)
    application: str | None = None
    predictions: list[PredictedTag]
