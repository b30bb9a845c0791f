"""What routes receive through FastAPI's dependencies: the caller's namespace from its key, and the services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from kubevision.gateway.services.images import LabellingService
from kubevision.gateway.services.predictions import PredictionService
from kubevision.gateway.services.projects import TrainingService
from kubevision.gateway.services.transfer import ProjectTransfer


def prediction_namespace(
    request: Request,
    prediction_key: Annotated[str | None, Header(alias="Prediction-Key", description="The namespace's key.")] = None,
) -> str:
    return request.app.state.source.catalog.namespace_of("prediction", prediction_key)


def prediction_service(request: Request) -> PredictionService:
    return request.app.state.predictions


PredictionNamespace = Annotated[str, Depends(prediction_namespace)]
Predictions = Annotated[PredictionService, Depends(prediction_service)]


def training_namespace(
    request: Request,
    training_key: Annotated[str | None, Header(alias="Training-Key", description="The namespace's key.")] = None,
) -> str:
    return request.app.state.source.catalog.namespace_of("training", training_key)


def training_service(request: Request) -> TrainingService:
    return request.app.state.training


def labelling_service(request: Request) -> LabellingService:
    return request.app.state.labelling


def transfer_service(request: Request) -> ProjectTransfer:
    return request.app.state.transfer


def base_url(request: Request) -> str:
    """Where the caller reached the gateway; download links start with it (unless public_url is set)."""
    return str(request.base_url)


TrainingNamespace = Annotated[str, Depends(training_namespace)]
Trainer = Annotated[TrainingService, Depends(training_service)]
Labeller = Annotated[LabellingService, Depends(labelling_service)]
Transfers = Annotated[ProjectTransfer, Depends(transfer_service)]
BaseUrl = Annotated[str, Depends(base_url)]
