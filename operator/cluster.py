"""The Kubernetes side of the kopf driver: observations built from watched objects (and S3), and the plan applied
idempotently (deterministic names, owner references, create-or-adopt, merge patches guarded by resourceVersion)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import kopf
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubevision.core import api as kv
from kubevision.core import results
from kubevision.core.labels import ITERATION_LABEL, PROJECT_LABEL, triton_name
from kubevision.core.settings import OperatorSettings, S3Settings
from kubevision.core.storage import ModelRepositoryLayout, ObjectStore
from kubevision.operator import objects, reconcile
from kubevision.operator.reconcile import JobObservation, ServingObservation

log = logging.getLogger(__name__)

PROJECTS, ITERATIONS = "customvisionprojects", "iterations"
KUEUE_GROUP, KUEUE_VERSION, WORKLOADS = "kueue.x-k8s.io", "v1beta1", "workloads"
MERGE_PATCH = "application/merge-patch+json"
FINALIZER = "kubevision.io/finalizer"
DELETE_RETRIES = 3  # then the Iteration goes anyway, with a Warning Event


class NoDiffBase(kopf.DiffBaseStorage):
    """Keeps no last-handled state. Kopf stores it (an annotation) on every object it handles, to tell a creation from
    an update; the operator has no creation or update handlers, only a deletion handler and watches, so it would be a
    PATCH to each Iteration at the operator's first start, read by no one."""

    def fetch(self, *, body: kopf.Body) -> None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


