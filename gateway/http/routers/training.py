"""Custom Vision's training API (v3.3, and v3.4-preview, which the official SDKs call): domains, projects, tags,
images, iterations, publishing, performance, exports, stored predictions and quick tests. Thin: parse, call the
training or labelling service, answer. The Training-Key check is the router's dependency."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from kubevision.core.labelstore.store import MAX_BATCH
from kubevision.core.training import MAX_IMAGE_BYTES
from kubevision.gateway import domains, wire
from kubevision.gateway.catalog import Project
from kubevision.gateway.http.deps import (
    BaseUrl,
    Labeller,
    Predictions,
    Trainer,
    TrainingNamespace,
    Transfers,
    training_namespace,
)
from kubevision.gateway.errors import CustomVisionError, UnsupportedMediaType
from kubevision.gateway.images import fetch as fetch_image
from kubevision.gateway.services.images import newest_first, tag_filter
from kubevision.gateway.services.predictions import PredictionService
from kubevision.gateway.http.routers.prediction import image_bytes, multipart_parts

VERSIONS = ("v3.3", "v3.4-preview")
UPLOAD_LIMIT = MAX_BATCH * MAX_IMAGE_BYTES + 1024 * 1024  # a full batch of the largest images, and its multipart

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": wire.CustomVisionErrorBody, "description": description} for status, description in {
        400: "The request is not acceptable: the body's code says why.",
        401: "The Training-Key is missing or not valid.",
        404: "No such project, tag, iteration or domain for this key.",
        409: "The project's manifest belongs to someone else (docs/storage.md).",
        415: "The body's media type is not accepted.",
    }.items()
}
IMAGES_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "imageData": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}}}


def ids(value: str | None) -> list[str] | None:
    """A comma-separated list of ids, as the SDKs send them."""
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


IdList = Annotated[str | None, Query(max_length=10_000, description="Comma-separated ids.")]
Take = Annotated[int, Query(ge=0, le=256, description="At most 256 a page.")]
Skip = Annotated[int, Query(ge=0, le=10_000_000)]


async def all_parts(request: Request) -> list[bytes]:
    """Every part of a multipart form (one image each), or the raw body as one image."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        if media_type not in ("application/octet-stream", "") and not media_type.startswith("image/"):
            raise UnsupportedMediaType(f"Content-Type {media_type} is not accepted: send multipart/form-data or "
                                       "application/octet-stream.")
        return [await image_bytes(request, MAX_IMAGE_BYTES + 1)]  # one byte over: the store says ErrorImageSize
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > UPLOAD_LIMIT:
        raise CustomVisionError(f"The batch is over {UPLOAD_LIMIT} bytes.", "BadRequestImageBatch")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > UPLOAD_LIMIT:
            raise CustomVisionError(f"The batch is over {UPLOAD_LIMIT} bytes.", "BadRequestImageBatch")
    return multipart_parts(bytes(body), content_type)


