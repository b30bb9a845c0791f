"""Custom Vision's domains and projects, free of HTTP: a project is a CustomVisionProject in the key's namespace,
registered in the label store; its Custom Vision view (project_wire) is what every service shows of it."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections import defaultdict
from datetime import datetime
from typing import Any

from kubevision.core import api
from kubevision.core.labelstore.store import LabelStore
from kubevision.core.limits import LimitsSource
from kubevision.core.names import name_problem
from kubevision.core.settings import GatewaySettings
from kubevision.core.storage import (
    STORAGE_FAULTS,
    ObjectStore,
    StorageUnavailable,
    default_dataset_prefix,
    delete_project_dataset,
)
from kubevision.gateway import domains, wire
from kubevision.gateway.backends.resources import AlreadyExists, ResourceWriter
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.catalog import Project
from kubevision.gateway.errors import CustomVisionError
from kubevision.gateway.services.lookup import ProjectLookup

log = logging.getLogger(__name__)

DOMAIN_ANNOTATION = "kubevision.io/domain-id"  # the Azure domain id the caller chose (several map to one domain)
PROJECT_NAME_LENGTH = 40  # leaves room for "-<n>" in iteration names, which name Triton models (63 at most)


def resource_name(display_name: str) -> str:
    """A Kubernetes name for a Custom Vision name: kept when valid, mapped otherwise (the display name is kept)."""
    name = re.sub(r"[^a-z0-9]+", "-", display_name.lower()).strip("-")[:PROJECT_NAME_LENGTH].rstrip("-")
    return name or "project"


def timestamp(value: str | None) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, Z for UTC) as a datetime; None when there is none."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def project_wire(project: Project) -> wire.Project:
    meta, spec = project.body["metadata"], project.body["spec"]
    chosen = (meta.get("annotations") or {}).get(DOMAIN_ANNOTATION)
    domain = domains.BY_ID.get(chosen or "") or domains.shown(project.type, spec.get("domain", "General"))
    classification = spec.get("classificationType") or ("Multiclass" if project.type == "Classification" else None)
    created = timestamp(meta.get("creationTimestamp"))
    return wire.Project(
        id=project.uid, name=spec.get("displayName", project.name), description=spec.get("description", ""),
        settings=wire.ProjectSettings(domain_id=domain.id, classification_type=classification,
                                      target_export_platforms=[], use_negative_set=True, image_processing_settings={}),
        created=created, last_modified=created, dr_mode_enabled=False, status="Succeeded",
    )


class ProjectService:
    def __init__(self, settings: GatewaySettings, source: CatalogSource, resources: ResourceWriter,
                 lookup: ProjectLookup, labels: LabelStore, objects: ObjectStore, limits: LimitsSource):
        self.settings, self.source, self.resources = settings, source, resources  # resources: where projects go
        self.lookup, self.labels, self.objects = lookup, labels, objects  # objects: the datasets bucket is made here
        self.limits = limits
        # One creation at a time per namespace, counted and created under its lock: two requests racing for the
        # last project of the limit get one project and one refusal.
        self._creating: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @staticmethod
    def domain_wire(info: domains.DomainInfo) -> wire.Domain:
        return wire.Domain(id=info.id, name=info.name, type=info.type.value, exportable=True, enabled=True,
                           exportable_platforms=["ONNX"])

    def projects(self, namespace: str) -> list[wire.Project]:
        found = [p for p in self.source.catalog.projects.values() if p.namespace == namespace]
        return [project_wire(p) for p in sorted(found, key=lambda p: p.body["metadata"].get("creationTimestamp", ""))]

    def get_project(self, namespace: str, project_id: str) -> wire.Project:
        return project_wire(self.lookup.project(namespace, project_id))

    def project_manifest(self, namespace: str, project_id: str) -> dict[str, Any]:
        """The project's CustomVisionProject as a manifest to keep in Git: applied, it describes the same resource
        (name, namespace, spec and the annotations that carry settings), without what the API server sets."""
        body = self.lookup.project(namespace, project_id).body
        metadata = body["metadata"]
        kept = {"name": metadata["name"], "namespace": metadata["namespace"]}
        for field in ("labels", "annotations"):
            values = {k: v for k, v in (metadata.get(field) or {}).items()
                      if not k.startswith("kubectl.kubernetes.io/")}  # e.g. kubectl's last applied configuration
            if values:
                kept[field] = values
        return {"apiVersion": api.API_VERSION, "kind": "CustomVisionProject", "metadata": kept, "spec": body["spec"]}

    @staticmethod
    def _project_spec(name: str, description: str | None, domain_id: str | None,
                      classification_type: str | None) -> tuple[dict[str, Any], domains.DomainInfo]:
        if not name or not name.strip() or len(name) > 256:
            raise CustomVisionError("A project's name must have 1 to 256 characters.", "BadRequestProjectName")
        problem = name_problem(name.strip())  # spaces around a name are dropped, as a tag's are
        if problem:
            raise CustomVisionError(f"The project name {name!r} {problem}.", "BadRequestProjectName")
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

    def check_project_limit(self, namespace: str) -> None:
        """BadRequestExceedProjectLimit when the namespace holds as many projects as its limit allows."""
        limit = self.limits.for_namespace(namespace).projects
        held = sum(1 for p in self.source.catalog.projects.values() if p.namespace == namespace)
        if limit is not None and held >= limit:
            raise CustomVisionError(f"The namespace has {held} projects and its limit is {limit}; delete a project "
                                    "first.", "BadRequestExceedProjectLimit")

    async def create_project(self, namespace: str, name: str, description: str | None, domain_id: str | None,
                             classification_type: str | None) -> wire.Project:
        spec, info = self._project_spec(name, description, domain_id, classification_type)
        async with self._creating[namespace]:
            self.check_project_limit(namespace)
            stored = await self._create_resource(namespace, name, spec, info)
            await self.source.observe("projects", stored)  # counted by the next creation
        await self.lookup.labelled(namespace, stored["metadata"]["uid"])
        return self.get_project(namespace, stored["metadata"]["uid"])

    async def _create_resource(self, namespace: str, name: str, spec: dict[str, Any],
                               info: domains.DomainInfo) -> dict[str, Any]:
        """The CustomVisionProject, under the name's resource name or, when taken, a suffixed one."""
        base = resource_name(name)
        await asyncio.to_thread(self.objects.ensure_bucket, self.settings.datasets_bucket)
        for attempt in range(20):
            candidate = base if attempt == 0 else f"{base}-{secrets.token_hex(2)}"
            body = {"apiVersion": api.API_VERSION, "kind": "CustomVisionProject",
                    "metadata": {"name": candidate, "namespace": namespace,
                                 "annotations": {DOMAIN_ANNOTATION: info.id}},
                    "spec": {**spec, "dataset": {"bucket": self.settings.datasets_bucket,
                                                 "prefix": default_dataset_prefix(namespace, candidate)}}}
            try:
                return await self.resources.create(body)
            except AlreadyExists:
                continue
        raise CustomVisionError(f"No free resource name for {name!r}.", "BadRequestProjectNameNotUnique")

    async def update_project(self, namespace: str, project_id: str, update: wire.Project) -> wire.Project:
        project = self.lookup.project(namespace, project_id)
        settings = update.settings or wire.ProjectSettings()
        spec, info = self._project_spec(update.name, update.description, settings.domain_id,
                                        settings.classification_type)
        if info.type.value != project.type:
            raise CustomVisionError("A project cannot change between Classification and ObjectDetection.",
                                    "BadRequestProjectUnsupportedDomainTypeChange")
        stored = await self.resources.patch("CustomVisionProject", namespace, project.name, {
            "metadata": {"annotations": {DOMAIN_ANNOTATION: info.id}}, "spec": spec})
        await self.source.observe("projects", stored)
        return self.get_project(namespace, project_id)

    async def delete_project(self, namespace: str, project_id: str) -> None:
        project = self.lookup.project(namespace, project_id)
        for iteration in self.source.catalog.iterations.get(project.uid, []):
            if iteration.spec.publish_name:
                raise CustomVisionError("The project has a published iteration; unpublish it first.",
                                        "BadRequestIterationIsPublished")
        for iteration in self.source.catalog.iterations.get(project.uid, []):
            await self.resources.delete("Iteration", namespace, iteration.metadata.name)
        await self.resources.delete("CustomVisionProject", namespace, project.name)
        await self.source.observe("projects", project.body, deleted=True)  # no lookup or export finds it now
        await asyncio.to_thread(self.labels.delete_project, project.uid)
        # Its dataset too, at once (the operator, or local mode's controller, does it again for any deletion):
        # a project made next under the same name comes back empty.
        others = [(p.dataset_bucket, p.dataset_prefix) for p in self.source.catalog.projects.values()
                  if p.namespace == namespace and p.uid != project.uid]
        location = api.DatasetLocation(bucket=project.dataset_bucket, prefix=project.dataset_prefix)
        try:
            await asyncio.to_thread(delete_project_dataset, self.objects, namespace, location, others)
        except (*STORAGE_FAULTS, StorageUnavailable) as error:  # the project is gone: its finalizer tries again
            log.warning("project %s/%s deleted; its dataset stays until S3 answers: %s", namespace, project.name,
                        error)
