"""The local driver of the reconcile core: resources from the local store, the trainer as a child process instead
of a Job, published models loaded into the local Triton instead of a Deployment."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from kubevision.core import conditions
from kubevision.core.api import Condition, CustomVisionProject, Iteration, IterationStatus
from kubevision.core.reasons import Reason
from kubevision.core.results import read_termination_message
from kubevision.core.storage import STORAGE_FAULTS, DatasetLayout, DatasetStore, ModelRepositoryLayout, ObjectStore
from kubevision.core.training import iteration_id
from kubevision.local import process
from kubevision.local.store import Conflict, LocalStore
from kubevision.local.supervisor import LocalPlatform
from kubevision.operator import metrics, reconcile
from kubevision.operator.observe import ensure_experiment, observe_dataset, sync_published_alias
from kubevision.operator.reconcile import IterationObservation, JobObservation, ServingObservation

log = logging.getLogger(__name__)

PROJECT, ITERATION = "CustomVisionProject", "Iteration"
EVENT_SOURCE = "kubevision-local-controller"  # the From of its Events
# Beyond the training budget, time to start the process, load the data and export (as the Job's deadline).
DEADLINE_MARGIN_SECONDS = 600
T = TypeVar("T")


def _dump(model) -> dict:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class LocalTrainings:
    """Trainer processes, one folder each (request, log, result, pid), so that a restarted controller adopts them."""

    def __init__(self, folder: Path, platform: LocalPlatform):
        self.folder = folder
        self.platform = platform

    def _folder(self, name: str) -> Path:
        return self.folder / name

    def log(self, name: str) -> Path:
        """The trainer's log (what `kubevision logs` prints)."""
        return self._folder(name) / "trainer.log"

    def start(self, train: reconcile.TrainingJob) -> None:
        folder = self._folder(train.name)
        if (folder / "pid").is_file():
            return  # started before: adopt it, never a second one
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "request.json").write_text(train.request.model_dump_json(by_alias=True, exclude_none=True))
        s3, mlflow = self.platform.s3_settings(), self.platform.mlflow_settings()
        env = {
            **os.environ,
            "KUBEVISION_S3_ENDPOINT": s3.endpoint, "KUBEVISION_S3_ACCESS_KEY": s3.access_key,
            "KUBEVISION_S3_SECRET_KEY": s3.secret_key.get_secret_value(),
            "KUBEVISION_MLFLOW_TRACKING_URI": mlflow.tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true",
            "KUBEVISION_TERMINATION_LOG": str(folder / "result.json"),
        }
        command = [sys.executable, "-m", "kubevision.trainer", "--request", str(folder / "request.json")]
        child = process.spawn(command, folder / "trainer.log", env, cwd=folder)
        (folder / "pid").write_text(f"{child.pid} {process.identity(child.pid) or ''}")
        (folder / "deadline").write_text(str(time.time() + train.options.budget_minutes * 60 + DEADLINE_MARGIN_SECONDS))
        log.info("started training %s (pid %d)", train.name, child.pid)

    def observe(self, namespace: str, name: str) -> JobObservation | None:
        folder = self._folder(name)
        if not (folder / "pid").is_file():
            return None
        pid, recorded = self._process(name)
        started = datetime.fromtimestamp((folder / "pid").stat().st_mtime, UTC)
        if process.is_running(pid, recorded):
            if time.time() > float((folder / "deadline").read_text()):
                process.stop(pid, recorded)
                (folder / "deadline-exceeded").touch()
            else:
                return JobObservation(name=name, active=True, started=started)
        finished = datetime.fromtimestamp((folder / "trainer.log").stat().st_mtime, UTC)
        if (folder / "deadline-exceeded").exists():
            return JobObservation(name=name, failed=True, failure_reason="DeadlineExceeded", started=started,
                                  finished=finished)
        result_file = folder / "result.json"
        message = result_file.read_text(errors="replace") if result_file.is_file() else ""
        result = read_termination_message(message, ObjectStore(self.platform.s3_settings()), namespace, name)
        if result is None:  # no result, or one cut short or corrupt with nothing in S3 to complete it
            return JobObservation(name=name, failed=True, failure_reason="Crashed", started=started, finished=finished,
                                  failure_message=process.log_tail(folder / "trainer.log", 5))
        succeeded = result.outcome == "Succeeded"
        return JobObservation(name=name, succeeded=succeeded, failed=not succeeded, result=result, started=started,
                              finished=finished)

    def stop(self, name: str) -> None:
        if (self._folder(name) / "pid").is_file():
            process.stop(*self._process(name))

    def _process(self, name: str) -> tuple[int, str | None]:
        return process.recorded(self._folder(name))


