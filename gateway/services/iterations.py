"""Custom Vision's iterations, free of HTTP: training (an Iteration in the key's namespace, on a snapshot of the
label store's manifest), renaming, deleting, publishing and choosing what a quick test runs."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from kubevision.core import api, dataset
from kubevision.core.labelstore.export import ManifestExporter
from kubevision.core.labelstore.store import LabelStore
from kubevision.core.settings import GatewaySettings
from kubevision.core.training import NEGATIVE_TAG, min_images_per_tag
from kubevision.gateway import wire
from kubevision.gateway.backends.resources import AlreadyExists, ResourceWriter
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.backends.trained import TAG_IDS_ANNOTATION
from kubevision.gateway.catalog import Catalog, Project
from kubevision.gateway.errors import CustomVisionError, NotFound
from kubevision.gateway.services.lookup import ProjectLookup
from kubevision.gateway.services.projects import project_wire, timestamp

NAME_ANNOTATION = "kubevision.io/display-name"  # an Iteration's Custom Vision name
LABELS_ANNOTATION = "kubevision.io/labels-version"  # the labels an Iteration was asked to train on
TRAINING_PHASES = {"Pending": "Training", "Training": "Training", "Trained": "Completed", "Published": "Completed",
                   "Failed": "Failed"}


def trained_iteration(catalog: Catalog, project: Project, iteration_id: str) -> dict[str, Any]:
    """An iteration of the project that has completed training (BadRequestIterationIsNotTrained otherwise)."""
    body = catalog.iteration(project, iteration_id)
    if TRAINING_PHASES.get((body.get("status") or {}).get("phase") or "Pending") != "Completed":
        raise CustomVisionError(f"Iteration {iteration_id} has not completed training.",
                                "BadRequestIterationIsNotTrained")
    return body


def iteration_wire(project: Project, body: dict[str, Any]) -> wire.Iteration:
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    project_view = project_wire(project)
    failed = next((c for c in status.get("conditions", []) if c.get("status") == "False"
                   and status.get("phase") == "Failed"), None)
    started, finished = timestamp(status.get("trainingStarted")), timestamp(status.get("trainingFinished"))
    training_type = spec.get("trainingType") or project.body["spec"].get("trainingDefaults", {}).get(
        "trainingType", "Quick")
    return wire.Iteration(
        id=meta["uid"], name=(meta.get("annotations") or {}).get(NAME_ANNOTATION, meta["name"]),
        status=TRAINING_PHASES.get(status.get("phase") or "Pending", "Training"),
        created=timestamp(meta.get("creationTimestamp")), last_modified=finished or timestamp(meta.get(
            "creationTimestamp")), trained_at=finished, project_id=project.uid, exportable=True,
        exportable_to=["ONNX"], domain_id=project_view.settings.domain_id,
        classification_type=project_view.settings.classification_type,
        training_type="Advanced" if training_type == "Advanced" else "Regular",
        reserved_budget_in_hours=(spec.get("budgetMinutes") or 0) // 60,
        training_time_in_minutes=int((finished - started).total_seconds() // 60) if started and finished else 0,
        publish_name=status.get("publishedName") or spec.get("publishName"),
        training_error_details=f"{failed.get('reason')}: {failed.get('message', '')}" if failed else None,
    )


class IterationService:
    def __init__(self, settings: GatewaySettings, source: CatalogSource, resources: ResourceWriter,
                 lookup: ProjectLookup, labels: LabelStore, exporter: ManifestExporter):
        self.settings = settings
        self.source = source
        self.resources = resources
        self.lookup = lookup
        self.labels = labels
        self.exporter = exporter

    def iterations(self, namespace: str, project_id: str) -> list[wire.Iteration]:
        project = self.lookup.project(namespace, project_id)
        bodies = sorted(self.source.catalog.iterations.get(project.uid, []),
                        key=lambda b: b["metadata"].get("creationTimestamp", ""))
        return [iteration_wire(project, b) for b in bodies]

    def iteration(self, namespace: str, project_id: str, iteration_id: str) -> wire.Iteration:
        project = self.lookup.project(namespace, project_id)
        return iteration_wire(project, self.source.catalog.iteration(project, iteration_id))

    async def train(self, namespace: str, project_id: str, training_type: str | None, budget_hours: int | None,
                    force: bool) -> wire.Iteration:
        project = self.lookup.project(namespace, project_id)
        ref = await self.lookup.labelled(namespace, project_id)
        bodies = self.source.catalog.iterations.get(project.uid, [])
        if any(TRAINING_PHASES.get((b.get("status") or {}).get("phase") or "Pending") == "Training" for b in bodies):
            raise CustomVisionError("An iteration of this project is training already.",
                                    "BadRequestTrainingAlreadyInProgress")
        if training_type not in (None, "Regular", "Advanced"):
            raise CustomVisionError("trainingType is Regular or Advanced.", "BadRequest")
        await self._check_trainable(project)
        version = (await asyncio.to_thread(self.labels.project, ref.id)).labels_version
        trained = {(b["metadata"].get("annotations") or {}).get(LABELS_ANNOTATION) for b in bodies
                   if TRAINING_PHASES.get((b.get("status") or {}).get("phase") or "") == "Completed"}
        if str(version) in trained and not force:
            raise CustomVisionError("Nothing changed since the last training; pass forceTrain to train again.",
                                    "BadRequestTrainingNotNeeded")
        await asyncio.to_thread(self.exporter.export, ref.id)  # the snapshot must see every label
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
                stored = await self.resources.create(body)
                break
            except AlreadyExists:
                number += 1
        await self.source.observe("iterations", stored)
        return iteration_wire(project, stored)

    async def _kept_tag_ids(self, project_uid: str) -> dict[str, str]:
        """{name the model will know: id} for each tag whose id is not derived from that name (a renamed tag, a
        Negative tag, which the trainer knows by one name): the iteration keeps them, so that its model reports
        the ids the tags have, whatever they are called later."""
        kept = {}
        for tag in await asyncio.to_thread(self.labels.tags, project_uid):
            name = NEGATIVE_TAG if tag.type == "Negative" else tag.name
            if tag.id != dataset.tag_id(project_uid, name):
                kept[name] = tag.id
        return kept

    async def _check_trainable(self, project: Project) -> None:
        tags = await asyncio.to_thread(self.labels.tags, project.uid)
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
        project = self.lookup.project(namespace, project_id)
        body = self.source.catalog.iteration(project, iteration_id)
        if not name or len(name) > 256:
            raise CustomVisionError("An iteration's name must have 1 to 256 characters.", "BadRequestIterationName")
        stored = await self.resources.patch("Iteration", namespace, body["metadata"]["name"],
                                              {"metadata": {"annotations": {NAME_ANNOTATION: name}}})
        await self.source.observe("iterations", stored)
        return iteration_wire(project, stored)

    async def delete_iteration(self, namespace: str, project_id: str, iteration_id: str) -> None:
        project = self.lookup.project(namespace, project_id)
        body = self.source.catalog.iteration(project, iteration_id)
        if body["spec"].get("publishName"):  # the wanted state: an unpublish in progress does not count
            raise CustomVisionError("The iteration is published; unpublish it first.",
                                    "BadRequestIterationIsPublished")
        await self.resources.delete("Iteration", namespace, body["metadata"]["name"])
        await self.source.observe("iterations", body, deleted=True)

    # ------------------------------------------------------------------------------------------------------------
    # publishing

    async def publish(self, namespace: str, project_id: str, iteration_id: str, publish_name: str,
                      overwrite: bool) -> bool:
        project = self.lookup.project(namespace, project_id)
        body = trained_iteration(self.source.catalog, project, iteration_id)
        name = publish_name.lower()
        if not re.fullmatch(api.DNS_LABEL, name) or len(name) > 63:
            raise CustomVisionError("A publish name here is 1 to 63 letters, digits and '-', starting and ending "
                                    "with a letter or digit (compared without case).", "BadRequestInvalidPublishName")
        for other in self.source.catalog.iterations.get(project.uid, []):
            taken = {(other.get("status") or {}).get("publishedName"), other["spec"].get("publishName")}
            if other is not body and name in taken:
                if not overwrite:
                    raise CustomVisionError(f"Another iteration is published as {publish_name!r}.",
                                            "BadRequestInvalidPublishName")
                await self._set_publish_name(namespace, other, None)
        await self._set_publish_name(namespace, body, name)
        deadline = asyncio.get_running_loop().time() + self.settings.publish_wait_seconds
        while (project.uid, name) not in self.source.catalog.published:  # answer once predictions can be served
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.25)
        return True

    async def _set_publish_name(self, namespace: str, body: dict[str, Any], name: str | None) -> None:
        stored = await self.resources.patch("Iteration", namespace, body["metadata"]["name"],
                                              {"spec": {"publishName": name}})
        await self.source.observe("iterations", stored)

    async def unpublish(self, namespace: str, project_id: str, iteration_id: str) -> None:
        project = self.lookup.project(namespace, project_id)
        body = self.source.catalog.iteration(project, iteration_id)
        if not body["spec"].get("publishName"):
            raise CustomVisionError(f"Iteration {iteration_id} is not published.", "BadRequestIterationNotPublished")
        await self._set_publish_name(namespace, body, None)

    def quick_test_target(self, namespace: str, project_id: str,
                          iteration_id: str | None) -> tuple[Project, dict[str, Any], str | None]:
        """The iteration a quick test runs (by default the newest trained one), and the name Triton serves it by
        when it is published (None: the gateway runs its exported model itself)."""
        project = self.lookup.project(namespace, project_id)
        if iteration_id:
            body = trained_iteration(self.source.catalog, project, iteration_id)
        else:
            trained = [b for b in self.source.catalog.iterations.get(project.uid, [])
                       if TRAINING_PHASES.get((b.get("status") or {}).get("phase") or "") == "Completed"]
            if not trained:
                raise NotFound("No iteration of this project has completed training.",
                               "NotFoundProjectDefaultIteration")
            body = max(trained, key=lambda b: b["metadata"].get("creationTimestamp", ""))
        served = [m.publish_name for (uid, _), m in self.source.catalog.published.items()
                  if uid == project.uid and m.iteration_uid == body["metadata"]["uid"]]
        return project, body, min(served) if served else None

