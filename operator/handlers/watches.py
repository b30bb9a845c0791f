"""The watches: each event updates the views, then queues the resources it concerns (a Job's Iteration, a
Deployment's project and the Iterations it serves, the Iterations a training's end lets start, the Job's Iteration
of a Kueue Workload)."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from kubevision.core import api as kv
from kubevision.core.labels import ITERATION_LABEL, PROJECT_LABEL
from kubevision.operator import reconcile
from kubevision.operator.cluster import ITERATIONS, KUEUE_GROUP, KUEUE_VERSION, PROJECTS, WORKLOADS, Cluster, job_ended
from kubevision.operator.views import Views, owner_job
from kubevision.operator.workqueue import WorkQueue

TRITON = {"app.kubernetes.io/component": "triton", PROJECT_LABEL: kopf.PRESENT}
TRAINER = {ITERATION_LABEL: kopf.PRESENT}


def register(registry: kopf.OperatorRegistry, cluster: Cluster, views: Views, queue: WorkQueue) -> None:
    workers: list[asyncio.Task] = []
    project_resource = dict(group=kv.GROUP, version=kv.VERSION, plural=PROJECTS, registry=registry)
    iteration_resource = dict(group=kv.GROUP, version=kv.VERSION, plural=ITERATIONS, registry=registry)
    jobs = dict(group="batch", version="v1", plural="jobs", labels=TRAINER, registry=registry)
    pods = dict(group="", version="v1", plural="pods", labels=TRAINER, registry=registry)
    deployments = dict(group="apps", version="v1", plural="deployments", labels=TRITON, registry=registry)
    services = dict(group="", version="v1", plural="services", labels=TRITON, registry=registry)

    def wake_project(namespace: str, project: str, publishing_only: bool = False) -> None:
        queue.add(("project", namespace, project))
        for item in views.iterations_of(namespace, project):
            if not publishing_only or item["spec"].get("publishName"):
                queue.add(("iteration", namespace, item["metadata"]["name"]))

    def start_queue() -> None:
        """From within a kopf handler: the workers take its context, in which kopf posts Events."""
        if not workers:
            workers.append(asyncio.create_task(queue.run()))

    @kopf.on.startup(registry=registry)
    async def list_watched(**_: Any) -> None:
        """Know the whole cluster before the first reconcile, which must never take a Job it has not seen yet for a
        missing one (a project not seen yet for a deleted one)."""
        async for kind, body in cluster.list_watched(cluster.settings.namespaces):
            views.keep(kind, body)
        for kind, known in (("project", views.projects), ("iteration", views.iterations)):
            for namespace, name in known:
                queue.add((kind, namespace, name))

    @kopf.on.event(**project_resource)
    async def project_changed(type: str, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
        views.keep("project", body, deleted=type == "DELETED")
        start_queue()
        wake_project(namespace, name)  # its Iterations wait for it, or serve through it

    @kopf.on.event(**iteration_resource)
    async def iteration_changed(type: str, body: kopf.Body, namespace: str, name: str, spec: kopf.Spec,
                                **_: Any) -> None:
        views.keep("iteration", body, deleted=type == "DELETED")
        start_queue()
        queue.add(("iteration", namespace, name))
        if spec.get("publishName"):  # a claim of a publish name came, went or changed: the other claimants look
            for item in views.iterations_of(namespace, spec["projectRef"]["name"]):
                if item["spec"].get("publishName"):
                    queue.add(("iteration", namespace, item["metadata"]["name"]))

    @kopf.on.event(**jobs)
    async def job_changed(type: str, body: kopf.Body, namespace: str, labels: kopf.Labels, **_: Any) -> None:
        views.keep("job", body, deleted=type == "DELETED")
        queue.add(("iteration", namespace, labels[ITERATION_LABEL]))
        if type == "DELETED" or job_ended(body):  # a training slot is free: the Iterations waiting for one look
            for item in views.iterations_in(namespace):
                if reconcile.waiting_for_slot(item):
                    queue.add(("iteration", namespace, item["metadata"]["name"]))

    @kopf.on.event(**pods)
    async def pod_changed(type: str, body: kopf.Body, namespace: str, labels: kopf.Labels, **_: Any) -> None:
        views.keep("pod", body, deleted=type == "DELETED")
        queue.add(("iteration", namespace, labels[ITERATION_LABEL]))

    @kopf.on.event(**deployments)
    async def deployment_changed(type: str, body: kopf.Body, namespace: str, labels: kopf.Labels, **_: Any) -> None:
        views.keep("deployment", body, deleted=type == "DELETED")
        wake_project(namespace, labels[PROJECT_LABEL], publishing_only=True)

    @kopf.on.event(**services)
    async def service_changed(type: str, body: kopf.Body, namespace: str, labels: kopf.Labels, **_: Any) -> None:
        views.keep("service", body, deleted=type == "DELETED")
        wake_project(namespace, labels[PROJECT_LABEL], publishing_only=True)

    if cluster.settings.kueue_queue_name:
        @kopf.on.event(group=KUEUE_GROUP, version=KUEUE_VERSION, plural=WORKLOADS, registry=registry)
        async def workload_changed(type: str, body: kopf.Body, namespace: str, **_: Any) -> None:
            """Kueue's Workload of a training Job says why the Job waits; its Iteration shows it."""
            views.keep("workload", body, deleted=type == "DELETED")
            job = views.jobs.get((namespace, owner_job(body) or ""))
            if job is not None and ITERATION_LABEL in (job["metadata"].get("labels") or {}):
                queue.add(("iteration", namespace, job["metadata"]["labels"][ITERATION_LABEL]))

    @kopf.on.cleanup(registry=registry)
    async def stop_queue(**_: Any) -> None:
        for task in workers:
            task.cancel()