def router(version: str) -> APIRouter:
    routes = APIRouter(prefix=f"/customvision/{version}/training", tags=[f"Training {version}"], responses=ERRORS,
                       dependencies=[Depends(training_namespace)])
    suffix = version.replace(".", "_").replace("-", "_")

    def route(method: str, path: str, **options):
        def register(endpoint):
            routes.add_api_route(path, endpoint, methods=[method], name=f"{endpoint.__name__}_{suffix}",
                                 response_model_exclude_none=True, **options)
            return endpoint

        return register

    # domains ---------------------------------------------------------------------------------------------------
    @route("GET", "/domains", response_model=list[wire.Domain])
    async def get_domains(trainer: Trainer):
        return [trainer.domain_wire(d) for d in domains.DOMAINS]

    @route("GET", "/domains/{domain_id}", response_model=wire.Domain)
    async def get_domain(domain_id: str, trainer: Trainer):
        return trainer.domain_wire(domains.domain(domain_id, not_found=True))

    # projects --------------------------------------------------------------------------------------------------
    @route("GET", "/projects", response_model=list[wire.Project])
    async def get_projects(namespace: TrainingNamespace, trainer: Trainer):
        return trainer.projects(namespace)

    @route("POST", "/projects", response_model=wire.Project)
    async def create_project(
        namespace: TrainingNamespace, trainer: Trainer, name: Annotated[str, Query(max_length=256)],
        description: Annotated[str | None, Query(max_length=4096)] = None,
        domain_id: Annotated[str | None, Query(alias="domainId", max_length=64)] = None,
        classification_type: Annotated[str | None, Query(alias="classificationType", max_length=32)] = None,
        target_export_platforms: Annotated[str | None, Query(alias="targetExportPlatforms", max_length=256)] = None,
        options: Annotated[dict | None, Body()] = None,
    ):
        return await trainer.create_project(namespace, name, description, domain_id, classification_type)

    @route("GET", "/projects/{project_id}", response_model=wire.Project)
    async def get_project(project_id: str, namespace: TrainingNamespace, trainer: Trainer):
        return trainer.get_project(namespace, project_id)

    @route("PATCH", "/projects/{project_id}", response_model=wire.Project)
    async def update_project(project_id: str, updated: wire.Project, namespace: TrainingNamespace, trainer: Trainer):
        return await trainer.update_project(namespace, project_id, updated)

    @route("DELETE", "/projects/{project_id}", status_code=204, response_class=Response)
    async def delete_project(project_id: str, namespace: TrainingNamespace, trainer: Trainer):
        await trainer.delete_project(namespace, project_id)

    @route("GET", "/projects/{project_id}/export", response_model=wire.ProjectExport)
    async def export_project(project_id: str, namespace: TrainingNamespace, transfers: Transfers):
        return await transfers.export_project(namespace, project_id)

    @route("POST", "/projects/import", response_model=wire.Project)
    async def import_project(namespace: TrainingNamespace, transfers: Transfers,
                             token: Annotated[str, Query(max_length=4096)],
                             name: Annotated[str | None, Query(max_length=256)] = None):
        return await transfers.import_project(namespace, token, name)

    # tags ------------------------------------------------------------------------------------------------------
    @route("GET", "/projects/{project_id}/tags", response_model=list[wire.Tag])
    async def get_tags(project_id: str, namespace: TrainingNamespace, trainer: Trainer,
                       iteration_id: Annotated[str | None, Query(alias="iterationId", max_length=64)] = None):
        return await trainer.tags(namespace, project_id)

    @route("POST", "/projects/{project_id}/tags", response_model=wire.Tag)
    async def create_tag(project_id: str, namespace: TrainingNamespace, trainer: Trainer,
                         name: Annotated[str, Query(max_length=300)],
                         description: Annotated[str | None, Query(max_length=5000)] = None,
                         type: Annotated[str | None, Query(max_length=32)] = None):
        return await trainer.create_tag(namespace, project_id, name, description, type)

    @route("GET", "/projects/{project_id}/tags/{tag_id}", response_model=wire.Tag)
    async def get_tag(project_id: str, tag_id: str, namespace: TrainingNamespace, trainer: Trainer,
                      iteration_id: Annotated[str | None, Query(alias="iterationId", max_length=64)] = None):
        return await trainer.tag(namespace, project_id, tag_id)

    @route("PATCH", "/projects/{project_id}/tags/{tag_id}", response_model=wire.Tag)
    async def update_tag(project_id: str, tag_id: str, updated: wire.Tag, namespace: TrainingNamespace,
                         trainer: Trainer):
        return await trainer.update_tag(namespace, project_id, tag_id, updated)

    @route("DELETE", "/projects/{project_id}/tags/{tag_id}", status_code=204, response_class=Response)
    async def delete_tag(project_id: str, tag_id: str, namespace: TrainingNamespace, trainer: Trainer):
        await trainer.delete_tag(namespace, project_id, tag_id)

    # images ----------------------------------------------------------------------------------------------------
    @route("POST", "/projects/{project_id}/images", response_model=wire.ImageCreateSummary,
           openapi_extra=IMAGES_BODY)
    async def create_images_from_data(request: Request, project_id: str, namespace: TrainingNamespace,
                                      labeller: Labeller, base: BaseUrl, tag_ids: Annotated[IdList, Query(
                                          alias="tagIds")] = None):
        labeller.s.project(namespace, project_id)
        return await labeller.from_data(namespace, project_id, await all_parts(request), ids(tag_ids), base)

    @route("POST", "/projects/{project_id}/images/files", response_model=wire.ImageCreateSummary)
    async def create_images_from_files(project_id: str, batch: wire.ImageFileCreateBatch,
                                       namespace: TrainingNamespace, labeller: Labeller, base: BaseUrl):
        return await labeller.from_files(namespace, project_id, batch, base)

    @route("POST", "/projects/{project_id}/images/urls", response_model=wire.ImageCreateSummary)
    async def create_images_from_urls(project_id: str, batch: wire.ImageUrlCreateBatch,
                                      namespace: TrainingNamespace, labeller: Labeller, base: BaseUrl):
        return await labeller.from_urls(namespace, project_id, batch, base)

    @route("POST", "/projects/{project_id}/images/predictions", response_model=wire.ImageCreateSummary)
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

    for path, tagged in (("", None), ("/tagged", True), ("/untagged", False)):
        name = {None: "images", True: "tagged_images", False: "untagged_images"}[tagged]
        endpoint = listing(tagged)
        endpoint.__name__ = f"get_{name}"
        route("GET", f"/projects/{{project_id}}/images{path}", response_model=list[wire.Image])(endpoint)
        counter = counting(tagged)
        counter.__name__ = f"get_{name}_count"
        route("GET", f"/projects/{{project_id}}/images{path}/count", response_model=int)(counter)

    @route("GET", "/projects/{project_id}/images/id", response_model=list[wire.Image])
    async def get_images_by_ids(project_id: str, namespace: TrainingNamespace, labeller: Labeller, base: BaseUrl,
                                image_ids: Annotated[IdList, Query(alias="imageIds")] = None,
                                iteration_id: Annotated[str | None, Query(alias="iterationId", max_length=64)] = None):
        return await labeller.by_ids(namespace, project_id, ids(image_ids) or [], base)

    @route("DELETE", "/projects/{project_id}/images", status_code=204, response_class=Response)
    async def delete_images(project_id: str, namespace: TrainingNamespace, labeller: Labeller,
                            image_ids: Annotated[IdList, Query(alias="imageIds")] = None,
                            all_images: Annotated[bool, Query(alias="allImages")] = False,
                            all_iterations: Annotated[bool, Query(alias="allIterations")] = False):
        await labeller.delete(namespace, project_id, ids(image_ids), all_images)

    @route("POST", "/projects/{project_id}/images/tags", response_model=wire.ImageTagCreateSummary)
    async def create_image_tags(project_id: str, batch: wire.ImageTagCreateBatch, namespace: TrainingNamespace,
                                labeller: Labeller):
        return await labeller.tag_images(namespace, project_id, batch)

    @route("DELETE", "/projects/{project_id}/images/tags", status_code=204, response_class=Response)
    async def delete_image_tags(project_id: str, namespace: TrainingNamespace, labeller: Labeller,
                                image_ids: Annotated[IdList, Query(alias="imageIds")] = None,
                                tag_ids: Annotated[IdList, Query(alias="tagIds")] = None):
        await labeller.untag_images(namespace, project_id, ids(image_ids) or [], ids(tag_ids) or [])

    @route("POST", "/projects/{project_id}/images/regions", response_model=wire.ImageRegionCreateSummary)
    async def create_image_regions(project_id: str, batch: wire.ImageRegionCreateBatch,
                                   namespace: TrainingNamespace, labeller: Labeller):
        return await labeller.create_regions(namespace, project_id, batch)

    @route("DELETE", "/projects/{project_id}/images/regions", status_code=204, response_class=Response)
    async def delete_image_regions(project_id: str, namespace: TrainingNamespace, labeller: Labeller,
                                   region_ids: Annotated[IdList, Query(alias="regionIds")] = None):
        await labeller.delete_regions(namespace, project_id, ids(region_ids) or [])

    @route("POST", "/projects/{project_id}/images/metadata", response_model=wire.ImageMetadataUpdateSummary)
    async def update_image_metadata(project_id: str, metadata: dict[str, str], namespace: TrainingNamespace,
                                    labeller: Labeller, image_ids: Annotated[IdList, Query(alias="imageIds")] = None):
        return await labeller.update_metadata(namespace, project_id, ids(image_ids) or [], metadata)

    # training, iterations, publishing --------------------------------------------------------------------------
    @route("POST", "/projects/{project_id}/train", response_model=wire.Iteration)
    async def train_project(
        project_id: str, namespace: TrainingNamespace, trainer: Trainer,
        training_type: Annotated[str | None, Query(alias="trainingType", max_length=16)] = None,
        reserved_budget_in_hours: Annotated[int, Query(alias="reservedBudgetInHours", ge=0, le=48)] = 0,
        force_train: Annotated[bool, Query(alias="forceTrain")] = False,
        notification_email_address: Annotated[str | None, Query(alias="notificationEmailAddress",
                                                                max_length=256)] = None,
        parameters: Annotated[wire.TrainingParameters | None, Body()] = None,
    ):
        return await trainer.train(namespace, project_id, training_type, reserved_budget_in_hours, force_train)

    @route("GET", "/projects/{project_id}/iterations", response_model=list[wire.Iteration])
    async def get_iterations(project_id: str, namespace: TrainingNamespace, trainer: Trainer):
        return trainer.iterations(namespace, project_id)

    @route("GET", "/projects/{project_id}/iterations/{iteration_id}", response_model=wire.Iteration)
    async def get_iteration(project_id: str, iteration_id: str, namespace: TrainingNamespace, trainer: Trainer):
        return trainer.iteration(namespace, project_id, iteration_id)

    @route("PATCH", "/projects/{project_id}/iterations/{iteration_id}", response_model=wire.Iteration)
    async def update_iteration(project_id: str, iteration_id: str, updated: wire.Iteration,
                               namespace: TrainingNamespace, trainer: Trainer):
        return await trainer.update_iteration(namespace, project_id, iteration_id, updated.name)

    @route("DELETE", "/projects/{project_id}/iterations/{iteration_id}", status_code=204, response_class=Response)
    async def delete_iteration(project_id: str, iteration_id: str, namespace: TrainingNamespace, trainer: Trainer):
        await trainer.delete_iteration(namespace, project_id, iteration_id)

    @route("POST", "/projects/{project_id}/iterations/{iteration_id}/publish", response_model=bool)
    async def publish_iteration(project_id: str, iteration_id: str, namespace: TrainingNamespace, trainer: Trainer,
                                publish_name: Annotated[str, Query(alias="publishName", max_length=256)],
                                prediction_id: Annotated[str, Query(alias="predictionId", max_length=1024)],
                                overwrite: bool = False):
        return await trainer.publish(namespace, project_id, iteration_id, publish_name, overwrite)

    @route("DELETE", "/projects/{project_id}/iterations/{iteration_id}/publish", status_code=204,
           response_class=Response)
    async def unpublish_iteration(project_id: str, iteration_id: str, namespace: TrainingNamespace,
                                  trainer: Trainer):
        await trainer.unpublish(namespace, project_id, iteration_id)

    @route("GET", "/projects/{project_id}/iterations/{iteration_id}/performance",
           response_model=wire.IterationPerformance)
    async def get_iteration_performance(project_id: str, iteration_id: str, namespace: TrainingNamespace,
                                        trainer: Trainer, threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
                                        overlap_threshold: Annotated[float | None, Query(
                                            alias="overlapThreshold", ge=0, le=1)] = None):
        return await trainer.performance(namespace, project_id, iteration_id, threshold, overlap_threshold)

    @route("GET", "/projects/{project_id}/iterations/{iteration_id}/performance/images",
           response_model=list[wire.ImagePerformance])
    async def get_image_performances(project_id: str, iteration_id: str, namespace: TrainingNamespace,
                                     trainer: Trainer, base: BaseUrl, tag_ids: Annotated[IdList, Query(
                                         alias="tagIds")] = None,
                                     order_by: Annotated[str | None, Query(alias="orderBy", max_length=16)] = None,
                                     take: Take = 50, skip: Skip = 0):
        return await trainer.image_performances(namespace, project_id, iteration_id, tag_filter(ids(tag_ids)),
                                                newest_first(order_by), skip, take, base)

    @route("GET", "/projects/{project_id}/iterations/{iteration_id}/performance/images/count", response_model=int)
    async def get_image_performance_count(project_id: str, iteration_id: str, namespace: TrainingNamespace,
                                          trainer: Trainer, tag_ids: Annotated[IdList, Query(alias="tagIds")] = None):
        return await trainer.image_performance_count(namespace, project_id, iteration_id,
                                                     tag_filter(ids(tag_ids)))

    @route("GET", "/projects/{project_id}/iterations/{iteration_id}/export", response_model=list[wire.Export])
    async def get_exports(project_id: str, iteration_id: str, namespace: TrainingNamespace, trainer: Trainer,
                          base: BaseUrl):
        return trainer.exports(namespace, project_id, iteration_id, base)

    @route("POST", "/projects/{project_id}/iterations/{iteration_id}/export", response_model=wire.Export)
    async def export_iteration(project_id: str, iteration_id: str, namespace: TrainingNamespace, trainer: Trainer,
                               base: BaseUrl, platform: Annotated[str, Query(max_length=32)],
                               flavor: Annotated[str | None, Query(max_length=32)] = None):
        return trainer.export(namespace, project_id, iteration_id, platform, flavor, base)

    # stored predictions and quick tests ------------------------------------------------------------------------
    @route("POST", "/projects/{project_id}/predictions/query", response_model=wire.PredictionQueryResult)
    async def query_predictions(project_id: str, query: wire.PredictionQueryToken, namespace: TrainingNamespace,
                                labeller: Labeller, base: BaseUrl):
        return await labeller.query_predictions(namespace, project_id, query, base)

    @route("DELETE", "/projects/{project_id}/predictions", status_code=204, response_class=Response)
    async def delete_prediction(project_id: str, namespace: TrainingNamespace, labeller: Labeller,
                                prediction_ids: Annotated[IdList, Query(alias="ids")] = None):
        await labeller.delete_predictions(namespace, project_id, ids(prediction_ids) or [])

    @route("POST", "/projects/{project_id}/quicktest/image", response_model=wire.ImagePrediction,
           openapi_extra=IMAGES_BODY)
    async def quick_test_image(request: Request, project_id: str, namespace: TrainingNamespace, trainer: Trainer,
                               predictions: Predictions,
                               iteration_id: Annotated[str | None, Query(alias="iterationId", max_length=64)] = None,
                               store: bool = True):
        target = trainer.quick_test_target(namespace, project_id, iteration_id)
        data = await image_bytes(request, predictions.settings.max_image_bytes)
        return await quick_test(predictions, namespace, target, data, store)

    @route("POST", "/projects/{project_id}/quicktest/url", response_model=wire.ImagePrediction)
    async def quick_test_image_url(project_id: str, image: wire.ImageUrl, namespace: TrainingNamespace,
                                   trainer: Trainer, predictions: Predictions,
                                   iteration_id: Annotated[str | None, Query(alias="iterationId",
                                                                             max_length=64)] = None,
                                   store: bool = True):
        target = trainer.quick_test_target(namespace, project_id, iteration_id)
        data = await fetch_image(image.url, predictions.http, predictions.settings)
        return await quick_test(predictions, namespace, target, data, store)

    @route("POST", "/projects/{project_id}/tagsandregions/suggestions", response_model=list[wire.SuggestedTags])
    async def suggest_tags_and_regions(project_id: str, namespace: TrainingNamespace, trainer: Trainer,
                                       labeller: Labeller, predictions: Predictions,
                                       iteration_id: Annotated[str, Query(alias="iterationId", max_length=64)],
                                       image_ids: Annotated[IdList, Query(alias="imageIds")] = None):
        project, body, _ = trainer.quick_test_target(namespace, project_id, iteration_id)
        images = await labeller.image_contents(namespace, project_id, ids(image_ids) or [])
        return await predictions.suggest(project, body, images)

    return routes


async def quick_test(predictions: PredictionService, namespace: str, target: tuple[Project, dict, str | None],
                     data: bytes, store: bool) -> wire.ImagePrediction:
    """A published iteration is tested where predictions run (Triton); any other trained one in the gateway."""
    project, body, served = target
    if served:
        kind = predictions.kind(namespace, project.uid)
        return await predictions.predict(namespace, project.uid, served, kind, data, store, None)
    return await predictions.quick_test(project, body, data, store)


def status_filter(tagged: bool | None, tagging_status: str | None) -> bool | None:
    """The tagged and untagged routes say it in their path; v3.4's /images says it with taggingStatus."""
    if tagged is not None or tagging_status in (None, "All"):
        return tagged
    if tagging_status not in ("Tagged", "Untagged"):
        raise CustomVisionError("taggingStatus is All, Tagged or Untagged.", "BadRequest")
    return tagging_status == "Tagged"

