"""A project's reconcile on a cluster (found in the views, run through the sequence), and its deletion."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from kubevision.core import api as kv
from kubevision.core.reasons import Reason
from kubevision.core.storage import STORAGE_FAULTS, StorageUnavailable
from kubevision.operator import datasets, metrics, sequence
from kubevision.operator.cluster import DELETE_RETRIES, PROJECTS
from kubevision.operator.handlers.cluster_driver import ClusterDriver


def register(registry: kopf.OperatorRegistry, driver: ClusterDriver, fault_retry: float,
             retry_delay: float) -> Callable[[str, str], Awaitable[float | None]]:
    """The deletion handler, on `registry`; returns reconcile(namespace, name) -> seconds until the next look
    (None: never)."""

    async def reconcile_project(namespace: str, name: str) -> float | None:
        body = driver.views.projects.get((namespace, name))
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None  # gone, or going: the deletion handler takes its dataset, owner references its Triton
        with metrics.reconcile_timer("CustomVisionProject"):
            outcome = await sequence.reconcile_project(driver, body)
            # S3, MLflow or a dataset that cannot train yet: no watch says when they change
            return fault_retry if outcome.requeue_after is not None else math.inf

    @kopf.on.delete(group=kv.GROUP, version=kv.VERSION, plural=PROJECTS, registry=registry)
    async def project_deleted(body: kopf.Body, namespace: str, retry: int, **_: Any) -> None:
        """Its dataset goes (operator/datasets.py) before the project does: deleted is deleted. S3 failing holds
        the deletion, with a Warning after a few tries, until S3 answers."""
        try:
            await asyncio.to_thread(datasets.delete_dataset, dict(body), driver.views.projects_in(namespace),
                                    driver.cluster.s3)
        except (*STORAGE_FAULTS, StorageUnavailable) as error:
            if retry + 1 >= DELETE_RETRIES:
                kopf.warn(body, reason=Reason.DATASET_NOT_REMOVED,
                          message=f"could not remove the dataset from S3 ({retry + 1} tries); trying again: {error}")
            raise kopf.TemporaryError(f"S3: {error}", delay=retry_delay) from error

    return reconcile_project
