"""An iteration's performance, free of HTTP: precision, recall and average precision at any threshold, and each
held-out image with its true labels and the model's predictions, counted again from what training left in S3."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from kubevision.core import api, detection_metrics, heldout
from kubevision.core.api import Iteration
from kubevision.core.labelstore.store import ImageView, LabelStore
from kubevision.core.serving import detection
from kubevision.gateway import wire
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.backends.trained import TrainedIterations, tag_ids
from kubevision.gateway.catalog import Project, created
from kubevision.gateway.errors import NotFound
from kubevision.gateway.links import Signer, image_path
from kubevision.gateway.services.iterations import trained_iteration
from kubevision.gateway.services.lookup import ProjectLookup
from kubevision.gateway.services.projects import timestamp

SAME_BOX = 1e-3  # a held-out box is a stored region's when every figure is this near (the trainer rounds them)


def _held_out_regions(image: heldout.HeldOutImage, view: ImageView | None, tag_id: Callable[[str], str],
                      iteration: Iteration) -> list[wire.ImageRegion]:
    """A detector's true boxes of a held-out image, as it was scored: each with the id of the stored region of the
    same tag and box, or, when that region changed since, an id derived from the image and the box's place."""
    stored = view.regions if view else []
    answer = []
    for place, region in enumerate(image.regions):
        corners = (region.left, region.top, region.width, region.height)
        match = next((r for r, name in stored if name == region.tag and max(
            abs(a - b) for a, b in zip(corners, (r.left, r.top, r.width, r.height), strict=True)) <= SAME_BOX), None)
        answer.append(wire.ImageRegion(
            region_id=match.id if match else str(uuid.uuid5(uuid.NAMESPACE_URL, f"{image.id}/{place}")),
            created=match.created if match else timestamp(created(iteration)),
            tag_id=tag_id(region.tag), tag_name=region.tag, left=region.left, top=region.top, width=region.width,
            height=region.height))
    return answer


def _held_out_predictions(held_out: heldout.HeldOut, image: heldout.HeldOutImage,
                          tag_id: Callable[[str], str]) -> list[wire.Prediction]:
    """A classifier's probability of each tag, or a detector's boxes; most probable first."""
    if image.boxes:
        return [wire.Prediction(probability=b.probability, tag_id=tag_id(b.tag), tag_name=b.tag,
                                bounding_box=wire.BoundingBox(left=b.left, top=b.top, width=b.width, height=b.height))
                for b in image.boxes]
    if image.regions:  # a detector that found nothing here
        return []
    return sorted((wire.Prediction(probability=p, tag_id=tag_id(t), tag_name=t)
                   for t, p in zip(held_out.tags, image.probabilities, strict=True)), key=lambda p: -p.probability)


