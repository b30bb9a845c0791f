"""An Iteration's reconcile on a cluster (found in the views, run through the sequence), and its deletion."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from kubevision.core import api as kv
from kubevision.core.api import Iteration, IterationPhase
from kubevision.core.labels import model_name
from kubevision.core.storage import STORAGE_FAULTS
from kubevision.operator import metrics, sequence
from kubevision.operator.cluster import DELETE_RETRIES, ITERATIONS, PROJECTS
from kubevision.operator.handlers.cluster_driver import ClusterDriver


def register(registry: kopf.OperatorRegistry, driver: ClusterDriver,
             retry_delay: float) -> Callable[[str, str], Awaitable[float | None]]:
    """The deletion handler, on `registry`; returns reconcile(namespace, name) -> seconds until the next look."""
    cluster = driver.cluster
    training: set[tuple[str, str]] = set()  # Iterations whose Job runs, for the gauge

    async def reconcile_iteration(namespace: str, name: str) -> float | None:
        body = driver.views.iterations.get((namespace, name))
        if body is None or body["metadata"].get("deletionTimestamp"):
            training.discard((namespace, name))
            return None  # gone, or going: the deletion handler takes it from here
        with metrics.reconcile_timer("Iteration"):
            plan = await sequence.reconcile_iteration(driver, body)
            if plan is None:
                return math.inf  # its Job's watch event queues it
            (training.add if plan.status.phase == IterationPhase.TRAINING else training.discard)((namespace, name))
            metrics.RUNNING_JOBS.set(len(training))
            if plan.status.phase == IterationPhase.QUEUED and plan.outcome.requeue_after is not None:
                return plan.outcome.requeue_after  # a slot frees with a Job's end (watched), a raised limit silently
            return math.inf  # the Job, its pods, the project and Triton queue this Iteration through their watches

    @kopf.on.delete(group=kv.GROUP, version=kv.VERSION, plural=ITERATIONS, registry=registry)
    async def iteration_deleted(body: kopf.Body, namespace: str, name: str, retry: int, **_: Any) -> None:
        """The served model goes: Triton stops loading it and its folder leaves the model repository. MLflow keeps
        the run and the registered version, without the alias of its publish name. With S3 gone, a few retries, then
        a Warning, and deletion goes on."""
        training.discard((namespace, name))
        project, model = body["spec"]["projectRef"]["name"], model_name(body["metadata"].get("uid"))
        project_body = await cluster.get_custom(PROJECTS, namespace, project)
        if project_body is not None:
            await cluster.serve_model(project_body, model, wanted=False)
        iteration = Iteration.model_validate(body)
        await driver.sync_tracking(iteration, kv.IterationStatus())
        try:
            await asyncio.to_thread(cluster.remove_served_model, namespace, project, model)
        except STORAGE_FAULTS as error:
            if retry + 1 < DELETE_RETRIES:
                raise kopf.TemporaryError(f"S3: {error}", delay=retry_delay) from error
            kopf.warn(body, reason="ModelNotRemoved",
                      message=f"could not remove the model from S3 after {DELETE_RETRIES} tries: {error}")

    return reconcile_iteration
