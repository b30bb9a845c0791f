"""The training API's iterations: training, renaming, deleting, publishing and unpublishing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Query, Response

from kubevision.gateway import wire
from kubevision.gateway.http.deps import Iterations, TrainingNamespace
from kubevision.gateway.http.routing import Routes

routes = Routes()


@routes("POST", "/projects/{project_id}/train", response_model=wire.Iteration)
async def train_project(
    project_id: str, namespace: TrainingNamespace, iterations: Iterations,
    training_type: Annotated[str | None, Query(alias="trainingType", max_length=16)] = None,
    reserved_budget_in_hours: Annotated[int, Query(alias="reservedBudgetInHours", ge=0, le=48)] = 0,
    force_train: Annotated[bool, Query(alias="forceTrain")] = False,
    notification_email_address: Annotated[str | None, Query(alias="notificationEmailAddress",
                                                            max_length=256)] = None,
    parameters: Annotated[wire.TrainingParameters | None, Body()] = None,
):
    return await iterations.train(namespace, project_id, training_type, reserved_budget_in_hours, force_train)


@routes("GET", "/projects/{project_id}/iterations", response_model=list[wire.Iteration])
async def get_iterations(project_id: str, namespace: TrainingNamespace, iterations: Iterations):
    return iterations.iterations(namespace, project_id)


@routes("GET", "/projects/{project_id}/iterations/{iteration_id}", response_model=wire.Iteration)
async def get_iteration(project_id: str, iteration_id: str, namespace: TrainingNamespace, iterations: Iterations):
    return iterations.iteration(namespace, project_id, iteration_id)


@routes("PATCH", "/projects/{project_id}/iterations/{iteration_id}", response_model=wire.Iteration)
async def update_iteration(project_id: str, iteration_id: str, updated: wire.Iteration,
                           namespace: TrainingNamespace, iterations: Iterations):
    return await iterations.update_iteration(namespace, project_id, iteration_id, updated.name)


@routes("DELETE", "/projects/{project_id}/iterations/{iteration_id}", status_code=204, response_class=Response)
async def delete_iteration(project_id: str, iteration_id: str, namespace: TrainingNamespace, iterations: Iterations):
    await iterations.delete_iteration(namespace, project_id, iteration_id)


@routes("POST", "/projects/{project_id}/iterations/{iteration_id}/publish", response_model=bool)
async def publish_iteration(project_id: str, iteration_id: str, namespace: TrainingNamespace, iterations: Iterations,
                            publish_name: Annotated[str, Query(alias="publishName", max_length=256)],
                            prediction_id: Annotated[str, Query(alias="predictionId", max_length=1024)],
                            overwrite: bool = False):
    return await iterations.publish(namespace, project_id, iteration_id, publish_name, overwrite)


@routes("DELETE", "/projects/{project_id}/iterations/{iteration_id}/publish", status_code=204,
        response_class=Response)
async def unpublish_iteration(project_id: str, iteration_id: str, namespace: TrainingNamespace,
                              iterations: Iterations):
    await iterations.unpublish(namespace, project_id, iteration_id)
