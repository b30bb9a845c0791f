"""Trainer processes for local mode, in place of a cluster's Jobs: one folder each (request, log, result, pid), so
that a restarted controller adopts the trainings it started."""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from kubevision.core.results import read_termination_message
from kubevision.core.storage import ObjectStore
from kubevision.local import process
from kubevision.local.supervisor import LocalPlatform
from kubevision.operator import reconcile
from kubevision.operator.reconcile import JobObservation

log = logging.getLogger(__name__)

# Beyond the training budget, time to start the process, load the data and export (as the Job's deadline).
DEADLINE_MARGIN_SECONDS = 600


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
        child = process.spawn_recording_exit(command, folder / "trainer.log", env, cwd=folder)
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
                                  failure_message=f"the trainer stopped: {process.how_it_ended(folder)}; the end "
                                                  f"of its log:\n{process.log_tail(folder / 'trainer.log', 5)}")
        succeeded = result.outcome == "Succeeded"
        return JobObservation(name=name, succeeded=succeeded, failed=not succeeded, result=result, started=started,
                              finished=finished)

    def stop(self, name: str) -> None:
        if (self._folder(name) / "pid").is_file():
            process.stop(*self._process(name))

    def _process(self, name: str) -> tuple[int, str | None]:
        return process.recorded(self._folder(name))
