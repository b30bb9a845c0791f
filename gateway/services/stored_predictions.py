"""Custom Vision's stored predictions, free of HTTP: the label store's index of the predictions the prediction API
kept, queried and deleted through the training API."""

from __future__ import annotations

import asyncio

from kubevision.core.labelstore.predictions import MAX_RESULTS, PredictionIndex, PredictionQuery, TagRange
from kubevision.core.labelstore.store import MAX_BATCH
from kubevision.gateway import wire
from kubevision.gateway.errors import CustomVisionError
from kubevision.gateway.links import Signer, image_path
from kubevision.gateway.services.images import MAX_TAG_FILTER
from kubevision.gateway.services.lookup import ProjectLookup
from kubevision.gateway.services.projects import project_wire


class StoredPredictionService:
    def __init__(self, lookup: ProjectLookup, predictions_index: PredictionIndex, links: Signer):
        self.lookup = lookup
        self.predictions_index = predictions_index
        self.links = links

    async def query_predictions(self, namespace: str, project_id: str, token: wire.PredictionQueryToken,
                                base_url: str) -> wire.PredictionQueryResult:
        ref = await self.lookup.labelled(namespace, project_id)
        take = token.max_count or 50
        if take > MAX_RESULTS:
            raise CustomVisionError(f"maxCount is at most {MAX_RESULTS}.", "BadRequestPredictionResultsExceededCount")
        if token.tags and len(token.tags) > MAX_TAG_FILTER:
            raise CustomVisionError(f"At most {MAX_TAG_FILTER} tags.", "BadRequestPredictionTagsExceededCount")
        if token.order_by not in (None, "Newest", "Oldest", "Suggested"):
            raise CustomVisionError("orderBy is Newest, Oldest or Suggested.",
                                    "BadRequestPredictionInvalidQueryParameters")
        skip = int(token.continuation) if token.continuation and token.continuation.isdigit() else 0
        query = PredictionQuery(
            iteration_id=token.iteration_id, application=token.application, start=token.start_time,
            end=token.end_time, newest=token.order_by != "Oldest", skip=skip, take=take,
            tags=tuple(TagRange(t.id, t.min_threshold, t.max_threshold) for t in token.tags or []))
        await asyncio.to_thread(self.predictions_index.catch_up, ref)
        rows = await asyncio.to_thread(self.predictions_index.query, ref.id, query)
        domain = project_wire(self.lookup.project(namespace, project_id)).settings.domain_id
        results = []
        for row in rows:
            uri = self.links.link(namespace, base_url, image_path(ref.id, row.sha256))
            results.append(wire.StoredImagePrediction(
                resized_image_uri=uri, thumbnail_uri=uri, original_image_uri=uri, domain=domain, id=row.id,
                project=ref.id, iteration=row.iteration_id, created=row.created,
                predictions=[stored_prediction(p) for p in row.predictions]))
        following = token.model_copy(update={"continuation": str(skip + len(rows)) if len(rows) == take else None})
        return wire.PredictionQueryResult(token=following, results=results)

    async def delete_predictions(self, namespace: str, project_id: str, ids: list[str]) -> None:
        ref = await self.lookup.labelled(namespace, project_id)
        if not ids:
            raise CustomVisionError("Name the predictions to delete (ids).", "BadRequestPredictionIdsMissing")
        if len(ids) > MAX_BATCH:
            raise CustomVisionError(f"At most {MAX_BATCH} ids.", "BadRequestPredictionIdsExceededCount")
        await asyncio.to_thread(self.predictions_index.delete, ref, ids)


def stored_prediction(kept: dict) -> wire.Prediction:
    """A prediction as the index keeps it (core.dataset.PredictedTag), a detector's with its box."""
    region = kept.get("region")
    return wire.Prediction(
        probability=kept["probability"], tag_id=kept["tag_id"], tag_name=kept["tag_name"],
        bounding_box=wire.BoundingBox(**{k: region[k] for k in ("left", "top", "width", "height")}) if region else None,
        tag_type=wire.TagType.NEGATIVE if kept["tag_name"] == "Negative" else wire.TagType.REGULAR)
