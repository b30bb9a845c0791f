"""One project brought over from a source to a KubeVision target, both through the training API. Rerunning it is
safe and cheap on the target: the target project is found again by name, tags by name, and images by content (the
target names an image by its bytes' hash), so an interrupted run resumes and a later run adds what changed at the
source (a resume record, core/migration/resume.py, spares such a run the downloads). Each image is added whole, with
its tags, regions and metadata in the one call that stores it; one that fails is listed with the reason and the
others go on."""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kubevision.core import dataset
from kubevision.core.api import ProjectType
from kubevision.core.domains import DomainInfo
from kubevision.core.migration import source as read
from kubevision.core.migration.client import MigrationError, TrainingApi
from kubevision.core.migration.domains import nearest
from kubevision.core.migration.resume import ResumeRecord

BATCH_IMAGES = 64  # the most images one create call takes
BATCH_BYTES = 16 * 1024 * 1024  # and few enough bytes to stay well under the request's size limit
DOWNLOADS = 8  # source images downloaded at once


@dataclass(frozen=True)
class Failure:
    image: str  # the source image's id
    reason: str


@dataclass
class Outcome:
    source: read.Project
    source_domain: str
    domain: DomainInfo
    target_id: str = ""
    created: bool = False
    tags_added: int = 0
    added: int = 0  # images stored at the target by this run
    present: int = 0  # images the target held already, with all their labels
    relabelled: int = 0  # images the target held, given the tags, regions or metadata they lacked
    failures: list[Failure] = field(default_factory=list)


def migrate_project(source: TrainingApi, target: TrainingApi, project: read.Project,
                    advance: Callable[[int], None] = lambda n: None, resume_folder: Path | None = None) -> Outcome:
    """Brings `project` (read from `source`) over; `advance(n)` as n more of its images are done. With a
    `resume_folder`, a record kept there spares a rerun the downloads of the images moved already."""
    source_domain, domain = nearest(source, project.domain_id)
    outcome = Outcome(project, source_domain, domain)
    target_project = _target_project(target, project, domain, outcome)
    tag_ids = _tags(target, target_project, project, outcome)
    held = {image.id: image for image in read.images(target, target_project)}
    moved = ResumeRecord.of(resume_folder, source.endpoint, project.id, target.endpoint, target_project) \
        if resume_folder else ResumeRecord(None)
    detection = domain.type == ProjectType.OBJECT_DETECTION
    batch = _Batch(target, target_project, tag_ids, detection, outcome, advance, moved)
    try:
        for image, data in _with_bytes(source, read.images(source, project.id),
                                       lambda image: moved.target_of(image.id) not in held):
            if isinstance(data, MigrationError):
                outcome.failures.append(Failure(image.id, f"not read from the source: {data}"))
                advance(1)
                continue
            stored = held.get(moved.target_of(image.id) if data is None else
                              dataset.image_id(dataset.content_hash(data)))
            if stored is None:
                batch.add(image, data)
                continue
            moved.remember(image.id, stored.id)
            try:
                changed = _relabel(target, target_project, tag_ids, detection, image, stored)
            except MigrationError as error:
                outcome.failures.append(Failure(image.id, str(error)))
            else:
                if changed:
                    outcome.relabelled += 1
                else:
                    outcome.present += 1
            advance(1)
        batch.flush()
    finally:
        moved.save()
    return outcome


def _with_bytes(source: TrainingApi, images: Iterator[read.Image], needed: Callable[[read.Image], bool]
                ) -> Iterator[tuple[read.Image, bytes | MigrationError | None]]:
    """Each image, in order, with its bytes (or why they could not be read; None where not `needed`), downloaded
    DOWNLOADS at a time ahead of the caller: one download after another would leave the source mostly waiting."""
    pool = ThreadPoolExecutor(DOWNLOADS)
    ahead: deque[tuple[read.Image, Future | None]] = deque()

    def download(image: read.Image) -> bytes | MigrationError:
        try:
            return source.download(image.original_uri)
        except MigrationError as error:
            return error

    try:
        for image in images:
            ahead.append((image, pool.submit(download, image) if needed(image) else None))
            if len(ahead) > 2 * DOWNLOADS:
                image, pending = ahead.popleft()
                yield image, pending.result() if pending else None
        while ahead:
            image, pending = ahead.popleft()
            yield image, pending.result() if pending else None
    finally:
        pool.shutdown(cancel_futures=True)


def _target_project(target: TrainingApi, project: read.Project, domain: DomainInfo, outcome: Outcome) -> str:
    """The target project of the source's name, made when there is none; one of the other type is an error."""
    for candidate in read.list_of(target.call("GET", "/projects"), target, "projects"):
        if read.field_of(candidate, "name", str, target, "a project") != project.name:
            continue
        found = read.read_project(target, read.field_of(candidate, "id", str, target, "a project"))
        _, its_domain = nearest(target, found.domain_id)
        if its_domain.type != domain.type:
            raise MigrationError(f"the target holds a project named {project.name!r} of type {its_domain.type}, "
                                 f"and the source's is {domain.type}: rename one of them")
        outcome.target_id = found.id
        return found.id
    params = {"name": project.name, "description": project.description, "domainId": domain.id}
    if domain.type == ProjectType.CLASSIFICATION:
        params["classificationType"] = project.classification_type or "Multiclass"
    created = target.call("POST", "/projects", params=params)
    outcome.target_id, outcome.created = read.field_of(created, "id", str, target, "a project"), True
    return outcome.target_id


