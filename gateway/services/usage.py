"""Usage per team, free of HTTP: counting what calls use (Prometheus at once, the label store's ledger in batches),
recording ended trainings from the Iterations the catalog holds, and the report of one namespace's usage, which the
gateway's usage route answers to that namespace's key only."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from datetime import UTC, datetime

from kubevision.core.api import CustomVisionProject, Iteration, IterationPhase, TrainingType
from kubevision.core.labelstore.usage import UsageLedger
from kubevision.core.training import ResolvedTraining, resolve_training
from kubevision.core.usage import parse_window, training_use
from kubevision.gateway import metrics, wire
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.catalog import Catalog, Project
from kubevision.gateway.errors import CustomVisionError

log = logging.getLogger(__name__)

NOT_ENDED = (None, IterationPhase.PENDING, IterationPhase.QUEUED, IterationPhase.TRAINING)


def resolved(project: Project | None, iteration: Iteration) -> ResolvedTraining | None:
    """How the Iteration trains (type, budget) once its project's defaults are merged; None without its project."""
    if project is None:
        return None
    return resolve_training(CustomVisionProject.model_validate(project.body), iteration)


def trains_advanced(project: Project | None, iteration: Iteration) -> bool:
    training = resolved(project, iteration)
    return training is not None and training.training_type == TrainingType.ADVANCED


class UsageMeter:
    """What each answered call used, by namespace and project. Prometheus counts at once; the ledger keeps the
    same counts in memory until the next flush, so no call waits on a database write."""

    def __init__(self, ledger: UsageLedger | None = None):
        self.ledger = ledger

    def predicted(self, namespace: str, project: str, stored: bool) -> None:
        metrics.USAGE_PREDICTIONS.labels(namespace, project, "true" if stored else "false").inc()
        self._add(namespace, project, **{"predictions_stored" if stored else "predictions_not_stored": 1})

    def images_stored(self, namespace: str, project: str, sizes: list[int]) -> None:
        if not sizes:
            return
        metrics.USAGE_IMAGES.labels(namespace, project).inc(len(sizes))
        metrics.USAGE_IMAGE_BYTES.labels(namespace, project).inc(sum(sizes))
        self._add(namespace, project, images_stored=len(sizes), image_bytes=sum(sizes))

    def exported(self, namespace: str, project: str) -> None:
        metrics.USAGE_EXPORTS.labels(namespace, project).inc()
        self._add(namespace, project, exports=1)

    @staticmethod
    def known(catalog: Catalog) -> None:
        """Every project's series, at 0 until used: Prometheus's increase() takes a series' first sample as its
        start, so a series born at 1 would never count its first call."""
        for project in catalog.projects.values():
            labels = (project.namespace, project.name)
            metrics.USAGE_PREDICTIONS.labels(*labels, "true")
            metrics.USAGE_PREDICTIONS.labels(*labels, "false")
            for counter in (metrics.USAGE_IMAGES, metrics.USAGE_IMAGE_BYTES, metrics.USAGE_EXPORTS):
                counter.labels(*labels)

    def _add(self, namespace: str, project: str, **counts: int) -> None:
        if self.ledger is not None:
            self.ledger.add(namespace, project, **counts)


class UsageService:
    def __init__(self, source: CatalogSource, ledger: UsageLedger, meter: UsageMeter):
        self.source = source
        self.ledger = ledger
        self.meter = meter
        self._recorded: set[str] = set()  # Iteration uids whose training this process has written

    async def report(self, namespace: str, since: str) -> wire.UsageReport:
        """The namespace's usage by project over the window `since` (24h, 7d, ...); nothing of another namespace."""
        try:
            start = datetime.now(UTC) - parse_window(since)
        except ValueError as error:
            raise CustomVisionError(f"since: {error}.", "BadRequest") from error
        await self.keep()  # what this replica counted so far is in the answer
        rows = await asyncio.to_thread(self.ledger.totals, start, namespace, True)
        projects = [wire.ProjectUsage(**{k: v for k, v in asdict(row).items() if k != "namespace"}) for row in rows]
        return wire.UsageReport(namespace=namespace, since=start, projects=projects)

    async def keep(self) -> None:
        """Write the counts of the calls since the last time, and the trainings that ended since."""
        catalog = self.source.catalog
        self.meter.known(catalog)
        ended = [use for uid, iterations in catalog.iterations.items() for iteration in iterations
                 if iteration.metadata.uid not in self._recorded
                 and (use := training_use(iteration, trains_advanced(catalog.projects.get(uid), iteration)))]
        await asyncio.to_thread(self.ledger.record_trainings, ended)
        self._recorded.update(use.iteration_uid for use in ended)
        await asyncio.to_thread(self.ledger.flush)

    async def advanced_hours_taken(self, namespace: str, now: datetime) -> float:
        """Hours of Advanced training the namespace has taken in the calendar month (UTC) of `now`: those its ended
        trainings used, and the whole budget of those not ended yet, reserved until they end."""
        await self.keep()  # a training that has just ended moves from reserved to used
        month = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        used = await asyncio.to_thread(self.ledger.advanced_seconds, namespace, month)
        catalog = self.source.catalog
        reserved = sum(training.budget_minutes * 60
                       for uid, iterations in catalog.iterations.items() for iteration in iterations
                       if (project := catalog.projects.get(uid)) and project.namespace == namespace
                       and iteration.status.phase in NOT_ENDED
                       and (training := resolved(project, iteration)).training_type == TrainingType.ADVANCED)
        return (used + reserved) / 3600

    async def keep_forever(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.keep()
            except Exception as error:  # the database away: the counts wait in memory for the next try
                log.warning("usage not written: %s", error)
