"""The Kubernetes driver of the reconcile core: kopf handlers that observe the cluster and S3, ask the core, and
apply its plan idempotently (deterministic names, owner references, create-or-adopt, merge patches), with Events.

Handlers run on create, update and resume, and on timers: a timer is the level-based repair of drift (a deleted
Deployment comes back) and the poll of a running training Job.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubevision.core import api as kv
from kubevision.core import results
from kubevision.core.api import CustomVisionProject, Iteration
from kubevision.core.labels import triton_name
from kubevision.core.settings import OperatorSettings, S3Settings
from kubevision.core.storage import STORAGE_FAULTS, DatasetLayout, DatasetStore, ModelRepositoryLayout, ObjectStore
from kubevision.core.training import iteration_id
from kubevision.operator import metrics, objects, reconcile
from kubevision.operator.observe import ensure_experiment, observe_dataset
from kubevision.operator.reconcile import IterationObservation, JobObservation, ServingObservation

log = logging.getLogger(__name__)

PROJECTS, ITERATIONS = "customvisionprojects", "iterations"
MERGE_PATCH = "application/merge-patch+json"
FINALIZER = "kubevision.io/finalizer"
DELETE_RETRIES = 3  # then the Iteration goes anyway, with a Warning Event


def operator_settings() -> kopf.OperatorSettings:
    """Progress and diff-base in annotations: the CRDs' structural schemas would prune kopf's status fields."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubevision.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="kubevision.io")
    settings.posting.level = logging.WARNING  # Events come from the core's transitions, not from log lines
    settings.scanning.disabled = True  # the CRDs are installed before the operator starts (docs/operator.md)
    # A timer caught mid-reconcile by a deletion is looked at again this often: kopf's default (60 s) would hold
    # every deletion that long behind the finalizer.
    settings.background.cancellation_polling = 1.0
    return settings


def mlflow_request_limits(settings: OperatorSettings) -> dict[str, str]:
    """The environment that bounds MLflow's client, which reads it on every request. A hung or unreachable MLflow
    must not hold a handler, and a worker thread, for minutes (the client waits 120 s and retries 7 times): fail
    fast, the timers try again."""
    return {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(settings.mlflow_timeout_seconds),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}


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


