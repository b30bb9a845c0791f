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

import tritonclient.http as triton_http
from minio.error import S3Error
from mlflow.tracking import MlflowClient
from tritonclient.utils import InferenceServerException
from urllib3.exceptions import HTTPError

from kubevision.core import dataset as manifest_format
from kubevision.core.api import CustomVisionProject, Iteration
from kubevision.core.local import process
from kubevision.core.local.platform import LocalPlatform
from kubevision.core.results import read_termination_message
from kubevision.core.storage import DatasetLayout, DatasetStore, ObjectStore
from kubevision.core.training import iteration_id
from kubevision.operator import metrics, reconcile
from kubevision.operator.local_store import LocalStore
from kubevision.operator.reconcile import DatasetObservation, IterationObservation, JobObservation, ServingObservation

log = logging.getLogger(__name__)

PROJECT, ITERATION = "CustomVisionProject", "Iteration"
# Beyond the training budget, time to start the process, load the data and export (as the Job's deadline).
DEADLINE_MARGIN_SECONDS = 600


def _dump(model) -> dict:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class LocalTrainings:
    """Trainer processes, one folder each (request, log, result, pid), so that a restarted controller adopts them."""

    def __init__(self, folder: Path, platform: LocalPlatform):
        self.folder = folder
        self.platform = platform

    def _folder(self, name: str) -> Path:
        return self.folder / name

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
        (folder / "pid").write_text(str(child.pid))
        (folder / "deadline").write_text(str(time.time() + train.options.budget_minutes * 60 + DEADLINE_MARGIN_SECONDS))
        log.info("started training %s (pid %d)", train.name, child.pid)

    def observe(self, namespace: str, name: str) -> JobObservation | None:
        folder = self._folder(name)
        if not (folder / "pid").is_file():
            return None
        pid = int((folder / "pid").read_text())
        started = datetime.fromtimestamp((folder / "pid").stat().st_mtime, UTC)
        if process.is_running(pid):
            if time.time() > float((folder / "deadline").read_text()):
                process.stop(pid)
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
        pid_file = self._folder(name) / "pid"
        if pid_file.is_file() and process.is_running(int(pid_file.read_text())):
            process.stop(int(pid_file.read_text()))


class LocalController:
    def __init__(self, platform: LocalPlatform, store: LocalStore, clock: Callable[[], datetime] | None = None):
        self.platform = platform
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.trainings = LocalTrainings(platform.data_dir / "trainings", platform)

    # ------------------------------------------------------------------------------------------------------------
    def reconcile_all(self) -> float | None:
        """One pass over every resource; the soonest requeue asked for, or None."""
        requeues = []
        for body in self.store.list(PROJECT):
            with metrics.reconcile_timer(PROJECT):
                requeues.append(self._reconcile_project(body))
        serving: dict[tuple[str, str], list[str]] = {}
        iterations = self.store.list(ITERATION)
        for body in iterations:
            with metrics.reconcile_timer(ITERATION):
                requeue, serve = self._reconcile_iteration(body, iterations)
            requeues.append(requeue)
            if serve:
                key = (body["metadata"]["namespace"], body["spec"]["projectRef"]["name"])
                serving.setdefault(key, []).append(body["metadata"]["name"])
        self._serve(serving)
        metrics.RUNNING_JOBS.set(sum(1 for b in iterations if (b.get("status") or {}).get("phase") == "Training"))
        return min((r for r in requeues if r is not None), default=None)

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
        store = ObjectStore(self.platform.s3_settings())
        try:
            records = DatasetStore(store, DatasetLayout.of(project.spec.dataset)).manifest()
            found = store.exists(project.spec.dataset.bucket, DatasetLayout.of(project.spec.dataset).manifest_key)
            observed = DatasetObservation(manifest_found=found, image_count=len(records),
                                          tag_counts=dict(manifest_format.tag_counts(records)))
        except (S3Error, HTTPError, OSError) as error:
            observed = DatasetObservation(error=f"S3 at {store.settings.endpoint}: {error}")
        tracking_error, experiment_id = None, None
        try:
            client = MlflowClient(self.platform.mlflow_settings().tracking_uri)
            name = f"kubevision/{meta.namespace}/{meta.name}"
            experiment = client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
        except Exception as error:  # MLflow's client raises many kinds; all mean "not reachable now"
            tracking_error = f"MLflow: {error}"
        status, outcome = reconcile.reconcile_project(project, observed, tracking_error, experiment_id, self.clock())
        self._events(body, outcome)
        self.store.update_status(PROJECT, meta.namespace, meta.name, _dump(status))
        return outcome.requeue_after

    def _reconcile_iteration(self, body: dict, iterations: list[dict]) -> tuple[float | None, bool]:
        iteration = Iteration.model_validate(body)
        meta = iteration.metadata
        if body["metadata"].get("deletionTimestamp"):
            self.trainings.stop(iteration_id(iteration))
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
        self.store.update_status(ITERATION, meta.namespace, meta.name, _dump(plan.status))
        return plan.outcome.requeue_after, plan.serve

    # ------------------------------------------------------------------------------------------------------------
    def _triton(self) -> triton_http.InferenceServerClient:
        return triton_http.InferenceServerClient(self.platform.triton_settings().http_url)

    def _serving_observation(self, model: str) -> ServingObservation:
        endpoint = f"http://{self.platform.triton_settings().http_url}"
        try:
            ready = self._triton().is_model_ready(model)
        except (InferenceServerException, OSError) as error:
            return ServingObservation(ready=False, models=(), endpoint=endpoint, message=f"Triton: {error}")
        return ServingObservation(ready=ready, models=(model,) if ready else (), endpoint=endpoint,
                                  message="" if ready else f"Triton is loading {model}")

    def _serve(self, wanted: dict[tuple[str, str], list[str]]) -> None:
        """Load what should be served, unload what should not; Triton sees a new project's repository only
        after a restart."""
        try:
            triton = self._triton()
            index = {m["name"]: m.get("state") for m in triton.get_model_repository_index()}
            if any(model not in index for models in wanted.values() for model in models):
                log.info("restarting Triton to see new model repositories")
                self.platform.restart_triton()
                triton = self._triton()
                index = {m["name"]: m.get("state") for m in triton.get_model_repository_index()}
            served = {model for models in wanted.values() for model in models}
            for model in sorted(served):
                if index.get(model) != "READY":
                    triton.load_model(model)
            for model in sorted(self._loaded() - served):  # only what this controller loaded: Triton is shared
                if index.get(model) == "READY":
                    triton.unload_model(model)
            self._loaded_file.write_text("\n".join(sorted(served)))
        except (InferenceServerException, OSError, process.ServiceError) as error:
            log.warning("serving: %s", error)  # reported through ServingObservation on the next pass

    @property
    def _loaded_file(self) -> Path:
        return self.platform.data_dir / "served-models.txt"

    def _loaded(self) -> set[str]:
        return set(self._loaded_file.read_text().split()) if self._loaded_file.is_file() else set()

    def _events(self, body: dict, outcome: reconcile.Outcome) -> None:
        for event in outcome.events:
            level = logging.WARNING if event.type == "Warning" else logging.INFO
            log.log(level, "%s %s/%s: %s: %s", body["kind"], body["metadata"]["namespace"],
                    body["metadata"]["name"], event.reason, event.message)
