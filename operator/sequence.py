"""The reconcile sequence, once for both drivers: observe, reconcile (the pure core in reconcile.py), snapshot and
start a training, write status and Events, sync the MLflow alias, serve. What is read and written, and how, is the
driver's (driver.py); finding the resource and handling its deletion too."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from kubevision.core.api import CustomVisionProject, Iteration
from kubevision.operator import metrics, reconcile
from kubevision.operator.driver import Driver, TrainingNotSeenYet
from kubevision.operator.reconcile import IterationObservation, IterationPlan, Outcome, TrainingQueue

PROJECT, ITERATION = "CustomVisionProject", "Iteration"


async def reconcile_project(driver: Driver, body: dict[str, Any]) -> Outcome:
    """One pass over a project that is not being deleted."""
    project = CustomVisionProject.model_validate(body)
    namespace = project.metadata.namespace
    count = reconcile.ProjectCount(limit=driver.limits.for_namespace(namespace).projects,
                                   older=reconcile.older_projects(project, await driver.projects_in(namespace)))
    if reconcile.foreign_dataset(project) is None and not count.exceeded:
        dataset = await driver.observe_dataset(project)
        experiment_id, tracking_error = await driver.ensure_experiment(project)
    else:
        # Another namespace's dataset, or its whole namespace's: not read, and nothing made for it. Past the
        # namespace's limit of projects: reading its manifest would be harmless, but it is looked at every 30 s
        # and can train nothing, so a flood of applied projects costs neither S3 reads nor MLflow experiments.
        dataset, experiment_id, tracking_error = reconcile.DatasetObservation(), None, None
    status, outcome = reconcile.reconcile_project(project, dataset, tracking_error, experiment_id, driver.now(),
                                                  count)
    await driver.report(PROJECT, body, status, outcome)
    await driver.repair_serving(body)
    return outcome


async def reconcile_iteration(driver: Driver, body: dict[str, Any]) -> IterationPlan | None:
    """One pass over an Iteration that is not being deleted; None when its training is not visible yet."""
    iteration = Iteration.model_validate(body)
    project_body = await driver.project_of(iteration)
    project = CustomVisionProject.model_validate(project_body) if project_body else None
    try:
        job = await driver.observe_training(iteration)
    except TrainingNotSeenYet:
        return None
    siblings = await driver.siblings(iteration)
    publish_owner = reconcile.publish_owners(siblings).get(iteration.spec.publish_name or "")
    serving = await driver.observe_serving(iteration)
    # Only an Iteration that may start its training now takes its namespace's turn and looks at its queue.
    waiting = job is None and not reconcile.training_ended(iteration.status)
    async with driver.deciding(iteration.metadata.namespace) if waiting else contextlib.nullcontext():
        observed = IterationObservation(
            project=project, job=job, publish_owner=publish_owner, serving=serving,
            queue=dataclasses.replace(await driver.training_queue(iteration),
                                      older_iterations=reconcile.older_iterations(iteration, siblings))
            if waiting else TrainingQueue(),
        )
        plan = reconcile.reconcile_iteration(iteration, observed, driver.now())
        if plan.train is not None:
            await driver.snapshot_dataset(project, plan.train.name)
            await driver.start_training(plan.train, body)
    await driver.report(ITERATION, body, plan.status, plan.outcome)
    metrics.count_training(iteration, plan.status)  # once written: a pass whose write failed is done again
    await driver.sync_tracking(iteration, plan.status)
    await driver.serve(project_body, iteration, observed.serving, plan.serve)
    return plan
