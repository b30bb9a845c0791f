"""What routes receive through FastAPI's dependencies: the caller's namespace from its key, and the services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from kubevision.gateway.predictions import PredictionService


def prediction_namespace(
    request: Request,
    prediction_key: Annotated[str | None, Header(alias="Prediction-Key", description="The namespace's key.")] = None,
) -> str:
    return request.app.state.source.catalog.namespace_of("prediction", prediction_key)


def prediction_service(request: Request) -> PredictionService:
    return request.app.state.predictions


PredictionNamespace = Annotated[str, Depends(prediction_namespace)]
Predictions = Annotated[PredictionService, Depends(prediction_service)]
