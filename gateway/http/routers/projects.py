"""The training API's domains and projects, with a project's export and import."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Query, Response

from kubevision.gateway import domains, wire
from kubevision.gateway.http.deps import Projects, TrainingNamespace, Transfers
from kubevision.gateway.http.routing import Routes

routes = Routes()


@routes("GET", "/domains", response_model=list[wire.Domain])
async def get_domains(projects: Projects):
    return [projects.domain_wire(d) for d in domains.DOMAINS]


@routes("GET", "/domains/{domain_id}", response_model=wire.Domain)
async def get_domain(domain_id: str, projects: Projects):
    return projects.domain_wire(domains.domain(domain_id, not_found=True))

# projects --------------------------------------------------------------------------------------------------
@routes("GET", "/projects", response_model=list[wire.Project])
async def get_projects(namespace: TrainingNamespace, projects: Projects):
    return projects.projects(namespace)


@routes("POST", "/projects", response_model=wire.Project)
async def create_project(
    namespace: TrainingNamespace, projects: Projects, name: Annotated[str, Query(max_length=256)],
    description: Annotated[str | None, Query(max_length=4096)] = None,
    domain_id: Annotated[str | None, Query(alias="domainId", max_length=64)] = None,
    classification_type: Annotated[str | None, Query(alias="classificationType", max_length=32)] = None,
    target_export_platforms: Annotated[str | None, Query(alias="targetExportPlatforms", max_length=256)] = None,
    options: Annotated[dict | None, Body()] = None,
):
    return await projects.create_project(namespace, name, description, domain_id, classification_type)


@routes("GET", "/projects/{project_id}", response_model=wire.Project)
async def get_project(project_id: str, namespace: TrainingNamespace, projects: Projects):
    return projects.get_project(namespace, project_id)


@routes("PATCH", "/projects/{project_id}", response_model=wire.Project)
async def update_project(project_id: str, updated: wire.Project, namespace: TrainingNamespace, projects: Projects):
    return await projects.update_project(namespace, project_id, updated)


@routes("DELETE", "/projects/{project_id}", status_code=204, response_class=Response)
async def delete_project(project_id: str, namespace: TrainingNamespace, projects: Projects):
    await projects.delete_project(namespace, project_id)


@routes("GET", "/projects/{project_id}/export", response_model=wire.ProjectExport)
async def export_project(project_id: str, namespace: TrainingNamespace, transfers: Transfers,
                         import_namespace: Annotated[str | None, Query(alias="importNamespace", max_length=63)] = None):
    return await transfers.export_project(namespace, project_id, import_namespace)


@routes("POST", "/projects/import", response_model=wire.Project)
async def import_project(namespace: TrainingNamespace, transfers: Transfers,
                         token: Annotated[str, Query(max_length=4096)],
                         name: Annotated[str | None, Query(max_length=256)] = None):
    return await transfers.import_project(namespace, token, name)
