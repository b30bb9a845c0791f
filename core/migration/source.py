"""What a project holds, read through the training API and checked as it is read: an answer of the wrong shape is a
MigrationError that names it, never a KeyError deep in the copy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kubevision.core.migration.client import MigrationError, TrainingApi

PAGE = 256  # the most images the API answers a page


@dataclass(frozen=True)
class Region:
    tag_name: str
    left: float
    top: float
    width: float
    height: float

    def near(self, other: Region, tolerance: float = 1e-4) -> bool:
        """The same box within float rounding (each side may store its figures a little differently)."""
        return self.tag_name == other.tag_name and all(
            abs(a - b) <= tolerance for a, b in ((self.left, other.left), (self.top, other.top),
                                                 (self.width, other.width), (self.height, other.height)))


@dataclass(frozen=True)
class Image:
    id: str
    original_uri: str
    tag_names: frozenset[str]
    regions: tuple[Region, ...]
    metadata: dict[str, str]


@dataclass(frozen=True)
class Tag:
    id: str
    name: str
    description: str
    type: str
    image_count: int


@dataclass(frozen=True)
class Iteration:
    name: str
    status: str
    publish_name: str  # "" when not published


@dataclass
class Project:
    id: str
    name: str
    description: str
    domain_id: str
    classification_type: str  # "" for a detection project
    tags: list[Tag]
    tagged_images: int
    untagged_images: int
    iterations: list[Iteration] = field(default_factory=list)

    @property
    def images(self) -> int:
        return self.tagged_images + self.untagged_images


def field_of(obj: Any, key: str, kind: type, api: TrainingApi, what: str, default: Any = None) -> Any:
    """obj[key], of `kind`; `default` when it is missing or null and the API may leave it so."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None and default is not None and isinstance(obj, dict):
        return default
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise MigrationError(f"the {api.role} at {api.endpoint} answered {what} without a valid {key!r}: not the "
                             "Custom Vision training API")
    return value


def list_of(body: Any, api: TrainingApi, what: str) -> list:
    if not isinstance(body, list):
        raise MigrationError(f"the {api.role} at {api.endpoint} answered {what} with no list: not the Custom Vision "
                             "training API")
    return body


def project_ids(api: TrainingApi) -> list[str]:
    return [field_of(p, "id", str, api, "a project") for p in list_of(api.call("GET", "/projects"), api, "projects")]


def read_project(api: TrainingApi, project_id: str) -> Project:
    """The project with its tags, image counts and iterations; MigrationError when the source has no such project."""
    body = api.call("GET", f"/projects/{project_id}",
                    not_found=f"the {api.role} has no project {project_id} (its key's account holds none such)")
    settings = body.get("settings") if isinstance(body, dict) else None
    tags = [Tag(field_of(t, "id", str, api, "a tag"), field_of(t, "name", str, api, "a tag"),
                field_of(t, "description", str, api, "a tag", ""), field_of(t, "type", str, api, "a tag", "Regular"),
                field_of(t, "imageCount", int, api, "a tag"))
            for t in list_of(api.call("GET", f"/projects/{project_id}/tags"), api, "tags")]
    iterations = [Iteration(field_of(i, "name", str, api, "an iteration"),
                            field_of(i, "status", str, api, "an iteration"),
                            field_of(i, "publishName", str, api, "an iteration", ""))
                  for i in list_of(api.call("GET", f"/projects/{project_id}/iterations"), api, "iterations")]
    counts = {}
    for status in ("tagged", "untagged"):
        counts[status] = api.call("GET", f"/projects/{project_id}/images/{status}/count")
        if not isinstance(counts[status], int) or isinstance(counts[status], bool):
            raise MigrationError(f"the {api.role} at {api.endpoint} answered an image count that is no number")
    return Project(
        id=field_of(body, "id", str, api, "a project"), name=field_of(body, "name", str, api, "a project"),
        description=field_of(body, "description", str, api, "a project", ""),
        domain_id=field_of(settings, "domainId", str, api, "a project's settings"),
        classification_type=field_of(settings, "classificationType", str, api, "a project's settings", ""),
        tags=tags, tagged_images=counts["tagged"], untagged_images=counts["untagged"], iterations=iterations)


def images(api: TrainingApi, project_id: str) -> Iterator[Image]:
    """Every image, tagged then untagged, a page of 256 at a time."""
    for status in ("tagged", "untagged"):
        skip = 0
        while True:
            page = list_of(api.call("GET", f"/projects/{project_id}/images/{status}",
                                    params={"take": PAGE, "skip": skip}), api, "images")
            for item in page:
                yield image_of(api, item)
            if len(page) < PAGE:
                break
            skip += PAGE


def image_of(api: TrainingApi, item: Any) -> Image:
    what = "an image"
    regions = tuple(
        Region(field_of(r, "tagName", str, api, "a region"), *(field_of(r, k, float, api, "a region")
                                                               for k in ("left", "top", "width", "height")))
        for r in list_of(item.get("regions") or [] if isinstance(item, dict) else None, api, "regions"))
    tags = frozenset(field_of(t, "tagName", str, api, "an image's tag")
                     for t in list_of(item.get("tags") or [] if isinstance(item, dict) else None, api, "tags"))
    metadata = item.get("metadata") or {} if isinstance(item, dict) else None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise MigrationError(f"the {api.role} at {api.endpoint} answered {what} with metadata that is no map of text")
    return Image(field_of(item, "id", str, api, what), field_of(item, "originalImageUri", str, api, what), tags,
                 regions, dict(metadata))