class PerformanceService:
    def __init__(self, source: CatalogSource, lookup: ProjectLookup, labels: LabelStore, trained: TrainedIterations,
                 links: Signer):
        self.source = source
        self.lookup = lookup
        self.labels = labels
        self.trained = trained
        self.links = links

    async def performance(self, namespace: str, project_id: str, iteration_id: str, threshold: float | None,
                          overlap_threshold: float | None = None) -> wire.IterationPerformance:
        """Precision and recall at `threshold` (by default the one the iteration was trained for), counted again
        from the held-out predictions; a classifier's average precision does not depend on it and is the trainer's.
        A detector's figures, average precision too, are counted again at `overlap_threshold` (by default Custom
        Vision's 0.5) from its held-out boxes."""
        project = self.lookup.project(namespace, project_id)
        iteration = trained_iteration(self.source.catalog, project, iteration_id)
        metrics = iteration.status.metrics
        if not metrics:
            raise NotFound(f"Iteration {iteration_id} has no performance recorded.", "NotFoundIterationPerformance")
        tag_id = tag_ids(project.uid, iteration)
        trained_at = metrics.probability_threshold
        threshold = trained_at if threshold is None else threshold
        overlap = detection.OVERLAP_THRESHOLD if overlap_threshold is None else overlap_threshold
        held_out = await self.trained.held_out(iteration)
        average = {t.tag: t.average_precision for t in metrics.per_tag}
        mean_average = metrics.average_precision
        if held_out is None:  # trained before held-out predictions were kept: the trainer's thresholds only
            if abs(threshold - trained_at) > 1e-9 or abs(overlap - detection.OVERLAP_THRESHOLD) > 1e-9:
                raise NotFound(f"Iteration {iteration_id} kept its performance at threshold {trained_at} only; "
                               "train again to see other thresholds.", "NotFoundIterationPerformance")
            per_tag = [(t.tag, t.precision, t.recall) for t in metrics.per_tag]
            precision, recall = metrics.precision, metrics.recall
        elif project.type == api.ProjectType.OBJECT_DETECTION:
            counted = (await asyncio.to_thread(detection_metrics.evaluate_held_out, held_out, threshold,
                                               overlap)).metrics
            per_tag = [(t.tag, t.precision, t.recall) for t in counted.per_tag]
            precision, recall = counted.precision, counted.recall
            average = {t.tag: t.average_precision for t in counted.per_tag}
            mean_average = counted.average_precision
        else:
            counted = heldout.counted_at(*held_out.arrays(), threshold)
            per_tag = list(zip(held_out.tags, counted.tag_precision, counted.tag_recall, strict=True))
            precision, recall = counted.precision, counted.recall
        return wire.IterationPerformance(
            per_tag_performance=[wire.TagPerformance(
                id=tag_id(name), name=name, precision=tag_precision, precision_std_deviation=0.0, recall=tag_recall,
                recall_std_deviation=0.0, average_precision=average.get(name)) for name, tag_precision, tag_recall
                in per_tag],
            precision=precision, precision_std_deviation=0.0, recall=recall, recall_std_deviation=0.0,
            average_precision=mean_average)

    async def _held_out_images(self, project: Project, iteration_id: str, tag_filter: list[str] | None
                               ) -> tuple[Iteration, heldout.HeldOut, list[heldout.HeldOutImage]]:
        """The iteration, its held-out predictions, and those of images carrying one of the tags filtered on."""
        iteration = trained_iteration(self.source.catalog, project, iteration_id)
        held_out = await self.trained.held_out(iteration)
        if held_out is None:
            raise NotFound(f"Iteration {iteration_id} was trained before its held-out predictions were kept.",
                           "NotFoundIterationPerformance")
        if not tag_filter:
            return iteration, held_out, held_out.images
        tag_id, wanted = tag_ids(project.uid, iteration), {t.lower() for t in tag_filter}
        return iteration, held_out, [i for i in held_out.images if any(tag_id(t) in wanted for t in i.tags)]

    async def image_performance_count(self, namespace: str, project_id: str, iteration_id: str,
                                      tag_filter: list[str] | None) -> int:
        project = self.lookup.project(namespace, project_id)
        return len((await self._held_out_images(project, iteration_id, tag_filter))[2])

    async def image_performances(self, namespace: str, project_id: str, iteration_id: str,
                                 tag_filter: list[str] | None, newest: bool, skip: int, take: int,
                                 base_url: str) -> list[wire.ImagePerformance]:
        """The held-out images of an iteration (those its model never trained on) with their true tags and the
        model's predictions, in upload order, paged. An image deleted since keeps its id, tags and predictions."""
        project = self.lookup.project(namespace, project_id)
        iteration, held_out, images = await self._held_out_images(project, iteration_id, tag_filter)
        page = (images[::-1] if newest else images)[skip:skip + take]
        stored = {v.id: v for v in await asyncio.to_thread(self.labels.images_by_ids, project.uid,
                                                           [i.id for i in page])} if page else {}
        tag_id = tag_ids(project.uid, iteration)
        answer = []
        for image in page:
            view = stored.get(image.id)
            uri = self.links.link(namespace, base_url, image_path(project.uid, view.sha256)) if view else None
            answer.append(wire.ImagePerformance(
                id=image.id, created=view.created if view else None, width=view.width if view else None,
                height=view.height if view else None, image_uri=uri, thumbnail_uri=uri,
                tags=[wire.ImageTag(tag_id=tag_id(t), tag_name=t, created=view.created if view else None)
                      for t in image.tags],
                regions=_held_out_regions(image, view, tag_id, iteration) or None,
                predictions=_held_out_predictions(held_out, image, tag_id)))
        return answer
