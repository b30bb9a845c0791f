"""The training API's images: uploads (bytes, files, URLs, stored predictions), listings and counts, tags,
regions and metadata."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

from kubevision.gateway import wire
from kubevision.gateway.errors import CustomVisionError
from kubevision.gateway.http.deps import BaseUrl, Labeller, TrainingNamespace
from kubevision.gateway.http.routing import IMAGES_BODY, IdList, Routes, Skip, Take, ids
from kubevision.gateway.http.uploads import all_parts

routes = Routes()


@routes("POST", "/projects/{project_id}/images", response_model=wire.ImageCreateSummary,
        openapi_extra=IMAGES_BODY)
async def create_images_from_data(request: Request, project_id: str, namespace: TrainingNamespace,
                                  labeller: Labeller, base: BaseUrl, tag_ids: Annotated[IdList, Query(
                                      alias="tagIds")] = None):
    labeller.lookup.project(namespace, project_id)
    parts = await all_parts(request)
    try:
        return await labeller.from_data(namespace, project_id, parts.readers(), ids(tag_ids), base)
    finally:
        parts.close()


@routes("POST", "/projects/{project_id}/images/files", response_model=wire.ImageCreateSummary)
async def create_images_from_files(project_id: str, batch: wire.ImageFileCreateBatch,
                                   namespace: TrainingNamespace, labeller: Labeller, base: BaseUrl):
    return await labeller.from_files(namespace, project_id, batch, base)


@routes("POST", "/projects/{project_id}/images/urls", response_model=wire.ImageCreateSummary)
async def create_images_from_urls(project_id: str, batch: wire.ImageUrlCreateBatch,
                                  namespace: TrainingNamespace, labeller: Labeller, base: BaseUrl):
    return await labeller.from_urls(namespace, project_id, batch, base)


@routes("POST", "/projects/{project_id}/images/predictions", response_model=wire.ImageCreateSummary)
async def create_images_from_predictions(project_id: str, batch: wire.ImageIdCreateBatch,
                                         namespace: TrainingNamespace, labeller: Labeller, base: BaseUrl):
    return await labeller.from_predictions(namespace, project_id, batch, base)


def listing(tagged: bool | None):
    async def list_images(project_id: str, namespace: TrainingNamespace, labeller: Labeller, base: BaseUrl,
                          iteration_id: Annotated[str | None, Query(alias="iterationId", max_length=64)] = None,
                          tag_ids: Annotated[IdList, Query(alias="tagIds")] = None,
                          tagging_status: Annotated[str | None, Query(alias="taggingStatus",
                                                                      max_length=16)] = None,
                          order_by: Annotated[str | None, Query(alias="orderBy", max_length=16)] = None,
                          take: Take = 50, skip: Skip = 0):
        return await labeller.listing(namespace, project_id, status_filter(tagged, tagging_status),
                                      ids(tag_ids), order_by, take, skip, base, iteration_id)

    return list_images


def counting(tagged: bool | None):
    async def count_images(project_id: str, namespace: TrainingNamespace, labeller: Labeller,
                           iteration_id: Annotated[str | None, Query(alias="iterationId", max_length=64)] = None,
                           tag_ids: Annotated[IdList, Query(alias="tagIds")] = None,
                           tagging_status: Annotated[str | None, Query(alias="taggingStatus",
                                                                       max_length=16)] = None):
        return await labeller.count(namespace, project_id, status_filter(tagged, tagging_status), ids(tag_ids),
                                    iteration_id)

    return count_images


def _add_listings() -> None:
    """GET /images, /images/tagged and /images/untagged, each with its count, in that order."""
    for path, tagged in (("", None), ("/tagged", True), ("/untagged", False)):
        name = {None: "images", True: "tagged_images", False: "untagged_images"}[tagged]
        endpoint = listing(tagged)
        endpoint.__name__ = f"get_{name}"
        routes("GET", f"/projects/{{project_id}}/images{path}", response_model=list[wire.Image])(endpoint)
        counter = counting(tagged)
        counter.__name__ = f"get_{name}_count"
        routes("GET", f"/projects/{{project_id}}/images{path}/count", response_model=int)(counter)


_add_listings()


@routes("GET", "/projects/{project_id}/images/id", response_model=list[wire.Image])
async def get_images_by_ids(project_id: str, namespace: TrainingNamespace, labeller: Labeller, base: BaseUrl,
                            image_ids: Annotated[IdList, Query(alias="imageIds")] = None,
                            iteration_id: Annotated[str | None, Query(alias="iterationId", max_length=64)] = None):
    return await labeller.by_ids(namespace, project_id, ids(image_ids) or [], base)


@routes("DELETE", "/projects/{project_id}/images", status_code=204, response_class=Response)
async def delete_images(project_id: str, namespace: TrainingNamespace, labeller: Labeller,
                        image_ids: Annotated[IdList, Query(alias="imageIds")] = None,
                        all_images: Annotated[bool, Query(alias="allImages")] = False,
                        all_iterations: Annotated[bool, Query(alias="allIterations")] = False):
    await labeller.delete(namespace, project_id, ids(image_ids), all_images)


@routes("POST", "/projects/{project_id}/images/tags", response_model=wire.ImageTagCreateSummary)
async def create_image_tags(project_id: str, batch: wire.ImageTagCreateBatch, namespace: TrainingNamespace,
                            labeller: Labeller):
    return await labeller.tag_images(namespace, project_id, batch)


@routes("DELETE", "/projects/{project_id}/images/tags", status_code=204, response_class=Response)
async def delete_image_tags(project_id: str, namespace: TrainingNamespace, labeller: Labeller,
                            image_ids: Annotated[IdList, Query(alias="imageIds")] = None,
                            tag_ids: Annotated[IdList, Query(alias="tagIds")] = None):
    await labeller.untag_images(namespace, project_id, ids(image_ids) or [], ids(tag_ids) or [])


@routes("POST", "/projects/{project_id}/images/regions", response_model=wire.ImageRegionCreateSummary)
async def create_image_regions(project_id: str, batch: wire.ImageRegionCreateBatch,
                               namespace: TrainingNamespace, labeller: Labeller):
    return await labeller.create_regions(namespace, project_id, batch)


@routes("DELETE", "/projects/{project_id}/images/regions", status_code=204, response_class=Response)
async def delete_image_regions(project_id: str, namespace: TrainingNamespace, labeller: Labeller,
                               region_ids: Annotated[IdList, Query(alias="regionIds")] = None):
    await labeller.delete_regions(namespace, project_id, ids(region_ids) or [])


@routes("POST", "/projects/{project_id}/images/metadata", response_model=wire.ImageMetadataUpdateSummary)
async def update_image_metadata(project_id: str, metadata: dict[str, str], namespace: TrainingNamespace,
                                labeller: Labeller, image_ids: Annotated[IdList, Query(alias="imageIds")] = None):
    return await labeller.update_metadata(namespace, project_id, ids(image_ids) or [], metadata)


def status_filter(tagged: bool | None, tagging_status: str | None) -> bool | None:
    """The tagged and untagged routes say it in their path; v3.4's /images says it with taggingStatus."""
    if tagged is not None or tagging_status in (None, "All"):
        return tagged
    if tagging_status not in ("Tagged", "Untagged"):
        raise CustomVisionError("taggingStatus is All, Tagged or Untagged.", "BadRequest")
    return tagging_status == "Tagged"
