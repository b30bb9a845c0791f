"""What the operator knows of the cluster: one listing at start, then kept current by the watches' events.

Kopf's own indexes would do the same, but kopf holds back every object's handlers until every indexed object has
been indexed, waking each waiting object whenever another one is done: start-up time grows with the square of the
number of objects (minutes at 10,000 Iterations). One listing per resource before the first reconcile gives the
same guarantee, that no reconcile sees a half-known cluster, for the price of six requests (seven with Kueue)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Key = tuple[str, str]  # (namespace, name)


def _kept(body: Mapping[str, Any], status: bool = True) -> dict[str, Any]:
    """What is kept of an owned object: enough to observe it and to patch it under its resourceVersion."""
    meta = body.get("metadata") or {}
    fields = ("name", "namespace", "resourceVersion", "generation", "creationTimestamp", "labels")
    kept = {"kind": body.get("kind"), "spec": dict(body.get("spec") or {}),
            "metadata": {field: meta.get(field) for field in fields}}
    return {**kept, "status": dict(body.get("status") or {})} if status else kept


class Views:
    def __init__(self) -> None:
        self.projects: dict[Key, dict[str, Any]] = {}
        self.iterations: dict[Key, dict[str, Any]] = {}
        self._by_project: dict[Key, dict[str, dict[str, Any]]] = {}  # (namespace, project) -> name -> Iteration
        self.jobs: dict[Key, dict[str, Any]] = {}
        self._pods: dict[Key, dict[str, dict[str, Any]]] = {}  # (namespace, job) -> pod name -> pod
        self.deployments: dict[Key, dict[str, Any]] = {}
        self.services: dict[Key, dict[str, Any]] = {}
        self.workloads: dict[Key, dict[str, Any]] = {}  # Kueue's, by (namespace, the Job that owns it)

    def projects_in(self, namespace: str) -> list[dict[str, Any]]:
        return [body for (ns, _name), body in self.projects.items() if ns == namespace]

    def iterations_in(self, namespace: str) -> list[dict[str, Any]]:
        return [body for (ns, _name), body in self.iterations.items() if ns == namespace]

    def iterations_of(self, namespace: str, project: str) -> list[dict[str, Any]]:
        return list(self._by_project.get((namespace, project), {}).values())

    def pods_of(self, namespace: str, job: str) -> list[dict[str, Any]]:
        return list(self._pods.get((namespace, job), {}).values())

    def keep(self, kind: str, body: Mapping[str, Any], deleted: bool = False) -> None:
        """An object as listed or watched; `deleted` when the watch says it is gone."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if kind == "project":
            _set(self.projects, key, dict(body), deleted)
        elif kind == "iteration":
            if (old := self.iterations.get(key)) is not None:  # its projectRef may have changed
                self._by_project.get((key[0], old["spec"]["projectRef"]["name"]), {}).pop(key[1], None)
            _set(self.iterations, key, iteration := dict(body), deleted)
            if not deleted:
                self._by_project.setdefault((key[0], body["spec"]["projectRef"]["name"]), {})[key[1]] = iteration
        elif kind == "job":
            _set(self.jobs, key, _kept(body), deleted)
        elif kind == "pod":
            pods = self._pods.setdefault((key[0], (meta.get("labels") or {}).get("job-name", "")), {})
            _set(pods, key[1], _kept(body), deleted)
        elif kind == "deployment":
            _set(self.deployments, key, _kept(body), deleted)
        elif kind == "service":
            _set(self.services, key, _kept(body, status=False), deleted)
        elif kind == "workload":
            if job := owner_job(body):
                _set(self.workloads, (key[0], job), _kept(body), deleted)
        else:
            raise ValueError(f"not a watched kind: {kind}")


def owner_job(body: Mapping[str, Any]) -> str | None:
    """The Job that owns a Kueue Workload (Kueue makes one for each Job it queues)."""
    owners = (body.get("metadata") or {}).get("ownerReferences") or []
    return next((o["name"] for o in owners if o.get("kind") == "Job" and o.get("apiVersion") == "batch/v1"), None)


def _set(mapping: dict, key: Any, value: dict[str, Any], deleted: bool) -> None:
    if deleted:
        mapping.pop(key, None)
    else:
        mapping[key] = value
