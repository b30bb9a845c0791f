"""The kopf handlers: watches that keep indexes and queue reconciles, and a work queue that runs them.

Everything a reconcile reads from the cluster comes from kopf indexes that the watches keep current (projects,
Iterations, training Jobs and their pods, Triton Deployments and Services), so a reconcile that finds nothing to do
sends no request. A watch event queues the resource it concerns, or its owner (a Job's Iteration, a Deployment's
project); with no event, a resource is reconciled again after `OperatorSettings.resync_seconds` (jittered): the
safety net, as controller-runtime's resync. No kopf daemon or timer: those cost a task, and a finalizer written at
start, per resource.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

import kopf

from kubevision.core import api as kv
from kubevision.core import conditions
from kubevision.core.api import CustomVisionProject, Iteration, IterationPhase
from kubevision.core.labels import ITERATION_LABEL, PROJECT_LABEL, triton_name
from kubevision.core.storage import STORAGE_FAULTS, DatasetLayout, DatasetStore, ObjectStore
from kubevision.core.training import iteration_id
from kubevision.operator import metrics, objects, reconcile
from kubevision.operator.cluster import DELETE_RETRIES, ITERATIONS, PROJECTS, Cluster, serving_observation
from kubevision.operator.observe import ensure_experiment, observe_dataset, sync_published_alias
from kubevision.operator.reconcile import IterationObservation
from kubevision.operator.views import Views
from kubevision.operator.workqueue import Key, WorkQueue

TRITON = {"app.kubernetes.io/component": "triton", PROJECT_LABEL: kopf.PRESENT}
TRAINER = {ITERATION_LABEL: kopf.PRESENT}
WORKERS = 16  # reconciles at once: enough to keep S3, MLflow and the API server busy when hundreds arrive together


def _status_patch(status) -> dict[str, Any]:
    """A merge patch of status: a field that is unset now is removed (null), not left as it was (an endpoint
    after unpublishing)."""
    present = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {field: present.get(field) for field in status.model_dump(by_alias=True)}


def _now() -> datetime:
    return datetime.now(UTC)


def _post_events(body: kopf.Body, outcome: reconcile.Outcome) -> None:
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])


def register(registry: kopf.OperatorRegistry, cluster: Cluster, retry_delay: float = 10,
             fault_retry: float = reconcile.RETRY_FAULT) -> None:
    """Every handler of the operator, on `registry` (one per operator instance: tests run several). In seconds:
    `retry_delay` between a deletion's tries and after an unforeseen error; `fault_retry` before a project whose
    S3 or MLflow failed, or whose dataset cannot train yet, is looked at again (no watch says when they change)."""

    views = Views()
    workers: list[asyncio.Task] = []
    training: set[tuple[str, str]] = set()  # Iterations whose Job runs, for the gauge
    project_resource = dict(group=kv.GROUP, version=kv.VERSION, plural=PROJECTS, registry=registry)
    iteration_resource = dict(group=kv.GROUP, version=kv.VERSION, plural=ITERATIONS, registry=registry)
    jobs = dict(group="batch", version="v1", plural="jobs", labels=TRAINER, registry=registry)
    pods = dict(group="", version="v1", plural="pods", labels=TRAINER, registry=registry)
    deployments = dict(group="apps", version="v1", plural="deployments", labels=TRITON, registry=registry)
    services = dict(group="", version="v1", plural="services", labels=TRITON, registry=registry)

    # ------------------------------------------------------------------------------------------------------------
    # Watches: each event updates the views, then queues the resources it concerns

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

    @kopf.on.cleanup(registry=registry)
    async def stop_queue(**_: Any) -> None:
        for task in workers:
            task.cancel()

    # ------------------------------------------------------------------------------------------------------------
    # Projects

    async def reconcile_project(namespace: str, name: str) -> float | None:
        body = views.projects.get((namespace, name))
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None  # gone, or going: its Triton goes with it (owner references)
        with metrics.reconcile_timer("CustomVisionProject"):
            project = CustomVisionProject.model_validate(body)
            dataset = await asyncio.to_thread(observe_dataset, project, cluster.s3)
            experiment_id, tracking_error = await asyncio.to_thread(ensure_experiment, project, cluster.tracking_uri)
            status, outcome = reconcile.reconcile_project(project, dataset, tracking_error, experiment_id, _now())
            await cluster.patch_status(PROJECTS, body, _status_patch(status))
            _post_events(body, outcome)
            triton = (namespace, triton_name(name))
            await cluster.repair_serving(body, views.iterations_of(namespace, name),
                                         views.deployments.get(triton), views.services.get(triton))
            return fault_retry if outcome.requeue_after is not None else math.inf

    # ------------------------------------------------------------------------------------------------------------
    # Iterations

    created: set[tuple[str, str]] = set()  # Jobs created whose watch event has not come yet

    async def reconcile_iteration(namespace: str, name: str) -> float | None:
        body = views.iterations.get((namespace, name))
        if body is None or body["metadata"].get("deletionTimestamp"):
            training.discard((namespace, name))
            return None  # gone, or going: the deletion handler takes it from here
        with metrics.reconcile_timer("Iteration"):
            iteration = Iteration.model_validate(body)
            project_name = iteration.spec.project_ref.name
            project_body = views.projects.get((namespace, project_name))
            project = CustomVisionProject.model_validate(project_body) if project_body else None
            siblings = views.iterations_of(namespace, project_name)
            job_name = iteration.status.training_job or iteration_id(iteration)
            job_body = views.jobs.get((namespace, job_name))
            if job_body is None and (namespace, job_name) in created:
                return math.inf  # not a missing Job, a late watch event: the event itself queues this Iteration
            created.discard((namespace, job_name))
            finished = iteration.status.phase == IterationPhase.FAILED or conditions.is_true(
                iteration.status.conditions, reconcile.TRAINED)
            observed = IterationObservation(
                project=project,
                job=None if finished else await cluster.observe_job(  # a finished Job is not looked at again
                    namespace, job_name, job_body, views.pods_of(namespace, job_name)),
                publish_owner=reconcile.publish_owners(siblings).get(iteration.spec.publish_name or ""),
                serving=serving_observation(views.deployments.get((namespace, triton_name(project_name))),
                                            project_name, namespace),
            )
            plan = reconcile.reconcile_iteration(iteration, observed, _now())
            if plan.train is not None:
                layout = DatasetLayout.of(project.spec.dataset)
                await asyncio.to_thread(DatasetStore(ObjectStore(cluster.s3), layout).snapshot, plan.train.name)
                job = objects.training_job(plan.train, body, cluster.settings, cluster.s3)
                await cluster.create_or_adopt(cluster.batch.create_namespaced_job, namespace, job)
                created.add((namespace, plan.train.name))
            await cluster.patch_status(ITERATIONS, body, _status_patch(plan.status))
            _post_events(body, plan.outcome)
            await asyncio.to_thread(sync_published_alias, iteration, iteration.status, plan.status,
                                    cluster.tracking_uri)
            served = observed.serving is not None and name in observed.serving.models
            if project_body is not None and plan.serve != served:
                await cluster.serve_model(project_body, name, plan.serve)
            (training.add if plan.status.phase == IterationPhase.TRAINING else training.discard)((namespace, name))
            metrics.RUNNING_JOBS.set(len(training))
            return math.inf  # the Job, its pods, the project and Triton queue this Iteration through their watches

    async def reconcile_key(key: Key) -> float | None:
        kind, namespace, name = key
        try:
            return await (reconcile_project if kind == "project" else reconcile_iteration)(namespace, name)
        except kopf.TemporaryError as error:
            return error.delay

    queue = WorkQueue(reconcile_key, cluster.settings.resync_seconds, WORKERS, retry_delay)

    @kopf.on.delete(**iteration_resource)
    async def iteration_deleted(body: kopf.Body, namespace: str, name: str, retry: int, **_: Any) -> None:
        """The served model goes: Triton stops loading it and its folder leaves the model repository. MLflow keeps
        the run and the registered version, without the alias of its publish name. With S3 gone, a few retries, then
        a Warning, and deletion goes on."""
        training.discard((namespace, name))
        project = body["spec"]["projectRef"]["name"]
        project_body = await cluster.get_custom(PROJECTS, namespace, project)
        if project_body is not None:
            await cluster.serve_model(project_body, name, wanted=False)
        iteration = Iteration.model_validate(body)
        await asyncio.to_thread(sync_published_alias, iteration, iteration.status, kv.IterationStatus(),
                                cluster.tracking_uri)
        try:
            await asyncio.to_thread(cluster.remove_served_model, namespace, project, name)
        except STORAGE_FAULTS as error:
            if retry + 1 < DELETE_RETRIES:
                raise kopf.TemporaryError(f"S3: {error}", delay=retry_delay) from error
            kopf.warn(body, reason="ModelNotRemoved",
                      message=f"could not remove the model from S3 after {DELETE_RETRIES} tries: {error}")