class LocalController:
    """Its own files (trainings, the models it loaded) live beside its store: one controller a store."""

    def __init__(self, platform: LocalPlatform, store: LocalStore, clock: Callable[[], datetime] | None = None):
        self.platform = platform
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.state_dir = store.path.parent
        self.trainings = LocalTrainings(self.state_dir / "trainings", platform)
        self._restarted_for: set[str] = set()  # models Triton was restarted once to find
        self._missing: set[str] = set()  # wanted models that are in no model repository

    # ------------------------------------------------------------------------------------------------------------
    def reconcile_all(self) -> float | None:
        """One pass over every resource; the soonest requeue asked for, or None. A resource that fails, fails
        alone: the others are reconciled all the same."""
        requeues = []
        for body in self.store.list(PROJECT):
            requeues.append(self._isolated(body, lambda body=body: self._reconcile_project(body),
                                           reconcile.RETRY_FAULT))
        serving: dict[tuple[str, str], list[str]] = {}
        iterations = self.store.list(ITERATION)
        for body in iterations:
            # A failing pass keeps the model's serving as it was: a fault must not unpublish.
            kept = body["metadata"]["name"] in self._loaded()
            requeue, serve = self._isolated(body, lambda body=body: self._reconcile_iteration(body, iterations),
                                            (reconcile.RETRY_FAULT, kept))
            requeues.append(requeue)
            if serve:
                key = (body["metadata"]["namespace"], body["spec"]["projectRef"]["name"])
                serving.setdefault(key, []).append(body["metadata"]["name"])
        self._serve(serving)
        metrics.RUNNING_JOBS.set(sum(1 for b in iterations if (b.get("status") or {}).get("phase") == "Training"))
        return min((r for r in requeues if r is not None), default=None)

    def _isolated(self, body: dict, reconcile_one: Callable[[], T], failed: T) -> T:
        """reconcile_one(), its failure logged, counted and written on the resource as a condition."""
        kind, meta = body["kind"], body["metadata"]
        with metrics.reconcile_timer(kind):
            try:
                return reconcile_one()
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
    def _reconcile_project(self, body: dict) -> float | None:
        project = CustomVisionProject.model_validate(body)
        meta = project.metadata
        if body["metadata"].get("deletionTimestamp"):
            self.store.remove(PROJECT, meta.namespace, meta.name)  # MLflow history and S3 data are kept
            return None
        observed = observe_dataset(project, self.platform.s3_settings())
        experiment_id, tracking_error = ensure_experiment(project, self.platform.mlflow_settings().tracking_uri)
        status, outcome = reconcile.reconcile_project(project, observed, tracking_error, experiment_id, self.clock())
        self._events(body, outcome)
        self._update_status(body, _dump(status))
        return outcome.requeue_after

    def _reconcile_iteration(self, body: dict, iterations: list[dict]) -> tuple[float | None, bool]:
        iteration = Iteration.model_validate(body)
        meta = iteration.metadata
        if body["metadata"].get("deletionTimestamp"):
            self.trainings.stop(iteration_id(iteration))
            sync_published_alias(iteration, iteration.status, IterationStatus(),
                                 self.platform.mlflow_settings().tracking_uri)
            self.store.remove(ITERATION, meta.namespace, meta.name)  # its model is unloaded by _serve
            return None, False
        project_body = self.store.get(PROJECT, meta.namespace, iteration.spec.project_ref.name)
        project = CustomVisionProject.model_validate(project_body) if project_body else None
        siblings = [b for b in iterations if b["spec"]["projectRef"]["name"] == iteration.spec.project_ref.name
                    and b["metadata"]["namespace"] == meta.namespace and not b["metadata"].get("deletionTimestamp")]
        observed = IterationObservation(
            project=project,
            job=self.trainings.observe(meta.namespace, iteration_id(iteration)),
            publish_owner=reconcile.publish_owners(siblings).get(iteration.spec.publish_name or ""),
            serving=self._serving_observation(meta.name),
        )
        plan = reconcile.reconcile_iteration(iteration, observed, self.clock())
        if plan.train is not None:
            DatasetStore(ObjectStore(self.platform.s3_settings()), DatasetLayout.of(project.spec.dataset)).snapshot(
                plan.train.name)
            self.trainings.start(plan.train)
        self._events(body, plan.outcome)
        self._update_status(body, _dump(plan.status))
        sync_published_alias(iteration, iteration.status, plan.status, self.platform.mlflow_settings().tracking_uri)
        return plan.outcome.requeue_after, plan.serve

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
            self._loaded_file.write_text("\n".join(sorted(served)))
        except (InferenceServerException, OSError, process.ServiceError, *STORAGE_FAULTS) as error:
            log.warning("serving: %s", error)  # reported through ServingObservation on the next pass

    def _in_repository(self, key: tuple[str, str], model: str) -> bool:
        s3 = self.platform.s3_settings()
        repository = ModelRepositoryLayout(s3.models_bucket, *key)
        return ObjectStore(s3).exists(repository.bucket, repository.model_key(model, "config.pbtxt"))

    @property
    def _loaded_file(self) -> Path:
        return self.state_dir / "served-models.txt"

    def _loaded(self) -> set[str]:
        return set(self._loaded_file.read_text().split()) if self._loaded_file.is_file() else set()

    def _events(self, body: dict, outcome: reconcile.Outcome) -> None:
        for event in outcome.events:
            level = logging.WARNING if event.type == "Warning" else logging.INFO
            log.log(level, "%s %s/%s: %s: %s", body["kind"], body["metadata"]["namespace"],
                    body["metadata"]["name"], event.reason, event.message)
            self.store.record_event(body, event.type, event.reason, event.message, EVENT_SOURCE, self.clock())
