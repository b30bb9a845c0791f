"""What the gateway may serve, held in memory: projects by uid, their published iterations by publish name, and the
keys of each namespace. A source (local or Kubernetes) rebuilds it from resources as they change; requests only
read it, so no request waits on a lookup.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from kubevision.core.api import Iteration
from kubevision.core.labels import model_name
from kubevision.core.storage import dataset_prefix_problem
from kubevision.gateway.errors import NotFound, Unauthorized

log = logging.getLogger(__name__)

KeyKind = Literal["prediction", "training"]
KEY_HEADERS: dict[KeyKind, str] = {"prediction": "Prediction-Key", "training": "Training-Key"}


@dataclass(frozen=True)
class NamespaceKeys:
    prediction: str = ""
    training: str = ""


@dataclass(frozen=True)
class Project:
    uid: str
    namespace: str
    name: str
    type: str  # Classification | ObjectDetection
    dataset_bucket: str
    dataset_prefix: str
    body: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # as stored: spec, annotations


@dataclass(frozen=True)
class PublishedModel:
    """A published iteration: the Triton model (named after the Iteration's uid, unique in every Triton:
    core.labels.model_name) and where it is served."""

    publish_name: str
    iteration_uid: str
    model: str
    endpoint: str
    model_uri: str


@dataclass(frozen=True)
class Catalog:
    projects: dict[str, Project] = field(default_factory=dict)  # by uid
    published: dict[tuple[str, str], PublishedModel] = field(default_factory=dict)  # by (project uid, publish name)
    keys: dict[str, NamespaceKeys] = field(default_factory=dict)  # by namespace
    iterations: dict[str, list[Iteration]] = field(default_factory=dict)  # every Iteration, by project uid

    @classmethod
    def build(cls, projects: Iterable[dict[str, Any]], iterations: Iterable[dict[str, Any]],
              keys: dict[str, NamespaceKeys]) -> Catalog:
        """From CustomVisionProject and Iteration bodies, as the API server (or the local store) holds them."""
        by_uid: dict[str, Project] = {}
        uid_of: dict[tuple[str, str], str] = {}
        for body in projects:
            meta, spec = body["metadata"], body.get("spec") or {}
            if not meta.get("uid") or meta.get("deletionTimestamp"):
                continue
            dataset = spec.get("dataset") or {}
            refused = dataset_prefix_problem(meta["namespace"], dataset.get("prefix", ""))
            if refused is not None:  # served by no route: it could read or rewrite another namespace's dataset
                log.warning("CustomVisionProject %s/%s is not served: %s", meta["namespace"], meta["name"], refused)
                continue
            project = Project(meta["uid"], meta["namespace"], meta["name"], spec.get("type", "Classification"),
                              dataset.get("bucket", ""), dataset.get("prefix", ""), body)
            by_uid[project.uid] = project
            uid_of[(project.namespace, project.name)] = project.uid
        published: dict[tuple[str, str], PublishedModel] = {}
        all_iterations: dict[str, list[Iteration]] = {}
        for body in iterations:
            meta, status = body["metadata"], body.get("status") or {}
            project_uid = uid_of.get((meta["namespace"], (body.get("spec") or {}).get("projectRef", {}).get("name")))
            if project_uid is not None and meta.get("uid") and not meta.get("deletionTimestamp"):
                try:
                    all_iterations.setdefault(project_uid, []).append(Iteration.model_validate(body))
                except ValidationError as error:  # admission admits none such; one written around it is not served
                    log.warning("Iteration %s/%s is not valid: %s", meta["namespace"], meta["name"], error)
                    continue
            name = status.get("publishedName")
            if (project_uid is None or status.get("phase") != "Published" or not name or not status.get("endpoint")
                    or not meta.get("uid") or meta.get("deletionTimestamp")):
                continue
            published[(project_uid, name)] = PublishedModel(
                name, meta["uid"], model_name(meta["uid"]), status["endpoint"], status.get("modelUri") or "")
        return cls(by_uid, published, dict(keys), all_iterations)

    def namespace_of(self, kind: KeyKind, key: str | None) -> str:
        """The namespace a key belongs to. Every namespace's key is compared, in constant time, so neither the
        answer's timing nor its content tells a wrong key from another team's."""
        if not key:
            raise Unauthorized(f"Access denied: the {KEY_HEADERS[kind]} header is missing.")
        found = None
        for namespace, keys in self.keys.items():
            wanted = getattr(keys, kind)
            if wanted and hmac.compare_digest(wanted.encode(), key.encode()):
                found = namespace
        if found is None:
            raise Unauthorized(f"Access denied: the {KEY_HEADERS[kind]} is not valid.")
        return found

    def project(self, namespace: str, project_id: str) -> Project:
        """A project of the caller's namespace; another namespace's project is as unknown as a missing one."""
        project = self.projects.get(project_id.lower())
        if project is None or project.namespace != namespace:
            raise NotFound(f"Project {project_id} not found.", "NotFoundProject")
        return project

    def find_iteration(self, project: Project, iteration_id: str) -> Iteration | None:
        """An Iteration of the project, by uid; None if it has none such."""
        return next((i for i in self.iterations.get(project.uid, []) if i.metadata.uid == iteration_id.lower()), None)

    def iteration(self, project: Project, iteration_id: str) -> Iteration:
        """An Iteration of the project, by uid; the Custom Vision 404 if it has none such."""
        found = self.find_iteration(project, iteration_id)
        if found is None:
            raise NotFound(f"Iteration {iteration_id} not found.", "NotFoundIteration")
        return found

    def published_model(self, project: Project, publish_name: str) -> PublishedModel:
        model = self.published.get((project.uid, publish_name.lower()))
        if model is None:
            raise NotFound(f"No iteration of project {project.uid} is published as {publish_name!r}.",
                           "NotFoundIteration")
        return model


def annotations(resource: Iteration) -> dict[str, str]:
    """The resource's metadata.annotations (ObjectMeta keeps what it does not name as extra fields)."""
    return (resource.metadata.model_extra or {}).get("annotations") or {}


def created(resource: Iteration) -> str:
    """metadata.creationTimestamp as the API server (or the local store) wrote it; sorts in time order."""
    return (resource.metadata.model_extra or {}).get("creationTimestamp") or ""
