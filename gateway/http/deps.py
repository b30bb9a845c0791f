"""What routes receive through FastAPI's dependencies: the caller's namespace from its key, and the services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from kubevision.gateway.services.exports import ExportService
from kubevision.gateway.services.images import LabellingService
from kubevision.gateway.services.iterations import IterationService
from kubevision.gateway.services.performance import PerformanceService
from kubevision.gateway.services.predictions import PredictionService
from kubevision.gateway.services.projects import ProjectService
from kubevision.gateway.services.stored_predictions import StoredPredictionService
from kubevision.gateway.services.tags import TagService
from kubevision.gateway.services.transfer import ProjectTransfer
from kubevision.gateway.services.usage import UsageService


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


def _state(name: str):
    """A dependency that hands a route the service the app's lifespan made under `name`."""

    def service(request: Request):
        return getattr(request.app.state, name)

    service.__name__ = f"{name}_service"
    return service


def base_url(request: Request) -> str:
    """Where the caller reached the gateway; download links start with it (unless public_url is set)."""
    return str(request.base_url)


TrainingNamespace = Annotated[str, Depends(training_namespace)]
Projects = Annotated[ProjectService, Depends(_state("projects"))]
Tags = Annotated[TagService, Depends(_state("tags"))]
Labeller = Annotated[LabellingService, Depends(_state("labelling"))]
Iterations = Annotated[IterationService, Depends(_state("iterations"))]
Performance = Annotated[PerformanceService, Depends(_state("performance"))]
Exports = Annotated[ExportService, Depends(_state("exports"))]
StoredPredictions = Annotated[StoredPredictionService, Depends(_state("stored_predictions"))]
Transfers = Annotated[ProjectTransfer, Depends(_state("transfer"))]
Usage = Annotated[UsageService, Depends(_state("usage"))]
BaseUrl = Annotated[str, Depends(base_url)]
