"""The kopf handlers: one reconcile loop (a kopf daemon) per project and per Iteration, woken by the watches.

Everything a reconcile reads from the cluster comes from kopf indexes that the watches keep current (projects,
Iterations, training Jobs and their pods, Triton Deployments and Services), so a reconcile that finds nothing to do
sends no request. A watch event of an owned object wakes its owner's loop; with no event, a loop reconciles again
after `OperatorSettings.resync_seconds` (jittered): the safety net, as controller-runtime's resync.
"""

from __future__ import annotations

import asyncio
import logging
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
from kubevision.operator.wakeups import Key, Wakeups, jittered, sleep

log = logging.getLogger(__name__)

TRITON = {"app.kubernetes.io/component": "triton", PROJECT_LABEL: kopf.PRESENT}
TRAINER = {ITERATION_LABEL: kopf.PRESENT}


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


def _one(index: kopf.Index, key: Any) -> dict[str, Any] | None:
    return next(iter(index.get(key, [])), None)


def _watched(body: kopf.Body, status: bool = True) -> dict[str, Any]:
    """What an index keeps of an owned object: enough to observe it and to patch it under its resourceVersion."""
    meta = body.get("metadata", {})
    fields = ("name", "namespace", "resourceVersion", "generation", "creationTimestamp")
    kept = {"kind": body.get("kind"), "spec": dict(body.get("spec") or {}),
            "metadata": {field: meta.get(field) for field in fields}}
    return {**kept, "status": dict(body.get("status") or {})} if status else kept


