"""The kopf handlers: watches that keep the views and queue reconciles (watches.py), and a work queue that runs
each project's and Iteration's reconcile (projects.py, iterations.py) through the reconcile sequence with the
cluster's driver (cluster_driver.py).

Everything a reconcile reads from the cluster comes from the views that the watches keep current (projects,
Iterations, training Jobs and their pods, Triton Deployments and Services), so a reconcile that finds nothing to do
sends no request. A watch event queues the resource it concerns, or its owner (a Job's Iteration, a Deployment's
project); with no event, a resource is reconciled again after `OperatorSettings.resync_seconds` (jittered): the
safety net, as controller-runtime's resync. No kopf daemon or timer: those cost a task, and a finalizer written at
start, per resource.
"""

from __future__ import annotations

import kopf

from kubevision.core.limits import limits_source
from kubevision.operator import reconcile
from kubevision.operator.cluster import Cluster
from kubevision.operator.handlers import iterations, projects, watches
from kubevision.operator.handlers.cluster_driver import ClusterDriver
from kubevision.operator.views import Views
from kubevision.operator.workqueue import Key, WorkQueue

WORKERS = 16  # reconciles at once: enough to keep S3, MLflow and the API server busy when hundreds arrive together


def register(registry: kopf.OperatorRegistry, cluster: Cluster, retry_delay: float = 10,
             fault_retry: float = reconcile.RETRY_FAULT) -> None:
    """Every handler of the operator, on `registry` (one per operator instance: tests run several). In seconds:
    `retry_delay` between a deletion's tries and after an unforeseen error; `fault_retry` before a project whose
    S3 or MLflow failed, or whose dataset cannot train yet, is looked at again (no watch says when they change)."""
    views = Views()
    driver = ClusterDriver(cluster, views, limits_source())
    reconcilers = {"project": projects.register(registry, driver, fault_retry, retry_delay),
                   "iteration": iterations.register(registry, driver, retry_delay)}

    async def reconcile_key(key: Key) -> float | None:
        kind, namespace, name = key
        try:
            return await reconcilers[kind](namespace, name)
        except kopf.TemporaryError as error:
            return error.delay

    queue = WorkQueue(reconcile_key, cluster.settings.resync_seconds, WORKERS, retry_delay)
    watches.register(registry, cluster, views, queue)
