"""Custom Vision's iterations, free of HTTP: training (an Iteration in the key's namespace, on a snapshot of the
label store's manifest), renaming, deleting, publishing and choosing what a quick test runs."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any

from kubevision.core import api, dataset
from kubevision.core.api import CustomVisionProject, Iteration
from kubevision.core.labelstore.export import ManifestExporter
from kubevision.core.labelstore.store import LabelStore
from kubevision.core.limits import LimitsSource
from kubevision.core.settings import GatewaySettings
from kubevision.core.training import NEGATIVE_TAG, min_images_per_tag
from kubevision.gateway import wire
from kubevision.gateway.backends.resources import AlreadyExists, ResourceWriter
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.backends.trained import TAG_IDS_ANNOTATION
from kubevision.gateway.catalog import Catalog, Project, annotations, created
from kubevision.gateway.errors import CustomVisionError, NotFound
from kubevision.gateway.services.lookup import ProjectLookup
from kubevision.gateway.services.projects import project_wire, timestamp
from kubevision.gateway.services.usage import UsageService

NAME_ANNOTATION = "kubevision.io/display-name"  # an Iteration's Custom Vision name
LABELS_ANNOTATION = "kubevision.io/labels-version"  # the labels an Iteration was asked to train on
# Custom Vision has no queued status: an iteration waiting for its turn to train is Training there.
TRAINING_PHASES = {"Pending": "Training", "Queued": "Training", "Training": "Training", "Trained": "Completed",
                   "Published": "Completed", "Failed": "Failed"}


def training_status(iteration: Iteration, unset: str = "Pending") -> str | None:
    """Custom Vision's status of an iteration (Training, Completed or Failed) from its phase (`unset` if none)."""
    return TRAINING_PHASES.get(iteration.status.phase or unset)


def trained_iteration(catalog: Catalog, project: Project, iteration_id: str) -> Iteration:
    """An iteration of the project that has completed training (BadRequestIterationIsNotTrained otherwise)."""
    iteration = catalog.iteration(project, iteration_id)
    if training_status(iteration) != "Completed":
        raise CustomVisionError(f"Iteration {iteration_id} has not completed training.",
                                "BadRequestIterationIsNotTrained")
    return iteration