def operator_settings() -> kopf.OperatorSettings:
    """A deletion's progress in annotations: the CRDs' structural schemas would prune kopf's status fields."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubevision.io")
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.level = logging.WARNING  # Events come from the core's transitions, not from log lines
    settings.scanning.disabled = True  # the CRDs are installed before the operator starts (docs/operator.md)
    return settings


def mlflow_request_limits(settings: OperatorSettings) -> dict[str, str]:
    """The environment that bounds MLflow's client, which reads it on every request. A hung or unreachable MLflow
    must not hold a handler, and a worker thread, for minutes (the client waits 120 s and retries 7 times): fail
    fast, the timers try again."""
    return {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(settings.mlflow_timeout_seconds),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def job_ended(job: dict[str, Any]) -> bool:
    """A Job whose Complete or Failed condition is True: its training holds no slot any more."""
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def kueue_admission(workload: dict[str, Any] | None) -> tuple[str, str]:
    """Why Kueue holds a Job: the reason and message of its Workload's first condition of QuotaReserved, Admitted
    that is not True; empty when Kueue has said nothing yet."""
    found = {c.get("type"): c for c in ((workload or {}).get("status") or {}).get("conditions") or []}
    for type_ in ("QuotaReserved", "Admitted"):
        condition = found.get(type_)
        if condition is not None and condition.get("status") != "True":
            return condition.get("reason") or "", condition.get("message") or ""
    return "", ""


def serving_observation(deployment: dict[str, Any] | None, project: str, namespace: str) -> ServingObservation | None:
    """What a project's Triton Deployment says: the models it loads, and whether it is ready."""
    if deployment is None:
        return None
    status = deployment.get("status") or {}
    ready = (status.get("readyReplicas") or 0) >= 1 and (status.get("observedGeneration") or 0) >= (
        deployment["metadata"].get("generation") or 0)
    message = "" if ready else f"Deployment {triton_name(project)}: {status.get('readyReplicas') or 0} ready"
    return ServingObservation(ready=ready, models=objects.loaded_models(deployment),
                              endpoint=objects.triton_endpoint(project, namespace), message=message,
                              version=deployment["metadata"].get("resourceVersion", ""))


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

    async def list_watched(self, namespaces: list[str]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(kind, object) for every object the operator watches, in `namespaces` (none: all), listed once. Read
        as JSON, as the watches' events are: the typed models would be slower, and keep other field names."""
        trainer, triton = ITERATION_LABEL, f"app.kubernetes.io/component=triton,{PROJECT_LABEL}"
        for namespace in namespaces or [None]:
            for kind, plural in (("project", PROJECTS), ("iteration", ITERATIONS)):
                listed = await (self.custom.list_namespaced_custom_object(kv.GROUP, kv.VERSION, namespace, plural)
                                if namespace else self.custom.list_cluster_custom_object(kv.GROUP, kv.VERSION, plural))
                for item in listed["items"]:
                    yield kind, item
            if self.settings.kueue_queue_name:  # the Workloads Kueue made for training Jobs: why each waits
                for item in (await self._workloads(namespace))["items"]:
                    yield "workload", item
            for kind, selector, in_namespace, in_all in (
                    ("job", trainer, self.batch.list_namespaced_job, self.batch.list_job_for_all_namespaces),
                    ("pod", trainer, self.core.list_namespaced_pod, self.core.list_pod_for_all_namespaces),
                    ("deployment", triton, self.apps.list_namespaced_deployment,
                     self.apps.list_deployment_for_all_namespaces),
                    ("service", triton, self.core.list_namespaced_service, self.core.list_service_for_all_namespaces)):
                response = await (in_namespace(namespace, label_selector=selector, _preload_content=False)
                                  if namespace else in_all(label_selector=selector, _preload_content=False))
                for item in json.loads(await response.read())["items"]:
                    yield kind, item

    async def _workloads(self, namespace: str | None) -> dict[str, Any]:
        try:
            return await (
                self.custom.list_namespaced_custom_object(KUEUE_GROUP, KUEUE_VERSION, namespace, WORKLOADS)
                if namespace else self.custom.list_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION, WORKLOADS))
        except ApiException as error:
            if error.status == 404:  # else every training Job would wait, suspended, for a Kueue that never comes
                raise RuntimeError(f"kueue_queue_name is {self.settings.kueue_queue_name!r}, but the cluster serves "
                                   f"no {KUEUE_GROUP}/{KUEUE_VERSION} Workloads: install Kueue, or unset it "
                                   "(chart value kueue.enabled)") from error
            raise

    # ------------------------------------------------------------------------------------------------------------
    # observations

    async def observe_job(self, namespace: str, name: str, job: dict[str, Any] | None, pods: list[dict[str, Any]],
                          workload: dict[str, Any] | None = None) -> JobObservation | None:
        """The Job, its pods and its Kueue Workload as the watches last saw them; only a termination message held
        in S3 is read."""
        if job is None:
            return None
        status = job.get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        failed = conditions.get("Failed")
        message, waiting_reason, waiting_message, ended = "", "", "", ""
        for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or ""):
            for container in (pod.get("status") or {}).get("containerStatuses") or []:
                state = container.get("state") or {}
                if terminated := state.get("terminated"):
                    message = terminated.get("message") or message
                    ended = how_the_container_ended(terminated)
                if waiting := state.get("waiting"):
                    waiting_reason, waiting_message = waiting.get("reason") or "", waiting.get("message") or ""
        admission = kueue_admission(workload)
        result = await asyncio.to_thread(results.read_termination_message, message, ObjectStore(self.s3),
                                         namespace, name) if message else None
        return JobObservation(
            name=name,
            active=bool(status.get("active")),
            succeeded=(conditions.get("Complete") or {}).get("status") == "True",
            failed=failed is not None and failed.get("status") == "True",
            failure_reason=(failed.get("reason") or "") if failed else "",
            failure_message="; ".join(filter(None, ((failed.get("message") or ""), ended))) if failed else "",
            waiting_reason=waiting_reason, waiting_message=waiting_message, result=result,
            started=_time(status.get("startTime")), finished=_time(status.get("completionTime")),
            suspended=bool((job.get("spec") or {}).get("suspend")),
            admission_reason=admission[0], admission_message=admission[1],
        )

    async def observe_serving(self, namespace: str, project: str) -> ServingObservation | None:
        """Read afresh, for a write that must carry the current resourceVersion."""
        return serving_observation(await self._read(self.apps.read_namespaced_deployment, triton_name(project),
                                                    namespace), project, namespace)

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

    async def repair_serving(self, project_body: dict[str, Any], iterations: list[dict[str, Any]],
                             deployment: dict[str, Any] | None, service: dict[str, Any] | None) -> None:
        """Drift repair: a project with published models keeps its Triton as the operator made it. A deleted
        Deployment or Service comes back; an edited one (scaled to 0, another image) is set back. Which models it
        loads is each Iteration's to change (serve_model), so those are kept as found. `deployment` and `service`
        are as the watches last saw them: nothing is read when nothing drifted."""
        namespace = project_body["metadata"]["namespace"]
        if deployment is None:
            if models := reconcile.served_models(iterations):
                await self.create_serving(project_body, models)
            return
        wanted = objects.triton_deployment(project_body, list(objects.loaded_models(deployment)), self.settings,
                                           self.s3)
        await self._restore(self.apps.patch_namespaced_deployment, deployment, wanted)
        if service is None:
            await self.create_or_adopt(self.core.create_namespaced_service, namespace,
                                       objects.triton_service(project_body))
        else:
            await self._restore(self.core.patch_namespaced_service, service, objects.triton_service(project_body))

    async def patch_status(self, plural: str, body: dict[str, Any], status: dict[str, Any]) -> bool:
        """Write status only when it differs from the one in `body`, the snapshot the status was computed from: the
        same reconcile twice writes once. (Compared with a newer body instead, two passes that overlap a watch event
        would keep writing each other's condition times back.)"""
        seen = body.get("status") or {}
        if all(seen.get(field) == value for field, value in status.items()):
            return False
        meta = body["metadata"]
        await self.custom.patch_namespaced_custom_object_status(
            kv.GROUP, kv.VERSION, meta["namespace"], plural, meta["name"], {"status": status},
            _content_type=MERGE_PATCH)
        return True

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


def how_the_container_ended(terminated: dict[str, Any]) -> str:
    """The trainer's container's end, from its terminated state: exit code, the kubelet's reason (OOMKilled, Error)
    and the signal."""
    words = f"the trainer's container exited with code {terminated.get('exitCode')}"
    if terminated.get("reason"):
        words += f" ({terminated['reason']})"
    if terminated.get("signal"):
        words += f", signal {terminated['signal']}"
    return words