def register(registry: kopf.OperatorRegistry, cluster: Cluster, retry_delay: float = 10,
             fault_retry: float = reconcile.RETRY_FAULT) -> None:
    """Every handler of the operator, on `registry` (one per operator instance: tests run several). In seconds:
    `retry_delay` between a deletion's tries and after an unforeseen error; `fault_retry` before a project whose
    S3 or MLflow failed, or whose dataset cannot train yet, is looked at again (no watch says when they change)."""

    wakeups = Wakeups()
    resync = cluster.settings.resync_seconds
    training: set[tuple[str, str]] = set()  # Iterations whose Job runs, for the gauge
    project_resource = dict(group=kv.GROUP, version=kv.VERSION, plural=PROJECTS, registry=registry)
    iteration_resource = dict(group=kv.GROUP, version=kv.VERSION, plural=ITERATIONS, registry=registry)
    jobs = dict(group="batch", version="v1", plural="jobs", labels=TRAINER, registry=registry)
    pods = dict(group="", version="v1", plural="pods", labels=TRAINER, registry=registry)
    deployments = dict(group="apps", version="v1", plural="deployments", labels=TRITON, registry=registry)
    services = dict(group="", version="v1", plural="services", labels=TRITON, registry=registry)

    # ------------------------------------------------------------------------------------------------------------
    # Indexes: the watches' view of the cluster

    @kopf.index(**iteration_resource, id="iterations_by_project")  # the name handlers take it by
    def iterations_by_project(namespace: str, name: str, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status,
                              **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
        """Each project's Iterations, kept up to date from the watch: no list request on every reconcile."""
        metadata = {"name": name, "creationTimestamp": meta.get("creationTimestamp"),
                    "deletionTimestamp": meta.get("deletionTimestamp")}
        return {(namespace, spec["projectRef"]["name"]): {"metadata": metadata, "spec": dict(spec),
                                                          "status": dict(status)}}

    @kopf.index(**project_resource, id="projects")
    def projects(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
        return {(namespace, name): dict(body)}

    @kopf.index(**jobs, id="training_jobs")
    def training_jobs(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict]:
        return {(namespace, name): _watched(body)}

    @kopf.index(**pods, id="training_pods")
    def training_pods(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict]:
        return {(namespace, labels.get("job-name", "")): _watched(body)}

    @kopf.index(**deployments, id="triton_deployments")
    def triton_deployments(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict]:
        return {(namespace, name): _watched(body)}

    @kopf.index(**services, id="triton_services")
    def triton_services(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict]:
        return {(namespace, name): _watched(body, status=False)}

    # ------------------------------------------------------------------------------------------------------------
    # Wake-ups: a change wakes the loops of the resources it concerns (indexes are updated before these run)

    def wake_project(namespace: str, project: str, index: kopf.Index, publishing_only: bool = False) -> None:
        wakeups.wake(("project", namespace, project))
        for item in index.get((namespace, project), []):
            if not publishing_only or item["spec"].get("publishName"):
                wakeups.wake(("iteration", namespace, item["metadata"]["name"]))

    @kopf.on.event(**project_resource)
    def project_changed(namespace: str, name: str, iterations_by_project: kopf.Index, **_: Any) -> None:
        wake_project(namespace, name, iterations_by_project)  # its Iterations wait for it, or serve through it

    @kopf.on.event(**iteration_resource)
    def iteration_changed(namespace: str, name: str, spec: kopf.Spec, iterations_by_project: kopf.Index,
                          **_: Any) -> None:
        wakeups.wake(("iteration", namespace, name))
        if spec.get("publishName"):  # a claim of a publish name came, went or changed: the other claimants look
            for item in iterations_by_project.get((namespace, spec["projectRef"]["name"]), []):
                if item["spec"].get("publishName"):
                    wakeups.wake(("iteration", namespace, item["metadata"]["name"]))

    @kopf.on.event(**jobs)
    @kopf.on.event(**pods)
    def training_changed(namespace: str, labels: kopf.Labels, **_: Any) -> None:
        wakeups.wake(("iteration", namespace, labels[ITERATION_LABEL]))

    @kopf.on.event(**deployments)
    @kopf.on.event(**services)
    def triton_changed(namespace: str, labels: kopf.Labels, iterations_by_project: kopf.Index, **_: Any) -> None:
        wake_project(namespace, labels[PROJECT_LABEL], iterations_by_project, publishing_only=True)

    async def loop(key: Key, stopped: kopf.DaemonStopped, reconcile_once) -> None:
        """Reconcile, then sleep until woken, until a retry is due, or until the resync."""
        with wakeups.registered(key) as flag:
            while not stopped:
                try:
                    delay = await reconcile_once()
                except kopf.TemporaryError as error:
                    delay = error.delay
                except Exception:  # an unforeseen error of this resource alone: logged, tried again
                    log.exception("reconciling %s/%s/%s failed", *key)
                    delay = retry_delay
                await sleep(flag, min(delay or math.inf, jittered(resync)))

    # ------------------------------------------------------------------------------------------------------------
    # Projects

    @kopf.daemon(**project_resource, cancellation_timeout=1.0)
    async def project_loop(body: kopf.Body, namespace: str, name: str, stopped: kopf.DaemonStopped,
                           iterations_by_project: kopf.Index, triton_deployments: kopf.Index,
                           triton_services: kopf.Index, **_: Any) -> None:
        async def reconcile_once() -> float | None:
            with metrics.reconcile_timer("CustomVisionProject"):
                snapshot = dict(body)  # the live body moves on while this pass awaits
                project = CustomVisionProject.model_validate(snapshot)
                dataset = await asyncio.to_thread(observe_dataset, project, cluster.s3)
                experiment_id, tracking_error = await asyncio.to_thread(ensure_experiment, project,
                                                                        cluster.tracking_uri)
                status, outcome = reconcile.reconcile_project(project, dataset, tracking_error, experiment_id, _now())
                await cluster.patch_status(PROJECTS, snapshot, _status_patch(status))
                _post_events(body, outcome)
                triton = (namespace, triton_name(name))
                await cluster.repair_serving(snapshot, list(iterations_by_project.get((namespace, name), [])),
                                             _one(triton_deployments, triton), _one(triton_services, triton))
                return fault_retry if outcome.requeue_after is not None else None

        await loop(("project", namespace, name), stopped, reconcile_once)

    # ------------------------------------------------------------------------------------------------------------
    # Iterations

    @kopf.daemon(**iteration_resource, cancellation_timeout=1.0)
    async def iteration_loop(body: kopf.Body, namespace: str, name: str, stopped: kopf.DaemonStopped,
                             iterations_by_project: kopf.Index, projects: kopf.Index, training_jobs: kopf.Index,
                             training_pods: kopf.Index, triton_deployments: kopf.Index, **_: Any) -> None:
        created: set[str] = set()  # Jobs this loop created that their watch has not shown yet

        async def reconcile_once() -> float | None:
            with metrics.reconcile_timer("Iteration"):
                snapshot = dict(body)  # the live body moves on while this pass awaits
                iteration = Iteration.model_validate(snapshot)
                project_name = iteration.spec.project_ref.name
                project_body = _one(projects, (namespace, project_name))
                project = CustomVisionProject.model_validate(project_body) if project_body else None
                siblings = list(iterations_by_project.get((namespace, project_name), []))
                job_name = iteration.status.training_job or iteration_id(iteration)
                job_body = _one(training_jobs, (namespace, job_name))
                if job_body is None and job_name in created:
                    return None  # not a missing Job, a late watch event: the event itself wakes this loop
                created.discard(job_name)
                finished = iteration.status.phase == IterationPhase.FAILED or conditions.is_true(
                    iteration.status.conditions, reconcile.TRAINED)
                observed = IterationObservation(
                    project=project,
                    job=None if finished else await cluster.observe_job(  # a finished Job is not looked at again
                        namespace, job_name, job_body, list(training_pods.get((namespace, job_name), []))),
                    publish_owner=reconcile.publish_owners(siblings).get(iteration.spec.publish_name or ""),
                    serving=serving_observation(_one(triton_deployments, (namespace, triton_name(project_name))),
                                                project_name, namespace),
                )
                plan = reconcile.reconcile_iteration(iteration, observed, _now())
                if plan.train is not None:
                    layout = DatasetLayout.of(project.spec.dataset)
                    await asyncio.to_thread(DatasetStore(ObjectStore(cluster.s3), layout).snapshot, plan.train.name)
                    job = objects.training_job(plan.train, snapshot, cluster.settings, cluster.s3)
                    await cluster.create_or_adopt(cluster.batch.create_namespaced_job, namespace, job)
                    created.add(plan.train.name)
                await cluster.patch_status(ITERATIONS, snapshot, _status_patch(plan.status))
                _post_events(body, plan.outcome)
                await asyncio.to_thread(sync_published_alias, iteration, iteration.status, plan.status,
                                        cluster.tracking_uri)
                served = observed.serving is not None and name in observed.serving.models
                if project_body is not None and plan.serve != served:
                    await cluster.serve_model(project_body, name, plan.serve)
                (training.add if plan.status.phase == IterationPhase.TRAINING else training.discard)((namespace, name))
                metrics.RUNNING_JOBS.set(len(training))
                return None  # the Job, its pods, the project and Triton wake this loop through their watches

        await loop(("iteration", namespace, name), stopped, reconcile_once)

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
