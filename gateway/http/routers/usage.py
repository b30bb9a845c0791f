"""KubeVision's usage route (no Custom Vision route has it): what the Training-Key's namespace used, by project.
The key names the namespace, and the answer holds that namespace's figures only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from kubevision.gateway import wire
from kubevision.gateway.http.deps import TrainingNamespace, Usage, training_namespace

PREFIX = "/kubevision/v1"


def router(errors: dict) -> APIRouter:
    routes = APIRouter(prefix=PREFIX, tags=["Usage"], responses=errors, dependencies=[Depends(training_namespace)])

    @routes.get("/usage", response_model=wire.UsageReport)
    async def get_usage(namespace: TrainingNamespace, usage: Usage,
                        since: Annotated[str, Query(max_length=16, description="The window: 90m, 24h, 7d, 2w.")]
                        = "24h") -> wire.UsageReport:
        return await usage.report(namespace, since)

    return routes
