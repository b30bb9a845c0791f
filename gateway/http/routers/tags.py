"""The training API's tags."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response

from kubevision.gateway import wire
from kubevision.gateway.http.deps import Tags, TrainingNamespace
from kubevision.gateway.http.routing import Routes

routes = Routes()


@routes("GET", "/projects/{project_id}/tags", response_model=list[wire.Tag])
async def get_tags(project_id: str, namespace: TrainingNamespace, tags: Tags,
                   iteration_id: Annotated[str | None, Query(alias="iterationId", max_length=64)] = None):
    return await tags.tags(namespace, project_id)


@routes("POST", "/projects/{project_id}/tags", response_model=wire.Tag)
async def create_tag(project_id: str, namespace: TrainingNamespace, tags: Tags,
                     name: Annotated[str, Query(max_length=300)],
                     description: Annotated[str | None, Query(max_length=5000)] = None,
                     type: Annotated[str | None, Query(max_length=32)] = None):
    return await tags.create_tag(namespace, project_id, name, description, type)


@routes("GET", "/projects/{project_id}/tags/{tag_id}", response_model=wire.Tag)
async def get_tag(project_id: str, tag_id: str, namespace: TrainingNamespace, tags: Tags,
                  iteration_id: Annotated[str | None, Query(alias="iterationId", max_length=64)] = None):
    return await tags.tag(namespace, project_id, tag_id)


@routes("PATCH", "/projects/{project_id}/tags/{tag_id}", response_model=wire.Tag)
async def update_tag(project_id: str, tag_id: str, updated: wire.Tag, namespace: TrainingNamespace,
                     tags: Tags):
    return await tags.update_tag(namespace, project_id, tag_id, updated)


@routes("DELETE", "/projects/{project_id}/tags/{tag_id}", status_code=204, response_class=Response)
async def delete_tag(project_id: str, tag_id: str, namespace: TrainingNamespace, tags: Tags):
    await tags.delete_tag(namespace, project_id, tag_id)