class Cluster:
    """Reads and writes through the Kubernetes API, S3 and MLflow, for the handlers."""

    def __init__(self, api_client: client.ApiClient, settings: OperatorSettings, s3: S3Settings,
                 tracking_uri: str):
        self.custom = client.CustomObjectsApi(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.settings = settings
        self.s3 = s3
        self.tracking_uri = tracking_uri

    # ------------------------------------------------------------------------------------------------------------
    # custom resources

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.custom.get_namespaced_custom_object(kv.GROUP, kv.VERSION, namespace, plural, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    # ------------------------------------------------------------------------------------------------------------
    # observations

    async def observe_job(self, namespace: str, name: str) -> JobObservation | None:
        try:
            job = await self.batch.read_namespaced_job(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        conditions = {c.type: c for c in (job.status.conditions or [])} if job.status else {}
        failed = conditions.get("Failed")
        pods = await self.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}")
        message, waiting_reason, waiting_message = "", "", ""
        for pod in sorted(pods.items, key=lambda p: p.metadata.creation_timestamp or _now()):
            for container in (pod.status.container_statuses or []) if pod.status else []:
                state = container.state
                if state and state.terminated and state.terminated.message:
                    message = state.terminated.message
                if state and state.waiting:
                    waiting_reason, waiting_message = state.waiting.reason or "", state.waiting.message or ""
        result = await asyncio.to_thread(results.read_termination_message, message, ObjectStore(self.s3),
                                         namespace, name) if message else None
        status = job.status
        return JobObservation(
            name=name,
            active=bool(status and status.active),
            succeeded="Complete" in conditions and conditions["Complete"].status == "True",
            failed=failed is not None and failed.status == "True",
            failure_reason=(failed.reason or "") if failed else "",
            failure_message=(failed.message or "") if failed else "",
            waiting_reason=waiting_reason, waiting_message=waiting_message, result=result,
            started=status.start_time if status else None, finished=status.completion_time if status else None,
        )

    async def observe_serving(self, namespace: str, project: str) -> ServingObservation | None:
        raw = await self._read(self.apps.read_namespaced_deployment, triton_name(project), namespace)
        if raw is None:
            return None
        status = raw.get("status") or {}
        ready = (status.get("readyReplicas") or 0) >= 1 and (status.get("observedGeneration") or 0) >= (
            raw["metadata"].get("generation") or 0)
        message = "" if ready else f"Deployment {triton_name(project)}: {status.get('readyReplicas') or 0} ready"
        return ServingObservation(ready=ready, models=objects.loaded_models(raw),
                                  endpoint=objects.triton_endpoint(project, namespace), message=message,
                                  version=raw["metadata"].get("resourceVersion", ""))

    # ------------------------------------------------------------------------------------------------------------
    # actions

    async def create_or_adopt(self, create, namespace: str, manifest: dict[str, Any]) -> bool:
        """Create; an object of that name already there is adopted as it is. Returns whether it was created."""
        try:
            await create(namespace, manifest)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    async def serve_model(self, project_body: dict[str, Any], model: str, wanted: bool) -> None:
        """Add or remove one Iteration's model in the project's Triton; with no model left, Triton goes. Each
        Iteration edits only its own entry, and the patch carries the resourceVersion it read: a watch index that
        lags a moment behind can never unload a sibling's model."""
        meta = project_body["metadata"]
        name, namespace = triton_name(meta["name"]), meta["namespace"]
        current = await self.observe_serving(namespace, meta["name"])
        models = set(current.models) if current else set()
        models = models | {model} if wanted else models - {model}
        if current is not None and models == set(current.models):
            return
        if not models:
            await self.remove_serving(name, namespace)
        elif current is None:
            await self.create_serving(project_body, models)
        else:
            deployment = objects.triton_deployment(project_body, sorted(models), self.settings, self.s3)
            try:
                await self.apps.patch_namespaced_deployment(
                    name, namespace, {"metadata": {"resourceVersion": current.version}, "spec": deployment["spec"]},
                    _content_type=MERGE_PATCH)
            except ApiException as error:
                if error.status == 409:  # edited meanwhile: read it again soon
                    raise kopf.TemporaryError(f"Deployment {name} changed meanwhile", delay=1) from error
                raise

    async def repair_serving(self, project_body: dict[str, Any], iterations: list[dict[str, Any]]) -> None:
        """Drift repair: a project with published models keeps its Triton as the operator made it. A deleted
        Deployment or Service comes back; an edited one (scaled to 0, another image) is set back. Which models it
        loads is each Iteration's to change (serve_model), so those are kept as found."""
        meta = project_body["metadata"]
        name, namespace = triton_name(meta["name"]), meta["namespace"]
        deployment = await self._read(self.apps.read_namespaced_deployment, name, namespace)
        if deployment is None:
            if models := reconcile.served_models(iterations):
                await self.create_serving(project_body, models)
            return
        wanted = objects.triton_deployment(project_body, list(objects.loaded_models(deployment)), self.settings,
                                           self.s3)
        await self._restore(self.apps.patch_namespaced_deployment, deployment, wanted)
        service = await self._read(self.core.read_namespaced_service, name, namespace)
        if service is None:
            await self.create_or_adopt(self.core.create_namespaced_service, namespace,
                                       objects.triton_service(project_body))
        else:
            await self._restore(self.core.patch_namespaced_service, service, objects.triton_service(project_body))

    async def _read(self, read, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            return self.custom.api_client.sanitize_for_serialization(await read(name, namespace))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def _restore(self, patch, actual: dict[str, Any], wanted: dict[str, Any]) -> None:
        """Set an edited object's spec back, unless it changed again since it was read (then the next pass)."""
        if not objects.drifted(wanted["spec"], actual["spec"]):
            return
        meta = actual["metadata"]
        log.info("%s %s/%s was edited; setting it back", actual.get("kind", "object"), meta["namespace"], meta["name"])
        try:
            await patch(meta["name"], meta["namespace"], {
                "metadata": {"resourceVersion": meta["resourceVersion"]}, "spec": wanted["spec"]},
                _content_type=MERGE_PATCH)
        except ApiException as error:
            if error.status != 409:
                raise

    async def create_serving(self, project_body: dict[str, Any], models: set[str] | list[str]) -> None:
        namespace = project_body["metadata"]["namespace"]
        deployment = objects.triton_deployment(project_body, sorted(models), self.settings, self.s3)
        await self.create_or_adopt(self.apps.create_namespaced_deployment, namespace, deployment)
        await self.create_or_adopt(self.core.create_namespaced_service, namespace,
                                   objects.triton_service(project_body))

    async def remove_serving(self, name: str, namespace: str) -> None:
        for delete in (self.apps.delete_namespaced_deployment, self.core.delete_namespaced_service):
            try:
                await delete(name, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise

    def remove_served_model(self, namespace: str, project: str, model: str) -> None:
        store = ObjectStore(self.s3)
        repository = ModelRepositoryLayout(self.s3.models_bucket, namespace, project)
        for key in store.keys(repository.bucket, repository.model_key(model, "")):
            store.client.remove_object(repository.bucket, key)


# ----------------------------------------------------------------------------------------------------------------
# Handlers


def register(registry: kopf.OperatorRegistry, cluster: Cluster, project_interval: float = 30,
             iteration_interval: float = reconcile.POLL_TRAINING, retry_delay: float = 10) -> None:
    """Every handler of the operator, on `registry` (one per operator instance: tests run several). The timers
    repair drift and follow running Jobs; intervals and the delay between a deletion's retries are in seconds."""

    project_resource = dict(group=kv.GROUP, version=kv.VERSION, plural=PROJECTS, registry=registry)
    iteration_resource = dict(group=kv.GROUP, version=kv.VERSION, plural=ITERATIONS, registry=registry)

    @kopf.index(**iteration_resource, id="iterations_by_project")  # the name handlers take it by
    def iterations_by_project(namespace: str, name: str, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status,
                              **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
        """Each project's Iterations, kept up to date from the watch: no list request on every reconcile."""
        metadata = {"name": name, "creationTimestamp": meta.get("creationTimestamp"),
                    "deletionTimestamp": meta.get("deletionTimestamp")}
        return {(namespace, spec["projectRef"]["name"]): {"metadata": metadata, "spec": dict(spec),
                                                          "status": dict(status)}}

    def siblings_of(index: kopf.Index, namespace: str, project: str) -> list[dict[str, Any]]:
        return list(index.get((namespace, project), []))

    @kopf.on.resume(**project_resource)
    @kopf.on.create(**project_resource)
    @kopf.on.update(**project_resource)
    @kopf.timer(**project_resource, interval=project_interval, initial_delay=project_interval / 6)
    async def project_handler(body: kopf.Body, patch: kopf.Patch, namespace: str, name: str,
                              iterations_by_project: kopf.Index, **_: Any) -> None:
        with metrics.reconcile_timer("CustomVisionProject"):
            project = CustomVisionProject.model_validate(dict(body))
            dataset = await asyncio.to_thread(observe_dataset, project, cluster.s3)
            experiment_id, tracking_error = await asyncio.to_thread(ensure_experiment, project, cluster.tracking_uri)
            status, outcome = reconcile.reconcile_project(project, dataset, tracking_error, experiment_id, _now())
            patch.status.update(_status_patch(status))
            _post_events(body, outcome)
            await cluster.repair_serving(dict(body), siblings_of(iterations_by_project, namespace, name))

    @kopf.on.resume(**iteration_resource)
    @kopf.on.create(**iteration_resource)
    @kopf.on.update(**iteration_resource)
    @kopf.timer(**iteration_resource, interval=iteration_interval, initial_delay=iteration_interval / 5)
    async def iteration_handler(body: kopf.Body, patch: kopf.Patch, namespace: str,
                                iterations_by_project: kopf.Index, **_: Any) -> None:
        with metrics.reconcile_timer("Iteration"):
            iteration = Iteration.model_validate(dict(body))
            project_body = await cluster.get_custom(PROJECTS, namespace, iteration.spec.project_ref.name)
            project = CustomVisionProject.model_validate(project_body) if project_body else None
            siblings = siblings_of(iterations_by_project, namespace, iteration.spec.project_ref.name)
            job_name = iteration.status.training_job or iteration_id(iteration)
            observed = IterationObservation(
                project=project,
                job=await cluster.observe_job(namespace, job_name),
                publish_owner=reconcile.publish_owners(siblings).get(iteration.spec.publish_name or ""),
                serving=await cluster.observe_serving(namespace, iteration.spec.project_ref.name),
            )
            plan = reconcile.reconcile_iteration(iteration, observed, _now())
            if plan.train is not None:
                layout = DatasetLayout.of(project.spec.dataset)
                await asyncio.to_thread(DatasetStore(ObjectStore(cluster.s3), layout).snapshot, plan.train.name)
                job = objects.training_job(plan.train, dict(body), cluster.settings, cluster.s3)
                await cluster.create_or_adopt(cluster.batch.create_namespaced_job, namespace, job)
            patch.status.update(_status_patch(plan.status))
            _post_events(body, plan.outcome)
            served = observed.serving is not None and iteration.metadata.name in observed.serving.models
            if project_body is not None and plan.serve != served:
                await cluster.serve_model(project_body, iteration.metadata.name, plan.serve)
            metrics.RUNNING_JOBS.set(sum(1 for items in iterations_by_project.values() for i in items
                                         if (i.get("status") or {}).get("phase") == "Training"))

    @kopf.on.delete(**iteration_resource)
    async def iteration_deleted(body: kopf.Body, namespace: str, name: str, retry: int, **_: Any) -> None:
        """The served model goes: Triton stops loading it and its folder leaves the model repository. MLflow keeps
        the run and the registered version. With S3 gone, a few retries, then a Warning, and deletion goes on."""
        project = body["spec"]["projectRef"]["name"]
        project_body = await cluster.get_custom(PROJECTS, namespace, project)
        if project_body is not None:
            await cluster.serve_model(project_body, name, wanted=False)
        try:
            await asyncio.to_thread(cluster.remove_served_model, namespace, project, name)
        except STORAGE_FAULTS as error:
            if retry + 1 < DELETE_RETRIES:
                raise kopf.TemporaryError(f"S3: {error}", delay=retry_delay) from error
            kopf.warn(body, reason="ModelNotRemoved",
                      message=f"could not remove the model from S3 after {DELETE_RETRIES} tries: {error}")
