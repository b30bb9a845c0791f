"""KubeVision's manifest route (no Custom Vision route has it): a project's CustomVisionProject as a manifest to keep
in Git and apply with Argo CD. The key names the namespace; another namespace's projects are not found."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from kubevision.gateway.http.deps import Projects, TrainingNamespace, training_namespace
from kubevision.gateway.http.routers.usage import PREFIX


def router(errors: dict) -> APIRouter:
    routes = APIRouter(prefix=PREFIX, tags=["Manifests"], responses=errors,
                       dependencies=[Depends(training_namespace)])

    @routes.get("/projects/{project_id}/manifest")
    async def get_project_manifest(project_id: str, namespace: TrainingNamespace,
                                   projects: Projects) -> dict[str, Any]:
        return projects.project_manifest(namespace, project_id)

    return routes
