"""The local driver of the reconcile sequence: resources from the local store, the trainer as a child process
instead of a Job (trainings.py), published models loaded into the local Triton instead of a Deployment."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from kubevision.core import conditions
from kubevision.core.api import Condition, CustomVisionProject, Iteration, IterationPhase, IterationStatus
from kubevision.core.labels import model_name
from kubevision.core.limits import limits_source
from kubevision.core.reasons import Reason
from kubevision.core.storage import STORAGE_FAULTS, DatasetLayout, DatasetStore, ModelRepositoryLayout, ObjectStore
from kubevision.core.training import iteration_id
from kubevision.local import process
from kubevision.local.store import Conflict, LocalStore
from kubevision.local.supervisor import LocalPlatform
from kubevision.local.trainings import LocalTrainings
from kubevision.operator import datasets, metrics, observe, reconcile, sequence
from kubevision.operator.reconcile import DatasetObservation, JobObservation, ServingObservation, TrainingQueue

log = logging.getLogger(__name__)

PROJECT, ITERATION = sequence.PROJECT, sequence.ITERATION
EVENT_SOURCE = "kubevision-local-controller"  # the From of its Events
T = TypeVar("T")


def _dump(model) -> dict:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class LocalController:
    """Its own files (trainings, the models it loaded) live beside its store: one controller a store. It is the
    sequence's driver (operator/driver.py) itself: a pass runs every resource's sequence in turn, then serves."""

    def __init__(self, platform: LocalPlatform, store: LocalStore, clock: Callable[[], datetime] | None = None):
        self.platform = platform
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.state_dir = store.path.parent
        self.trainings = LocalTrainings(self.state_dir / "trainings", platform)
        self.limits = limits_source(self.state_dir)  # <data dir>/limits.yaml
        self._restarted_for: set[str] = set()  # models Triton was restarted once to find
        self._missing: set[str] = set()  # wanted models that are in no model repository
        self._projects: list[dict] = []  # the projects and Iterations of the pass under way
        self._iterations: list[dict] = []
        self._reported: dict[tuple[str, str], dict] = {}  # their statuses written in this pass

    # ------------------------------------------------------------------------------------------------------------
    def reconcile_all(self) -> float | None:
        """One pass over every resource; the soonest requeue asked for, or None. A resource that fails, fails
        alone: the others are reconciled all the same."""
        return asyncio.run(self._reconcile_all())

    async def _reconcile_all(self) -> float | None:
        requeues = []
        self._projects = self.store.list(PROJECT)
        for body in self._projects:
            requeues.append(await self._isolated(body, lambda body=body: self._reconcile_project(body),
                                                 reconcile.RETRY_FAULT))
        serving: dict[tuple[str, str], list[str]] = {}
        self._iterations = iterations = self.store.list(ITERATION)
        self._reported = {}
        for body in iterations:
            # A failing pass keeps the model's serving as it was: a fault must not unpublish.
            kept = model_name(body["metadata"].get("uid")) in self._loaded()
            requeue, serve = await self._isolated(body, lambda body=body: self._reconcile_iteration(body),
                                                  (reconcile.RETRY_FAULT, kept))
            requeues.append(requeue)
            if serve:
                key = (body["metadata"]["namespace"], body["spec"]["projectRef"]["name"])
                serving.setdefault(key, []).append(model_name(body["metadata"].get("uid")))
        self._serve(serving)
        metrics.RUNNING_JOBS.set(sum(1 for b in iterations if (b.get("status") or {}).get("phase") == "Training"))
        return min((r for r in requeues if r is not None), default=None)

    async def _isolated(self, body: dict, reconcile_one: Callable[[], Awaitable[T]], failed: T) -> T:
        """reconcile_one(), its failure logged, counted and written on the resource as a condition."""
        kind, meta = body["kind"], body["metadata"]
        with metrics.reconcile_timer(kind):
            try:
                return await reconcile_one()
            except Conflict:  # changed meanwhile (an apply, a delete): the next pass sees the new version
                return failed
            except Exception as error:
                metrics.RECONCILE_ERRORS.labels(kind).inc()
                log.exception("%s %s/%s: reconcile failed", kind, meta["namespace"], meta["name"])
                self._report_failure(body, f"{type(error).__name__}: {error}")
                return failed

    def _report_failure(self, body: dict, message: str) -> None:
        status = dict(body.get("status") or {})
        current = [Condition.model_validate(c) for c in status.get("conditions", [])]
        changed = conditions.set_condition(current, reconcile.READY, "False", Reason.RECONCILE_FAILED, message,
                                           body["metadata"].get("generation"), self.clock())
        status["conditions"] = [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in changed]
        try:
            self._update_status(body, status)
        except Exception as error:  # the store itself fails: the log has it
            log.warning("could not report the failure on %s %s: %s", body["kind"], body["metadata"]["name"], error)

    def _update_status(self, body: dict, status: dict) -> None:
        meta = body["metadata"]
        self.store.update_status(body["kind"], meta["namespace"], meta["name"], status, meta.get("resourceVersion"))

    def run(self, until: Callable[[], bool] | None = None, timeout: float | None = None, interval: float = 1.0) -> None:
        """Reconcile until `until()` holds (or forever), looking again every `interval` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                self.reconcile_all()
            except Exception:  # one bad pass must not end the controller: log it, count it, go on
                metrics.RECONCILE_ERRORS.labels("any").inc()
                log.exception("reconcile pass failed")
            if until is not None and until():
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("the local controller did not reach the expected state in time")
            time.sleep(interval)

    # ------------------------------------------------------------------------------------------------------------
    async def _reconcile_project(self, body: dict) -> float | None:
        meta = CustomVisionProject.model_validate(body).metadata
        if body["metadata"].get("deletionTimestamp"):
            # Its dataset first: S3 failing leaves the project, and the next pass tries again. MLflow keeps its history.
            await asyncio.to_thread(datasets.delete_dataset, body, self.store.list(PROJECT, meta.namespace),
                                    self.platform.s3_settings())
            self.store.remove(PROJECT, meta.namespace, meta.name)
            return None
        return (await sequence.reconcile_project(self, body)).requeue_after

    async def _reconcile_iteration(self, body: dict) -> tuple[float | None, bool]:
        iteration = Iteration.model_validate(body)
        meta = iteration.metadata
        if body["metadata"].get("deletionTimestamp"):
            self.trainings.stop(iteration_id(iteration))
            await self.sync_tracking(iteration, IterationStatus())
            self.store.remove(ITERATION, meta.namespace, meta.name)  # its model is unloaded by _serve
            return None, False
        plan = await sequence.reconcile_iteration(self, body)  # never None: a training shows once started
        return plan.outcome.requeue_after, plan.serve

    # ------------------------------------------------------------------------------------------------------------
    # The Driver of the reconcile sequence (operator/driver.py)

    def now(self) -> datetime:
        return self.clock()

    async def observe_dataset(self, project: CustomVisionProject) -> DatasetObservation:
        return observe.observe_dataset(project, self.platform.s3_settings())

    async def ensure_experiment(self, project: CustomVisionProject) -> tuple[str | None, str | None]:
        return observe.ensure_experiment(project, self.platform.mlflow_settings().tracking_uri)

    async def projects_in(self, namespace: str) -> list[dict[str, Any]]:
        """As the pass began: one deleted since carries its deletionTimestamp, and is not counted."""
        return [b for b in self._projects if b["metadata"]["namespace"] == namespace]

    async def repair_serving(self, project_body: dict[str, Any]) -> None:
        """Nothing to repair: the pass ends by serving every wanted model (_serve)."""

    async def project_of(self, iteration: Iteration) -> dict[str, Any] | None:
        return self.store.get(PROJECT, iteration.metadata.namespace, iteration.spec.project_ref.name)

    async def siblings(self, iteration: Iteration) -> list[dict[str, Any]]:
        project, namespace = iteration.spec.project_ref.name, iteration.metadata.namespace
        return [b for b in self._iterations if b["spec"]["projectRef"]["name"] == project
                and b["metadata"]["namespace"] == namespace and not b["metadata"].get("deletionTimestamp")]

    async def observe_training(self, iteration: Iteration) -> JobObservation | None:
        return self.trainings.observe(iteration.metadata.namespace, iteration_id(iteration))

    async def observe_serving(self, iteration: Iteration) -> ServingObservation:
        return self._serving_observation(model_name(iteration.metadata.uid))

    async def training_queue(self, iteration: Iteration) -> TrainingQueue:
        """A training holds a slot while its Iteration is Training: a pass runs one resource at a time, and each
        status is written before the next resource is looked at, so the pass's own starts count at once."""
        namespace = iteration.metadata.namespace
        current = [{**body, "status": self._reported.get((namespace, body["metadata"]["name"]), body.get("status"))}
                   for body in self._iterations if body["metadata"]["namespace"] == namespace]
        running = sum(1 for body in current if (body["status"] or {}).get("phase") == IterationPhase.TRAINING)
        limits = self.limits.for_namespace(namespace)
        return TrainingQueue(limit=limits.concurrent_trainings, iterations_limit=limits.iterations_per_project,
                             running=running,
                             ahead=reconcile.queued_ahead(iteration, current))

    def deciding(self, namespace: str) -> contextlib.nullcontext:
        return contextlib.nullcontext()  # one resource at a time already

    async def snapshot_dataset(self, project: CustomVisionProject, name: str) -> None:
        DatasetStore(ObjectStore(self.platform.s3_settings()), DatasetLayout.of(project.spec.dataset)).snapshot(name)

    async def start_training(self, train: reconcile.TrainingJob, iteration_body: dict[str, Any]) -> None:
        self.trainings.start(train)

    async def sync_tracking(self, iteration: Iteration, status: IterationStatus) -> None:
        observe.sync_tracking(iteration, iteration.status, status, self.platform.mlflow_settings().tracking_uri)

    async def serve(self, project_body: dict[str, Any] | None, iteration: Iteration,
                    serving: ServingObservation | None, wanted: bool) -> None:
        """Nothing yet: the pass serves every wanted model together at its end (_serve), Triton being shared and
        restarted at most once for them all."""

    async def report(self, kind: str, body: dict[str, Any], status, outcome: reconcile.Outcome) -> None:
        self._events(body, outcome)
        self._update_status(body, _dump(status))
        if kind == ITERATION:
            self._reported[(body["metadata"]["namespace"], body["metadata"]["name"])] = _dump(status)

    # ------------------------------------------------------------------------------------------------------------
    def _triton(self) -> triton_http.InferenceServerClient:
        return triton_http.InferenceServerClient(self.platform.triton_settings().http_url)

    def _serving_observation(self, model: str) -> ServingObservation:
        endpoint = f"http://{self.platform.triton_settings().http_url}"
        if model in self._missing:
            return ServingObservation(ready=False, models=(), endpoint=endpoint, missing=True,
                                      message=f"model {model} is in no model repository in S3; train it again")
        try:
            ready = self._triton().is_model_ready(model)
        except (InferenceServerException, OSError) as error:
            return ServingObservation(ready=False, models=(), endpoint=endpoint, message=f"Triton: {error}")
        return ServingObservation(ready=ready, models=(model,) if ready else (), endpoint=endpoint,
                                  message="" if ready else f"Triton is loading {model}")

    def _serve(self, wanted: dict[tuple[str, str], list[str]]) -> None:
        """Load what should be served, unload what should not. Triton sees a new project's repository only after
        a restart, which drops every loaded model: it is restarted once for a model that is in S3 and unknown to
        Triton, never for one that is in no repository (its Iteration says so instead)."""
        try:
            triton = self._triton()
            served = {model for models in wanted.values() for model in models}
            if all(triton.is_model_ready(model) for model in served) and not self._loaded() - served:
                # Nothing to change. The repository index is not asked for: Triton lists the repositories in S3
                # for it, and while S3 does not answer, that holds up Triton's HTTP service, predictions included.
                self._missing = set()
                self._record_loaded(served)
                return
            index = {m["name"]: m.get("state") for m in triton.get_model_repository_index()}
            absent = {(key, model) for key, models in wanted.items() for model in models if model not in index}
            in_s3 = {model for key, model in absent if self._in_repository(key, model)}
            self._missing = {model for _, model in absent} - in_s3
            if in_s3 - self._restarted_for:
                log.info("restarting Triton to see new model repositories (for %s)", ", ".join(sorted(in_s3)))
                self._restarted_for |= in_s3
                self.platform.restart_triton()
                triton = self._triton()
                index = {m["name"]: m.get("state") for m in triton.get_model_repository_index()}
            served = {model for models in wanted.values() for model in models} - self._missing
            for model in sorted(served):
                if index.get(model) != "READY":
                    triton.load_model(model)
            for model in sorted(self._loaded() - served):  # only what this controller loaded: Triton is shared
                if index.get(model) == "READY":
                    triton.unload_model(model)
            self._record_loaded(served)
        except (InferenceServerException, OSError, process.ServiceError, *STORAGE_FAULTS) as error:
            log.warning("serving: %s", error)  # reported through ServingObservation on the next pass

    def _in_repository(self, key: tuple[str, str], model: str) -> bool:
        s3 = self.platform.s3_settings()
        repository = ModelRepositoryLayout(s3.models_bucket, *key)
        return ObjectStore(s3).exists(repository.bucket, repository.model_key(model, "config.pbtxt"))

    @property
    def _loaded_file(self) -> Path:
        return self.state_dir / "served-models.txt"

    def _record_loaded(self, models: set[str]) -> None:
        if self._loaded() != models:
            self._loaded_file.write_text("\n".join(sorted(models)))

    def _loaded(self) -> set[str]:
        return set(self._loaded_file.read_text().split()) if self._loaded_file.is_file() else set()

    def _events(self, body: dict, outcome: reconcile.Outcome) -> None:
        for event in outcome.events:
            level = logging.WARNING if event.type == "Warning" else logging.INFO
            log.log(level, "%s %s/%s: %s: %s", body["kind"], body["metadata"]["namespace"],
                    body["metadata"]["name"], event.reason, event.message)
            self.store.record_event(body, event.type, event.reason, event.message, EVENT_SOURCE, self.clock())
