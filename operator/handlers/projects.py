"""A project's reconcile on a cluster: found in the views, run through the sequence."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from kubevision.operator import metrics, sequence
from kubevision.operator.handlers.cluster_driver import ClusterDriver


def reconciler(driver: ClusterDriver, fault_retry: float) -> Callable[[str, str], Awaitable[float | None]]:
    """reconcile(namespace, name) -> seconds until the next look (None: never)."""

    async def reconcile_project(namespace: str, name: str) -> float | None:
        body = driver.views.projects.get((namespace, name))
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None  # gone, or going: its Triton goes with it (owner references)
        with metrics.reconcile_timer("CustomVisionProject"):
            outcome = await sequence.reconcile_project(driver, body)
            # S3, MLflow or a dataset that cannot train yet: no watch says when they change
            return fault_retry if outcome.requeue_after is not None else math.inf

    return reconcile_project