def iteration_wire(project: Project, iteration: Iteration) -> wire.Iteration:
    meta, spec, status = iteration.metadata, iteration.spec, iteration.status
    project_view = project_wire(project)
    failed = next((c for c in status.conditions if c.status == "False" and status.phase == "Failed"), None)
    started, finished = status.training_started, status.training_finished
    training_type = spec.training_type or project.body["spec"].get("trainingDefaults", {}).get(
        "trainingType", "Quick")
    return wire.Iteration(
        id=meta.uid, name=annotations(iteration).get(NAME_ANNOTATION, meta.name),
        status=training_status(iteration) or "Training",
        created=timestamp(created(iteration)), last_modified=finished or timestamp(created(iteration)),
        trained_at=finished, project_id=project.uid, exportable=True,
        exportable_to=["ONNX"], domain_id=project_view.settings.domain_id,
        classification_type=project_view.settings.classification_type,
        training_type="Advanced" if training_type == "Advanced" else "Regular",
        reserved_budget_in_hours=(spec.budget_minutes or 0) // 60,
        training_time_in_minutes=int((finished - started).total_seconds() // 60) if started and finished else 0,
        publish_name=status.published_name or spec.publish_name,
        training_error_details=f"{failed.reason}: {failed.message}" if failed else None,
    )


class IterationService:
    def __init__(self, settings: GatewaySettings, source: CatalogSource, resources: ResourceWriter,
                 lookup: ProjectLookup, labels: LabelStore, exporter: ManifestExporter, limits: LimitsSource,
                 usage: UsageService | None = None):
        self.settings = settings
        self.limits = limits
        self.usage = usage  # what the namespace's Advanced trainings took of its budget
        self.source = source
        self.resources = resources
        self.lookup = lookup
        self.labels = labels
        self.exporter = exporter

    def iterations(self, namespace: str, project_id: str) -> list[wire.Iteration]:
        project = self.lookup.project(namespace, project_id)
        return [iteration_wire(project, i) for i in sorted(self.source.catalog.iterations.get(project.uid, []),
                                                           key=created)]

    def iteration(self, namespace: str, project_id: str, iteration_id: str) -> wire.Iteration:
        project = self.lookup.project(namespace, project_id)
        return iteration_wire(project, self.source.catalog.iteration(project, iteration_id))

    async def train(self, namespace: str, project_id: str, training_type: str | None, budget_hours: int | None,
                    force: bool) -> wire.Iteration:
        project = self.lookup.project(namespace, project_id)
        ref = await self.lookup.labelled(namespace, project_id)
        iterations = self.source.catalog.iterations.get(project.uid, [])
        if any(training_status(i) == "Training" for i in iterations):
            raise CustomVisionError("An iteration of this project is training already.",
                                    "BadRequestTrainingAlreadyInProgress")
        if training_type not in (None, "Regular", "Advanced"):
            raise CustomVisionError("trainingType is Regular or Advanced.", "BadRequest")
        limit = self.limits.for_namespace(namespace).iterations_per_project
        if limit is not None and len(iterations) >= limit:  # as Azure: the user deletes an old one to train again
            raise CustomVisionError(f"The project keeps {len(iterations)} iterations and its namespace's limit is "
                                    f"{limit}; delete an iteration first.", "BadRequestExceedIterationPerProjectLimit")
        if training_type == "Advanced":
            await self._check_advanced_budget(namespace, project, budget_hours)
        await self._check_trainable(project)
        version = (await asyncio.to_thread(self.labels.project, ref.id)).labels_version
        trained = {annotations(i).get(LABELS_ANNOTATION) for i in iterations if training_status(i, "") == "Completed"}
        if str(version) in trained and not force:
            raise CustomVisionError("Nothing changed since the last training; pass forceTrain to train again.",
                                    "BadRequestTrainingNotNeeded")
        await asyncio.to_thread(self.exporter.export, ref.id)  # the snapshot must see every label
        kept_ids = await self._kept_tag_ids(project.uid)
        spec: dict[str, Any] = {"projectRef": {"name": project.name},
                                "trainingType": "Advanced" if training_type == "Advanced" else "Quick"}
        if training_type == "Advanced" and budget_hours:
            spec["budgetMinutes"] = min(budget_hours * 60, 2880)
        number = len(iterations) + 1
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
        return iteration_wire(project, Iteration.model_validate(stored))

    async def _check_advanced_budget(self, namespace: str, project: Project, budget_hours: int | None) -> None:
        """An Advanced training reserves its budget (reservedBudgetInHours, else the project's default) from the
        namespace's Advanced hours of the month; one that does not fit is refused as Azure refuses a budget too
        small."""
        budget = self.limits.for_namespace(namespace).advanced_budget_hours
        if budget is None or self.usage is None:
            return
        minutes = (min(budget_hours * 60, 2880) if budget_hours else
                   CustomVisionProject.model_validate(project.body).spec.training_defaults.budget_minutes)
        taken = await self.usage.advanced_hours_taken(namespace, datetime.now(UTC))
        if taken + minutes / 60 > budget:
            raise CustomVisionError(
                f"An Advanced training of {minutes / 60:g} h does not fit the namespace's Advanced budget of "
                f"{budget:g} h a month: {taken:.2f} h of this month's are used or reserved by trainings that run.",
                "BadRequestReservedBudgetInHoursNotEnoughForAdvancedTraining")

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
        iteration = self.source.catalog.iteration(project, iteration_id)
        if not name or len(name) > 256:
            raise CustomVisionError("An iteration's name must have 1 to 256 characters.", "BadRequestIterationName")
        stored = await self.resources.patch("Iteration", namespace, iteration.metadata.name,
                                            {"metadata": {"annotations": {NAME_ANNOTATION: name}}})
        await self.source.observe("iterations", stored)
        return iteration_wire(project, Iteration.model_validate(stored))

    async def delete_iteration(self, namespace: str, project_id: str, iteration_id: str) -> None:
        project = self.lookup.project(namespace, project_id)
        iteration = self.source.catalog.iteration(project, iteration_id)
        if iteration.spec.publish_name:  # the wanted state: an unpublish in progress does not count
            raise CustomVisionError("The iteration is published; unpublish it first.",
                                    "BadRequestIterationIsPublished")
        await self.resources.delete("Iteration", namespace, iteration.metadata.name)
        await self.source.observe("iterations", iteration.model_dump(mode="json", by_alias=True), deleted=True)

    # ------------------------------------------------------------------------------------------------------------
    # publishing

    async def publish(self, namespace: str, project_id: str, iteration_id: str, publish_name: str,
                      overwrite: bool) -> bool:
        project = self.lookup.project(namespace, project_id)
        iteration = trained_iteration(self.source.catalog, project, iteration_id)
        name = publish_name.lower()
        if not re.fullmatch(api.DNS_LABEL, name) or len(name) > 63:
            raise CustomVisionError("A publish name here is 1 to 63 letters, digits and '-', starting and ending "
                                    "with a letter or digit (compared without case).", "BadRequestInvalidPublishName")
        for other in self.source.catalog.iterations.get(project.uid, []):
            taken = {other.status.published_name, other.spec.publish_name}
            if other is not iteration and name in taken:
                if not overwrite:
                    raise CustomVisionError(f"Another iteration is published as {publish_name!r}.",
                                            "BadRequestInvalidPublishName")
                await self._set_publish_name(namespace, other, None)
        await self._set_publish_name(namespace, iteration, name)
        deadline = asyncio.get_running_loop().time() + self.settings.publish_wait_seconds
        while (project.uid, name) not in self.source.catalog.published:  # answer once predictions can be served
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.25)
        return True

    async def _set_publish_name(self, namespace: str, iteration: Iteration, name: str | None) -> None:
        stored = await self.resources.patch("Iteration", namespace, iteration.metadata.name,
                                            {"spec": {"publishName": name}})
        await self.source.observe("iterations", stored)

    async def unpublish(self, namespace: str, project_id: str, iteration_id: str) -> None:
        project = self.lookup.project(namespace, project_id)
        iteration = self.source.catalog.iteration(project, iteration_id)
        if not iteration.spec.publish_name:
            raise CustomVisionError(f"Iteration {iteration_id} is not published.", "BadRequestIterationNotPublished")
        await self._set_publish_name(namespace, iteration, None)

    def quick_test_target(self, namespace: str, project_id: str,
                          iteration_id: str | None) -> tuple[Project, Iteration, str | None]:
        """The iteration a quick test runs (by default the newest trained one), and the name Triton serves it by
        when it is published (None: the gateway runs its exported model itself)."""
        project = self.lookup.project(namespace, project_id)
        if iteration_id:
            iteration = trained_iteration(self.source.catalog, project, iteration_id)
        else:
            trained = [i for i in self.source.catalog.iterations.get(project.uid, [])
                       if training_status(i, "") == "Completed"]
            if not trained:
                raise NotFound("No iteration of this project has completed training.",
                               "NotFoundProjectDefaultIteration")
            iteration = max(trained, key=created)
        served = [m.publish_name for (uid, _), m in self.source.catalog.published.items()
                  if uid == project.uid and m.iteration_uid == iteration.metadata.uid]
        return project, iteration, min(served) if served else None