def _tags(target: TrainingApi, target_project: str, project: read.Project, outcome: Outcome) -> dict[str, str]:
    """{tag name: target tag id}, the source's tags made at the target where missing."""
    held = {read.field_of(t, "name", str, target, "a tag"): read.field_of(t, "id", str, target, "a tag")
            for t in read.list_of(target.call("GET", f"/projects/{target_project}/tags"), target, "tags")}
    for tag in project.tags:
        if tag.name in held:
            continue
        params = {"name": tag.name, "type": tag.type}
        if tag.description:
            params["description"] = tag.description
        made = target.call("POST", f"/projects/{target_project}/tags", params=params)
        held[tag.name] = read.field_of(made, "id", str, target, "a tag")
        outcome.tags_added += 1
    return held


def _regions(image: read.Image, tag_ids: dict[str, str]) -> list[dict]:
    return [{"tagId": tag_ids[r.tag_name], "left": r.left, "top": r.top, "width": r.width, "height": r.height}
            for r in image.regions]


def _relabel(target: TrainingApi, target_project: str, tag_ids: dict[str, str], detection: bool,
             image: read.Image, stored: read.Image) -> bool:
    """Gives an image the target holds the source's tags, regions and metadata it lacks; whether it changed."""
    changed = False
    path = f"/projects/{target_project}/images"
    missing_regions = [r for r in image.regions if not any(r.near(s) for s in stored.regions)]
    if missing_regions:
        target.call("POST", f"{path}/regions", json={"regions": [
            {"imageId": stored.id, **region} for region in _regions(
                read.Image(image.id, "", frozenset(), tuple(missing_regions), {}), tag_ids)]})
        changed = True
    missing_tags = set() if detection else image.tag_names - stored.tag_names
    if missing_tags:
        target.call("POST", f"{path}/tags", json={"tags": [
            {"imageId": stored.id, "tagId": tag_ids[name]} for name in sorted(missing_tags)]})
        changed = True
    if image.metadata and image.metadata != stored.metadata:
        target.call("POST", f"{path}/metadata", params={"imageIds": stored.id}, json=image.metadata)
        changed = True
    return changed


class _Batch:
    """Images to store, sent a batch at a time; the API takes one metadata a batch, so a batch holds images of the
    same metadata only (most projects have few distinct ones)."""

    def __init__(self, target: TrainingApi, target_project: str, tag_ids: dict[str, str], detection: bool,
                 outcome: Outcome, advance: Callable[[int], None], moved: ResumeRecord):
        self.target, self.target_project, self.tag_ids = target, target_project, tag_ids
        self.detection, self.outcome, self.advance, self.moved = detection, outcome, advance, moved
        self.pending: dict[tuple, list[tuple[read.Image, bytes]]] = {}

    def add(self, image: read.Image, data: bytes) -> None:
        key = tuple(sorted(image.metadata.items()))
        group = self.pending.setdefault(key, [])
        group.append((image, data))
        if len(group) >= BATCH_IMAGES or sum(len(d) for _, d in group) >= BATCH_BYTES:
            self._send(key)

    def flush(self) -> None:
        for key in list(self.pending):
            self._send(key)

    def _send(self, key: tuple) -> None:
        group = self.pending.pop(key)
        entries = []
        for image, data in group:
            entry = {"name": image.id, "contents": base64.b64encode(data).decode()}
            if self.detection:
                entry["regions"] = _regions(image, self.tag_ids)
            else:
                entry["tagIds"] = [self.tag_ids[name] for name in sorted(image.tag_names)]
            entries.append(entry)
        body = {"images": entries, **({"metadata": dict(key)} if key else {})}
        try:
            summary = self.target.call("POST", f"/projects/{self.target_project}/images/files", json=body)
            results = read.list_of(summary.get("images") if isinstance(summary, dict) else None, self.target,
                                   "an upload")
        except MigrationError as error:
            results = [{"status": str(error)}] * len(group)
        for (image, _), result in zip(group, results, strict=False):
            status = result.get("status") if isinstance(result, dict) else None
            stored = result.get("image") if isinstance(result, dict) else None
            if status in ("OK", "OKDuplicate") and isinstance(stored, dict) and isinstance(stored.get("id"), str):
                self.moved.remember(image.id, stored["id"])
            if status == "OK":
                self.outcome.added += 1
            elif status == "OKDuplicate":  # the same bytes twice at the source
                self.outcome.present += 1
            else:
                self.outcome.failures.append(Failure(image.id, f"refused by the target: {status}"))
        self.advance(len(group))
        self.moved.save()
