"""The training service, free of HTTP: Custom Vision's projects, tags, iterations, publishing, performance and
exports, on CustomVisionProjects and Iterations in the key's namespace and the label store. Routers only parse and
render; this module decides."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from kubevision.core import api, dataset, detection_metrics, detection_model, heldout
from kubevision.core.labelstore.export import ManifestExporter
from kubevision.core.labelstore.predictions import PredictionIndex
from kubevision.core.labelstore.store import ImageView, LabelStore, ProjectRef, TagView
from kubevision.core.settings import GatewaySettings
from kubevision.core.storage import ObjectStore, model_onnx_key
from kubevision.core.training import NEGATIVE_TAG, min_images_per_tag
from kubevision.gateway import domains, links, wire
from kubevision.gateway.catalog import Project
from kubevision.gateway.errors import CustomVisionError, NotFound
from kubevision.gateway.backends.resources import AlreadyExists, ResourceWriter
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.backends.trained import TAG_IDS_ANNOTATION, TrainedIterations, tag_ids

DOMAIN_ANNOTATION = "kubevision.io/domain-id"  # the Azure domain id the caller chose (several map to one domain)
NAME_ANNOTATION = "kubevision.io/display-name"  # an Iteration's Custom Vision name
LABELS_ANNOTATION = "kubevision.io/labels-version"  # the labels an Iteration was asked to train on
PROJECT_NAME_LENGTH = 40  # leaves room for "-<n>" in iteration names, which name Triton models (63 at most)
TRAINING_PHASES = {"Pending": "Training", "Training": "Training", "Trained": "Completed", "Published": "Completed",
                   "Failed": "Failed"}


def resource_name(display_name: str) -> str:
    """A Kubernetes name for a Custom Vision name: kept when valid, mapped otherwise (the display name is kept)."""
    name = re.sub(r"[^a-z0-9]+", "-", display_name.lower()).strip("-")[:PROJECT_NAME_LENGTH].rstrip("-")
    return name or "project"


@dataclass
class Services:
    """What the training routes share."""

    settings: GatewaySettings
    source: CatalogSource
    resources: ResourceWriter
    labels: LabelStore
    exporter: ManifestExporter
    predictions_index: PredictionIndex
    objects: ObjectStore
    http: httpx.AsyncClient
    trained: TrainedIterations

    def project(self, namespace: str, project_id: str) -> Project:
        return self.source.catalog.project(namespace, project_id)

    async def labelled(self, namespace: str, project_id: str) -> ProjectRef:
        """The project, registered in the label store (importing a manifest found there the first time)."""
        project = self.project(namespace, project_id)
        ref = ProjectRef(project.uid, project.namespace, project.name, project.dataset_bucket, project.dataset_prefix)
        await asyncio.to_thread(self.labels.ensure_project, ref)
        return ref

    def link(self, namespace: str, base_url: str, path: str) -> str:
        key = self.source.catalog.keys[namespace].training
        return links.sign(self.settings.public_url or base_url, key, path, self.settings.link_seconds)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def project_wire(project: Project) -> wire.Project:
    meta, spec = project.body["metadata"], project.body["spec"]
    chosen = (meta.get("annotations") or {}).get(DOMAIN_ANNOTATION)
    domain = domains.BY_ID.get(chosen or "") or domains.shown(project.type, spec.get("domain", "General"))
    classification = spec.get("classificationType") or ("Multiclass" if project.type == "Classification" else None)
    created = _time(meta.get("creationTimestamp"))
    return wire.Project(
        id=project.uid, name=spec.get("displayName", project.name), description=spec.get("description", ""),
        settings=wire.ProjectSettings(domain_id=domain.id, classification_type=classification,
                                      target_export_platforms=[], use_negative_set=True, image_processing_settings={}),
        created=created, last_modified=created, dr_mode_enabled=False, status="Succeeded",
    )


SAME_BOX = 1e-3  # a held-out box is a stored region's when every figure is this near (the trainer rounds them)


def _held_out_regions(image: heldout.HeldOutImage, view: ImageView | None, tag_id: Callable[[str], str],
                      iteration: dict[str, Any]) -> list[wire.ImageRegion]:
    """A detector's true boxes of a held-out image, as it was scored: each with the id of the stored region of the
    same tag and box, or, when that region changed since, an id derived from the image and the box's place."""
    stored = view.regions if view else []
    answer = []
    for place, region in enumerate(image.regions):
        corners = (region.left, region.top, region.width, region.height)
        match = next((r for r, name in stored if name == region.tag and max(
            abs(a - b) for a, b in zip(corners, (r.left, r.top, r.width, r.height), strict=True)) <= SAME_BOX), None)
        answer.append(wire.ImageRegion(
            region_id=match.id if match else str(uuid.uuid5(uuid.NAMESPACE_URL, f"{image.id}/{place}")),
            created=match.created if match else _time(iteration["metadata"].get("creationTimestamp")),
            tag_id=tag_id(region.tag), tag_name=region.tag, left=region.left, top=region.top, width=region.width,
            height=region.height))
    return answer


