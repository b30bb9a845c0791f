"""The cluster's driver of the reconcile sequence: what the watches' views hold, Jobs for trainings, each project's
Triton Deployment for serving, kopf Events. Blocking work (S3, MLflow) runs in threads."""

from __future__ import annotations

import asyncio
import collections
from datetime import UTC, datetime
from typing import Any

import kopf

from kubevision.core.api import CustomVisionProject, Iteration, IterationStatus
from kubevision.core.labels import model_name, triton_name
from kubevision.core.limits import LimitsSource
from kubevision.core.storage import DatasetLayout, DatasetStore, ObjectStore
from kubevision.core.training import iteration_id
from kubevision.operator import objects, observe, reconcile
from kubevision.operator.cluster import ITERATIONS, PROJECTS, Cluster, job_ended, serving_observation
from kubevision.operator.driver import TrainingNotSeenYet
from kubevision.operator.reconcile import DatasetObservation, JobObservation, ServingObservation, TrainingQueue
from kubevision.operator.views import Views

PLURALS = {"CustomVisionProject": PROJECTS, "Iteration": ITERATIONS}


def status_patch(status) -> dict[str, Any]:
    """A merge patch of status: a field that is unset now is removed (null), not left as it was (an endpoint
    after unpublishing)."""
    present = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {field: present.get(field) for field in status.model_dump(by_alias=True)}


class ClusterDriver:
    def __init__(self, cluster: Cluster, views: Views, limits: LimitsSource):
        self.cluster = cluster
        self.views = views
        self.limits = limits
        self.created: set[tuple[str, str]] = set()  # Jobs created whose watch event has not come yet
        self._deciding: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def observe_dataset(self, project: CustomVisionProject) -> DatasetObservation:
        return await asyncio.to_thread(observe.observe_dataset, project, self.cluster.s3)

    async def ensure_experiment(self, project: CustomVisionProject) -> tuple[str | None, str | None]:
        return await asyncio.to_thread(observe.ensure_experiment, project, self.cluster.tracking_uri)

    async def projects_in(self, namespace: str) -> list[dict[str, Any]]:
        return self.views.projects_in(namespace)

    async def repair_serving(self, project_body: dict[str, Any]) -> None:
        namespace, name = project_body["metadata"]["namespace"], project_body["metadata"]["name"]
        triton = (namespace, triton_name(name))
        await self.cluster.repair_serving(project_body, self.views.iterations_of(namespace, name),
                                          self.views.deployments.get(triton), self.views.services.get(triton))

    async def project_of(self, iteration: Iteration) -> dict[str, Any] | None:
        return self.views.projects.get((iteration.metadata.namespace, iteration.spec.project_ref.name))

    async def siblings(self, iteration: Iteration) -> list[dict[str, Any]]:
        return self.views.iterations_of(iteration.metadata.namespace, iteration.spec.project_ref.name)

    async def observe_training(self, iteration: Iteration) -> JobObservation | None:
        """The Job as the watches last saw it. A finished Iteration's Job is not looked at again."""
        namespace = iteration.metadata.namespace
        job_name = iteration.status.training_job or iteration_id(iteration)
        job_body = self.views.jobs.get((namespace, job_name))
        if job_body is None and (namespace, job_name) in self.created:
            raise TrainingNotSeenYet(job_name)  # a late watch event, not a missing Job: the event queues it
        self.created.discard((namespace, job_name))
        if reconcile.training_ended(iteration.status):
            return None
        return await self.cluster.observe_job(namespace, job_name, job_body, self.views.pods_of(namespace, job_name),
                                              self.views.workloads.get((namespace, job_name)))

    async def observe_serving(self, iteration: Iteration) -> ServingObservation | None:
        namespace, project = iteration.metadata.namespace, iteration.spec.project_ref.name
        return serving_observation(self.views.deployments.get((namespace, triton_name(project))), project, namespace)

    async def training_queue(self, iteration: Iteration) -> TrainingQueue:
        """A training holds a slot from its Job's creation to the Job's end; Kueue, when it decides, counts its own."""
        namespace = iteration.metadata.namespace
        limits = self.limits.for_namespace(namespace)
        if self.cluster.settings.kueue_queue_name:
            return TrainingQueue(kueue_queue=self.cluster.settings.kueue_queue_name,
                                 iterations_limit=limits.iterations_per_project)
        jobs = {name for (ns, name), job in self.views.jobs.items() if ns == namespace and not job_ended(job)}
        jobs |= {name for ns, name in self.created if ns == namespace}
        return TrainingQueue(limit=limits.concurrent_trainings, iterations_limit=limits.iterations_per_project,
                             running=len(jobs),
                             ahead=reconcile.queued_ahead(iteration, self.views.iterations_in(namespace)))

    def deciding(self, namespace: str) -> asyncio.Lock:
        return self._deciding[namespace]

    async def snapshot_dataset(self, project: CustomVisionProject, name: str) -> None:
        layout = DatasetLayout.of(project.spec.dataset)
        await asyncio.to_thread(DatasetStore(ObjectStore(self.cluster.s3), layout).snapshot, name)

    async def start_training(self, train: reconcile.TrainingJob, iteration_body: dict[str, Any]) -> None:
        namespace = iteration_body["metadata"]["namespace"]
        job = objects.training_job(train, iteration_body, self.cluster.settings, self.cluster.s3)
        await self.cluster.create_or_adopt(self.cluster.batch.create_namespaced_job, namespace, job)
        self.created.add((namespace, train.name))

    async def sync_tracking(self, iteration: Iteration, status: IterationStatus) -> None:
        await asyncio.to_thread(observe.sync_tracking, iteration, iteration.status, status,
                                self.cluster.tracking_uri)

    async def serve(self, project_body: dict[str, Any] | None, iteration: Iteration,
                    serving: ServingObservation | None, wanted: bool) -> None:
        model = model_name(iteration.metadata.uid)
        served = serving is not None and model in serving.models
        if project_body is not None and wanted != served:
            await self.cluster.serve_model(project_body, model, wanted)

    async def report(self, kind: str, body: dict[str, Any], status, outcome: reconcile.Outcome) -> None:
        await self.cluster.patch_status(PLURALS[kind], body, status_patch(status))
        for event in outcome.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])
