"""The training API's stored predictions: queried and deleted."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response

from kubevision.gateway import wire
from kubevision.gateway.http.deps import BaseUrl, StoredPredictions, TrainingNamespace
from kubevision.gateway.http.routing import IdList, Routes, ids

routes = Routes()


@routes("POST", "/projects/{project_id}/predictions/query", response_model=wire.PredictionQueryResult)
async def query_predictions(project_id: str, query: wire.PredictionQueryToken, namespace: TrainingNamespace,
                            stored: StoredPredictions, base: BaseUrl):
    return await stored.query_predictions(namespace, project_id, query, base)


@routes("DELETE", "/projects/{project_id}/predictions", status_code=204, response_class=Response)
async def delete_prediction(project_id: str, namespace: TrainingNamespace, stored: StoredPredictions,
                            prediction_ids: Annotated[IdList, Query(alias="ids")] = None):
    await stored.delete_predictions(namespace, project_id, ids(prediction_ids) or [])