def _held_out_predictions(held_out: heldout.HeldOut, image: heldout.HeldOutImage,
                          tag_id: Callable[[str], str]) -> list[wire.Prediction]:
    """A classifier's probability of each tag, or a detector's boxes; most probable first."""
    if image.boxes:
        return [wire.Prediction(probability=b.probability, tag_id=tag_id(b.tag), tag_name=b.tag,
                                bounding_box=wire.BoundingBox(left=b.left, top=b.top, width=b.width, height=b.height))
                for b in image.boxes]
    if image.regions:  # a detector that found nothing here
        return []
    return sorted((wire.Prediction(probability=p, tag_id=tag_id(t), tag_name=t)
                   for t, p in zip(held_out.tags, image.probabilities, strict=True)), key=lambda p: -p.probability)


class TrainingService:
    def __init__(self, services: Services):
        self.s = services

    # ------------------------------------------------------------------------------------------------------------
    # domains and projects

    @staticmethod
    def domain_wire(info: domains.DomainInfo) -> wire.Domain:
        return wire.Domain(id=info.id, name=info.name, type=info.type.value, exportable=True, enabled=True,
                           exportable_platforms=["ONNX"])

    def projects(self, namespace: str) -> list[wire.Project]:
        found = [p for p in self.s.source.catalog.projects.values() if p.namespace == namespace]
        return [project_wire(p) for p in sorted(found, key=lambda p: p.body["metadata"].get("creationTimestamp", ""))]

    def get_project(self, namespace: str, project_id: str) -> wire.Project:
        return project_wire(self.s.project(namespace, project_id))

    @staticmethod
    def _project_spec(name: str, description: str | None, domain_id: str | None,
                      classification_type: str | None) -> tuple[dict[str, Any], domains.DomainInfo]:
        if not name or not name.strip() or len(name) > 256:
            raise CustomVisionError("A project's name must have 1 to 256 characters.", "BadRequestProjectName")
        if description is not None and len(description) > 4096:
            raise CustomVisionError("A project's description must have at most 4096 characters.",
                                    "BadRequestProjectDescription")
        info = domains.domain(domain_id) if domain_id else domains.DEFAULT
        spec: dict[str, Any] = {"displayName": name.strip(), "type": info.type.value, "domain": info.domain.value}
        if description is not None:
            spec["description"] = description
        if info.type == api.ProjectType.CLASSIFICATION:
            if classification_type not in (None, "Multiclass", "Multilabel"):
                raise CustomVisionError(f"Unknown classification type {classification_type!r}: Multiclass or "
                                        "Multilabel.", "BadRequestProjectUnknownClassification")
            spec["classificationType"] = classification_type or "Multiclass"
        return spec, info

    async def create_project(self, namespace: str, name: str, description: str | None, domain_id: str | None,
                             classification_type: str | None) -> wire.Project:
        spec, info = self._project_spec(name, description, domain_id, classification_type)
        base = resource_name(name)
        await asyncio.to_thread(self.s.objects.ensure_bucket, self.s.settings.datasets_bucket)
        for attempt in range(20):
            candidate = base if attempt == 0 else f"{base}-{secrets.token_hex(2)}"
            body = {"apiVersion": api.API_VERSION, "kind": "CustomVisionProject",
                    "metadata": {"name": candidate, "namespace": namespace,
                                 "annotations": {DOMAIN_ANNOTATION: info.id}},
                    "spec": {**spec, "dataset": {"bucket": self.s.settings.datasets_bucket,
                                                 "prefix": f"{namespace}/{candidate}/"}}}
            try:
                stored = await self.s.resources.create(body)
                break
            except AlreadyExists:
                continue
        else:
            raise CustomVisionError(f"No free resource name for {name!r}.", "BadRequestProjectNameNotUnique")
        await self.s.source.observe("projects", stored)
        await self.s.labelled(namespace, stored["metadata"]["uid"])
        return self.get_project(namespace, stored["metadata"]["uid"])

    async def update_project(self, namespace: str, project_id: str, update: wire.Project) -> wire.Project:
        project = self.s.project(namespace, project_id)
        settings = update.settings or wire.ProjectSettings()
        spec, info = self._project_spec(update.name, update.description, settings.domain_id,
                                        settings.classification_type)
        if info.type.value != project.type:
            raise CustomVisionError("A project cannot change between Classification and ObjectDetection.",
                                    "BadRequestProjectUnsupportedDomainTypeChange")
        stored = await self.s.resources.patch("CustomVisionProject", namespace, project.name, {
            "metadata": {"annotations": {DOMAIN_ANNOTATION: info.id}}, "spec": spec})
        await self.s.source.observe("projects", stored)
        return self.get_project(namespace, project_id)

    async def delete_project(self, namespace: str, project_id: str) -> None:
        project = self.s.project(namespace, project_id)
        for body in self.s.source.catalog.iterations.get(project.uid, []):
            if body["spec"].get("publishName"):
                raise CustomVisionError("The project has a published iteration; unpublish it first.",
                                        "BadRequestIterationIsPublished")
        for body in self.s.source.catalog.iterations.get(project.uid, []):
            await self.s.resources.delete("Iteration", namespace, body["metadata"]["name"])
        await self.s.resources.delete("CustomVisionProject", namespace, project.name)
        await self.s.source.observe("projects", project.body, deleted=True)
        await asyncio.to_thread(self.s.labels.delete_project, project.uid)

    # ------------------------------------------------------------------------------------------------------------
    # tags

    @staticmethod
    def _tag_wire(tag: TagView) -> wire.Tag:
        return wire.Tag(id=tag.id, name=tag.name, description=tag.description, type=tag.type,
                        image_count=tag.image_count)

    async def tags(self, namespace: str, project_id: str) -> list[wire.Tag]:
        ref = await self.s.labelled(namespace, project_id)
        return [self._tag_wire(t) for t in await asyncio.to_thread(self.s.labels.tags, ref.id)]

    async def tag(self, namespace: str, project_id: str, tag_id: str) -> wire.Tag:
        ref = await self.s.labelled(namespace, project_id)
        return self._tag_wire(await asyncio.to_thread(self.s.labels.tag, ref.id, tag_id))

    async def create_tag(self, namespace: str, project_id: str, name: str, description: str | None,
                         type: str | None) -> wire.Tag:
        ref = await self.s.labelled(namespace, project_id)
        return self._tag_wire(await asyncio.to_thread(self.s.labels.create_tag, ref.id, name, description or "",
                                                      type or "Regular"))

    async def update_tag(self, namespace: str, project_id: str, tag_id: str, updated: wire.Tag) -> wire.Tag:
        ref = await self.s.labelled(namespace, project_id)
        return self._tag_wire(await asyncio.to_thread(
            self.s.labels.update_tag, ref.id, tag_id, updated.name, updated.description,
            updated.type.value if updated.type else None))

    async def delete_tag(self, namespace: str, project_id: str, tag_id: str) -> None:
        ref = await self.s.labelled(namespace, project_id)
        await asyncio.to_thread(self.s.labels.delete_tag, ref.id, tag_id)

    # ------------------------------------------------------------------------------------------------------------
    # iterations

    def _iteration_wire(self, project: Project, body: dict[str, Any]) -> wire.Iteration:
        meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
        project_view = project_wire(project)
        failed = next((c for c in status.get("conditions", []) if c.get("status") == "False"
                       and status.get("phase") == "Failed"), None)
        started, finished = _time(status.get("trainingStarted")), _time(status.get("trainingFinished"))
        training_type = spec.get("trainingType") or project.body["spec"].get("trainingDefaults", {}).get(
            "trainingType", "Quick")
        return wire.Iteration(
            id=meta["uid"], name=(meta.get("annotations") or {}).get(NAME_ANNOTATION, meta["name"]),
            status=TRAINING_PHASES.get(status.get("phase") or "Pending", "Training"),
            created=_time(meta.get("creationTimestamp")), last_modified=finished or _time(meta.get(
                "creationTimestamp")), trained_at=finished, project_id=project.uid, exportable=True,
            exportable_to=["ONNX"], domain_id=project_view.settings.domain_id,
            classification_type=project_view.settings.classification_type,
            training_type="Advanced" if training_type == "Advanced" else "Regular",
            reserved_budget_in_hours=(spec.get("budgetMinutes") or 0) // 60,
            training_time_in_minutes=int((finished - started).total_seconds() // 60) if started and finished else 0,
            publish_name=status.get("publishedName") or spec.get("publishName"),
            training_error_details=f"{failed.get('reason')}: {failed.get('message', '')}" if failed else None,
        )

    def iterations(self, namespace: str, project_id: str) -> list[wire.Iteration]:
        project = self.s.project(namespace, project_id)
        bodies = sorted(self.s.source.catalog.iterations.get(project.uid, []),
                        key=lambda b: b["metadata"].get("creationTimestamp", ""))
        return [self._iteration_wire(project, b) for b in bodies]

    def iteration(self, namespace: str, project_id: str, iteration_id: str) -> wire.Iteration:
        project = self.s.project(namespace, project_id)
        return self._iteration_wire(project, self.s.source.catalog.iteration(project, iteration_id))

    async def train(self, namespace: str, project_id: str, training_type: str | None, budget_hours: int | None,
                    force: bool) -> wire.Iteration:
        project = self.s.project(namespace, project_id)
        ref = await self.s.labelled(namespace, project_id)
        bodies = self.s.source.catalog.iterations.get(project.uid, [])
        if any(TRAINING_PHASES.get((b.get("status") or {}).get("phase") or "Pending") == "Training" for b in bodies):
            raise CustomVisionError("An iteration of this project is training already.",
                                    "BadRequestTrainingAlreadyInProgress")
        if training_type not in (None, "Regular", "Advanced"):
            raise CustomVisionError("trainingType is Regular or Advanced.", "BadRequest")
        await self._check_trainable(project)
        version = (await asyncio.to_thread(self.s.labels.project, ref.id)).labels_version
        trained = {(b["metadata"].get("annotations") or {}).get(LABELS_ANNOTATION) for b in bodies
                   if TRAINING_PHASES.get((b.get("status") or {}).get("phase") or "") == "Completed"}
        if str(version) in trained and not force:
            raise CustomVisionError("Nothing changed since the last training; pass forceTrain to train again.",
                                    "BadRequestTrainingNotNeeded")
        await asyncio.to_thread(self.s.exporter.export, ref.id)  # the snapshot must see every label
        kept_ids = await self._kept_tag_ids(project.uid)
        spec: dict[str, Any] = {"projectRef": {"name": project.name},
                                "trainingType": "Advanced" if training_type == "Advanced" else "Quick"}
        if training_type == "Advanced" and budget_hours:
            spec["budgetMinutes"] = min(budget_hours * 60, 2880)
        number = len(bodies) + 1
        while True:
            body = {"apiVersion": api.API_VERSION, "kind": "Iteration",
                    "metadata": {"name": f"{project.name}-{number}", "namespace": namespace, "annotations": {
                        NAME_ANNOTATION: f"Iteration {number}", LABELS_ANNOTATION: str(version),
                        **({TAG_IDS_ANNOTATION: json.dumps(kept_ids)} if kept_ids else {})}},
                    "spec": spec}
            try:
                stored = await self.s.resources.create(body)
                break
            except AlreadyExists:
                number += 1
        await self.s.source.observe("iterations", stored)
        return self._iteration_wire(project, stored)

    async def _kept_tag_ids(self, project_uid: str) -> dict[str, str]:
        """{name the model will know: id} for each tag whose id is not derived from that name (a renamed tag, a
        Negative tag, which the trainer knows by one name): the iteration keeps them, so that its model reports
        the ids the tags have, whatever they are called later."""
        kept = {}
        for tag in await asyncio.to_thread(self.s.labels.tags, project_uid):
            name = NEGATIVE_TAG if tag.type == "Negative" else tag.name
            if tag.id != dataset.tag_id(project_uid, name):
                kept[name] = tag.id
        return kept

    async def _check_trainable(self, project: Project) -> None:
        tags = await asyncio.to_thread(self.s.labels.tags, project.uid)
        used = [t for t in tags if t.image_count and t.type != "Negative"]
        needed = min_images_per_tag(api.ProjectType(project.type))
        few = [t.name for t in used if t.image_count < needed]
        if len(used) < 2 or few:
            detector = project.type == api.ProjectType.OBJECT_DETECTION  # Custom Vision's code names the detector
            raise CustomVisionError(
                f"Training needs at least 2 tags with {needed} images or more each"
                + (" (images with a region of the tag)" if detector else "")
                + (f"; too few images: {', '.join(few)}." if few else "."),
                "BadRequestDetectionTrainingValidationFailed" if detector else "BadRequestTrainingValidationFailed")

    async def update_iteration(self, namespace: str, project_id: str, iteration_id: str, name: str) -> wire.Iteration:
        project = self.s.project(namespace, project_id)
        body = self.s.source.catalog.iteration(project, iteration_id)
        if not name or len(name) > 256:
            raise CustomVisionError("An iteration's name must have 1 to 256 characters.", "BadRequestIterationName")
        stored = await self.s.resources.patch("Iteration", namespace, body["metadata"]["name"],
                                              {"metadata": {"annotations": {NAME_ANNOTATION: name}}})
        await self.s.source.observe("iterations", stored)
        return self._iteration_wire(project, stored)

    async def delete_iteration(self, namespace: str, project_id: str, iteration_id: str) -> None:
        project = self.s.project(namespace, project_id)
        body = self.s.source.catalog.iteration(project, iteration_id)
        if body["spec"].get("publishName"):  # the wanted state: an unpublish in progress does not count
            raise CustomVisionError("The iteration is published; unpublish it first.",
                                    "BadRequestIterationIsPublished")
        await self.s.resources.delete("Iteration", namespace, body["metadata"]["name"])
        await self.s.source.observe("iterations", body, deleted=True)

    # ------------------------------------------------------------------------------------------------------------
    # publishing

    def _trained(self, project: Project, iteration_id: str) -> dict[str, Any]:
        body = self.s.source.catalog.iteration(project, iteration_id)
        if TRAINING_PHASES.get((body.get("status") or {}).get("phase") or "Pending") != "Completed":
            raise CustomVisionError(f"Iteration {iteration_id} has not completed training.",
                                    "BadRequestIterationIsNotTrained")
        return body

    async def publish(self, namespace: str, project_id: str, iteration_id: str, publish_name: str,
                      overwrite: bool) -> bool:
        project = self.s.project(namespace, project_id)
        body = self._trained(project, iteration_id)
        name = publish_name.lower()
        if not re.fullmatch(api.DNS_LABEL, name) or len(name) > 63:
            raise CustomVisionError("A publish name here is 1 to 63 letters, digits and '-', starting and ending "
                                    "with a letter or digit (compared without case).", "BadRequestInvalidPublishName")
        for other in self.s.source.catalog.iterations.get(project.uid, []):
            taken = {(other.get("status") or {}).get("publishedName"), other["spec"].get("publishName")}
            if other is not body and name in taken:
                if not overwrite:
                    raise CustomVisionError(f"Another iteration is published as {publish_name!r}.",
                                            "BadRequestInvalidPublishName")
                await self._set_publish_name(namespace, other, None)
        await self._set_publish_name(namespace, body, name)
        deadline = asyncio.get_running_loop().time() + self.s.settings.publish_wait_seconds
        while (project.uid, name) not in self.s.source.catalog.published:  # answer once predictions can be served
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.25)
        return True

    async def _set_publish_name(self, namespace: str, body: dict[str, Any], name: str | None) -> None:
        stored = await self.s.resources.patch("Iteration", namespace, body["metadata"]["name"],
                                              {"spec": {"publishName": name}})
        await self.s.source.observe("iterations", stored)

    async def unpublish(self, namespace: str, project_id: str, iteration_id: str) -> None:
        project = self.s.project(namespace, project_id)
        body = self.s.source.catalog.iteration(project, iteration_id)
        if not body["spec"].get("publishName"):
            raise CustomVisionError(f"Iteration {iteration_id} is not published.", "BadRequestIterationNotPublished")
        await self._set_publish_name(namespace, body, None)

    def quick_test_target(self, namespace: str, project_id: str,
                          iteration_id: str | None) -> tuple[Project, dict[str, Any], str | None]:
        """The iteration a quick test runs (by default the newest trained one), and the name Triton serves it by
        when it is published (None: the gateway runs its exported model itself)."""
        project = self.s.project(namespace, project_id)
        if iteration_id:
            body = self._trained(project, iteration_id)
        else:
            trained = [b for b in self.s.source.catalog.iterations.get(project.uid, [])
                       if TRAINING_PHASES.get((b.get("status") or {}).get("phase") or "") == "Completed"]
            if not trained:
                raise NotFound("No iteration of this project has completed training.",
                               "NotFoundProjectDefaultIteration")
            body = max(trained, key=lambda b: b["metadata"].get("creationTimestamp", ""))
        served = [m.publish_name for (uid, _), m in self.s.source.catalog.published.items()
                  if uid == project.uid and m.iteration_uid == body["metadata"]["uid"]]
        return project, body, min(served) if served else None

    # ------------------------------------------------------------------------------------------------------------
    # performance and exports

    async def performance(self, namespace: str, project_id: str, iteration_id: str, threshold: float | None,
                          overlap_threshold: float | None = None) -> wire.IterationPerformance:
        """Precision and recall at `threshold` (by default the one the iteration was trained for), counted again
        from the held-out predictions; a classifier's average precision does not depend on it and is the trainer's.
        A detector's figures, average precision too, are counted again at `overlap_threshold` (by default Custom
        Vision's 0.5) from its held-out boxes."""
        project = self.s.project(namespace, project_id)
        body = self._trained(project, iteration_id)
        metrics = (body.get("status") or {}).get("metrics")
        if not metrics:
            raise NotFound(f"Iteration {iteration_id} has no performance recorded.", "NotFoundIterationPerformance")
        tag_id = tag_ids(project.uid, body)
        trained_at = metrics["probabilityThreshold"]
        threshold = trained_at if threshold is None else threshold
        overlap = detection_model.OVERLAP_THRESHOLD if overlap_threshold is None else overlap_threshold
        held_out = await self.s.trained.held_out(body)
        average = {t["tag"]: t["averagePrecision"] for t in metrics.get("perTag", [])}
        mean_average = metrics["averagePrecision"]
        if held_out is None:  # trained before held-out predictions were kept: the trainer's thresholds only
            if abs(threshold - trained_at) > 1e-9 or abs(overlap - detection_model.OVERLAP_THRESHOLD) > 1e-9:
                raise NotFound(f"Iteration {iteration_id} kept its performance at threshold {trained_at} only; "
                               "train again to see other thresholds.", "NotFoundIterationPerformance")
            per_tag = [(t["tag"], t["precision"], t["recall"]) for t in metrics.get("perTag", [])]
            precision, recall = metrics["precision"], metrics["recall"]
        elif project.type == api.ProjectType.OBJECT_DETECTION:
            counted = (await asyncio.to_thread(detection_metrics.evaluate_held_out, held_out, threshold,
                                               overlap)).metrics
            per_tag = [(t.tag, t.precision, t.recall) for t in counted.per_tag]
            precision, recall = counted.precision, counted.recall
            average = {t.tag: t.average_precision for t in counted.per_tag}
            mean_average = counted.average_precision
        else:
            counted = heldout.counted_at(*held_out.arrays(), threshold)
            per_tag = list(zip(held_out.tags, counted.tag_precision, counted.tag_recall, strict=True))
            precision, recall = counted.precision, counted.recall
        return wire.IterationPerformance(
            per_tag_performance=[wire.TagPerformance(
                id=tag_id(name), name=name, precision=tag_precision, precision_std_deviation=0.0, recall=tag_recall,
                recall_std_deviation=0.0, average_precision=average.get(name)) for name, tag_precision, tag_recall
                in per_tag],
            precision=precision, precision_std_deviation=0.0, recall=recall, recall_std_deviation=0.0,
            average_precision=mean_average)

    async def _held_out_images(self, project: Project, iteration_id: str, tag_filter: list[str] | None
                               ) -> tuple[dict[str, Any], heldout.HeldOut, list[heldout.HeldOutImage]]:
        """The iteration, its held-out predictions, and those of images carrying one of the tags filtered on."""
        body = self._trained(project, iteration_id)
        held_out = await self.s.trained.held_out(body)
        if held_out is None:
            raise NotFound(f"Iteration {iteration_id} was trained before its held-out predictions were kept.",
                           "NotFoundIterationPerformance")
        if not tag_filter:
            return body, held_out, held_out.images
        tag_id, wanted = tag_ids(project.uid, body), {t.lower() for t in tag_filter}
        return body, held_out, [i for i in held_out.images if any(tag_id(t) in wanted for t in i.tags)]

    async def image_performance_count(self, namespace: str, project_id: str, iteration_id: str,
                                      tag_filter: list[str] | None) -> int:
        project = self.s.project(namespace, project_id)
        return len((await self._held_out_images(project, iteration_id, tag_filter))[2])

    async def image_performances(self, namespace: str, project_id: str, iteration_id: str,
                                 tag_filter: list[str] | None, newest: bool, skip: int, take: int,
                                 base_url: str) -> list[wire.ImagePerformance]:
        """The held-out images of an iteration (those its model never trained on) with their true tags and the
        model's predictions, in upload order, paged. An image deleted since keeps its id, tags and predictions."""
        project = self.s.project(namespace, project_id)
        body, held_out, images = await self._held_out_images(project, iteration_id, tag_filter)
        page = (images[::-1] if newest else images)[skip:skip + take]
        stored = {v.id: v for v in await asyncio.to_thread(self.s.labels.images_by_ids, project.uid,
                                                           [i.id for i in page])} if page else {}
        tag_id = tag_ids(project.uid, body)
        answer = []
        for image in page:
            view = stored.get(image.id)
            uri = self.s.link(namespace, base_url, f"{project.uid}/images/{view.sha256}") if view else None
            answer.append(wire.ImagePerformance(
                id=image.id, created=view.created if view else None, width=view.width if view else None,
                height=view.height if view else None, image_uri=uri, thumbnail_uri=uri,
                tags=[wire.ImageTag(tag_id=tag_id(t), tag_name=t, created=view.created if view else None)
                      for t in image.tags],
                regions=_held_out_regions(image, view, tag_id, body) or None,
                predictions=_held_out_predictions(held_out, image, tag_id)))
        return answer

    def _export(self, namespace: str, project: Project, body: dict[str, Any], base_url: str,
                flavor: str | None) -> wire.Export:
        path = f"{project.uid}/models/{body['metadata']['uid']}.onnx"
        return wire.Export(platform="ONNX", status="Done", download_uri=self.s.link(namespace, base_url, path),
                           flavor=flavor, newer_version_available=False)

    def exports(self, namespace: str, project_id: str, iteration_id: str, base_url: str) -> list[wire.Export]:
        project = self.s.project(namespace, project_id)
        body = self.s.source.catalog.iteration(project, iteration_id)
        if TRAINING_PHASES.get((body.get("status") or {}).get("phase") or "") != "Completed":
            return []
        return [self._export(namespace, project, body, base_url, None)]

    def export(self, namespace: str, project_id: str, iteration_id: str, platform: str, flavor: str | None,
               base_url: str) -> wire.Export:
        project = self.s.project(namespace, project_id)
        body = self._trained(project, iteration_id)
        if platform != "ONNX":
            raise CustomVisionError(f"Export to {platform} is not available: models are exported as ONNX.",
                                    "BadRequestProjectUnsupportedExportPlatform")
        if flavor not in (None, "ONNX10", "ONNX12"):
            raise CustomVisionError(f"ONNX exports have no flavor {flavor!r}.", "BadRequestNotSupported")
        return self._export(namespace, project, body, base_url, flavor)

    def model_object(self, project: Project, iteration_uid: str) -> tuple[str, str]:
        """(bucket, key) of an iteration's ONNX model."""
        body = self.s.source.catalog.iteration(project, iteration_uid)
        uri = (body.get("status") or {}).get("modelUri")
        if not uri:
            raise NotFound("The iteration has no model.", "NotFoundIteration")
        return model_onnx_key(uri)
