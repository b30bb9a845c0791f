"""What the reconcile sequence (sequence.py) needs from where it runs. Two drivers implement it: the cluster's
(operator/handlers: the watches' views, Jobs, Triton Deployments, kopf Events) and local mode's (the local store,
trainer processes, the local Triton)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from kubevision.core.api import CustomVisionProject, CustomVisionProjectStatus, Iteration, IterationStatus
from kubevision.core.limits import LimitsSource
from kubevision.operator.reconcile import (
    DatasetObservation,
    JobObservation,
    Outcome,
    ServingObservation,
    TrainingJob,
    TrainingQueue,
)


class TrainingNotSeenYet(Exception):
    """A training was started and is not visible yet (a Job whose watch event has not come): taking it for a
    missing one would start it again. Nothing is done until it shows; its arrival queues the Iteration."""


class Driver(Protocol):
    limits: LimitsSource  # the namespaces' limits, as the platform team last wrote them

    def now(self) -> datetime:
        """The time the core stamps on conditions."""

    # projects
    async def observe_dataset(self, project: CustomVisionProject) -> DatasetObservation: ...

    async def ensure_experiment(self, project: CustomVisionProject) -> tuple[str | None, str | None]:
        """The project's MLflow experiment, created if need be: (experiment id, error)."""

    async def projects_in(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's projects, to count those older than one against the namespace's limit."""

    async def repair_serving(self, project_body: dict[str, Any]) -> None:
        """After a project's pass: its serving put back as it was made, if something else changed it."""

    # Iterations
    async def project_of(self, iteration: Iteration) -> dict[str, Any] | None: ...

    async def siblings(self, iteration: Iteration) -> list[dict[str, Any]]:
        """The Iterations of the same project, to tell who owns a publish name."""

    async def observe_training(self, iteration: Iteration) -> JobObservation | None:
        """The Iteration's training as it runs or ended; None when there is none. Raises TrainingNotSeenYet."""

    async def observe_serving(self, iteration: Iteration) -> ServingObservation | None: ...

    async def training_queue(self, iteration: Iteration) -> TrainingQueue:
        """For an Iteration whose training has not started: its namespace's limit on trainings at once, those that
        run, those queued ahead of it (reconcile.queued_ahead); or Kueue's LocalQueue, when Kueue decides."""

    def deciding(self, namespace: str) -> AbstractAsyncContextManager[Any]:
        """Held while an Iteration of the namespace decides whether its training starts, and starts it: two deciding
        at once would both take the last slot."""

    async def snapshot_dataset(self, project: CustomVisionProject, name: str) -> None:
        """Freeze the dataset's manifest for the training `name`, before it starts."""

    async def start_training(self, train: TrainingJob, iteration_body: dict[str, Any]) -> None:
        """Start the training; one started already under that name is adopted, never started twice."""

    async def sync_tracking(self, iteration: Iteration, status: IterationStatus) -> None:
        """MLflow follows the new status: the publish name's alias, a dead trainer's run (observe.sync_tracking)."""

    async def serve(self, project_body: dict[str, Any] | None, iteration: Iteration,
                    serving: ServingObservation | None, wanted: bool) -> None:
        """Load or unload the Iteration's model, as the plan wants."""

    # both
    async def report(self, kind: str, body: dict[str, Any], status: CustomVisionProjectStatus | IterationStatus,
                     outcome: Outcome) -> None:
        """Write the status computed from `body` and record the outcome's Events."""
