"""Stored predictions in the label store: an index of the records the gateway keeps in S3
(`predictions/<date>/<id>.json`, core/dataset.PredictionRecord). The gateway indexes each record after writing it;
records written before the store existed, or by a gateway that could not reach it, are indexed the first time a
project's predictions are queried. S3 stays the record; nothing needs migrating."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from kubevision.core import dataset
from kubevision.core.labelstore import tables
from kubevision.core.labelstore.database import Database
from kubevision.core.labelstore.store import ProjectRef, dialect_insert
from kubevision.core.storage import ObjectStore

MAX_RESULTS = 256


@dataclass(frozen=True)
class TagRange:
    tag_id: str
    low: float = 0.0
    high: float = 1.0


@dataclass(frozen=True)
class PredictionQuery:
    iteration_id: str | None = None
    tags: tuple[TagRange, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    application: str | None = None
    newest: bool = True
    skip: int = 0
    take: int = 50


def _row(project_id: str, record: dataset.PredictionRecord, key: str) -> dict:
    return dict(project_id=project_id, id=record.id, iteration_id=record.iteration,
                published_name=record.published_name, created=record.created, sha256=record.sha256,
                content_type=record.content_type, size=record.size, application=record.application, object_key=key,
                predictions=[p.model_dump(mode="json", exclude_none=True) for p in record.predictions])


class PredictionIndex:
    def __init__(self, database: Database, objects: ObjectStore):
        self.db = database
        self.objects = objects
        self._scanned: set[str] = set()

    def add(self, project_id: str, record: dataset.PredictionRecord, key: str) -> None:
        with self.db.writing() as session:
            session.execute(dialect_insert(session)(tables.StoredPrediction).values(_row(project_id, record, key))
                            .on_conflict_do_nothing())

    def rescan(self, project_id: str) -> None:
        """Have the next catch-up look at S3 again (a record could not be indexed when it was written)."""
        self._scanned.discard(project_id)

    def catch_up(self, project: ProjectRef) -> int:
        """Index the project's records that are in S3 but not here (once per process); returns how many."""
        if project.id in self._scanned:
            return 0
        prefix = f"{project.prefix}predictions/"
        keys = {key.rsplit("/", 1)[-1].removesuffix(".json"): key for key in self.objects.keys(project.bucket, prefix)}
        with self.db.reading() as session:
            known = set(session.scalars(select(tables.StoredPrediction.id).where(
                tables.StoredPrediction.project_id == project.id)).all())
        added = 0
        for prediction_id in sorted(set(keys) - known):
            record = dataset.PredictionRecord.model_validate_json(self.objects.get(project.bucket, keys[prediction_id]))
            if record.project == project.id:
                self.add(project.id, record, keys[prediction_id])
                added += 1
        self._scanned.add(project.id)
        return added

    def query(self, project_id: str, query: PredictionQuery) -> list[tables.StoredPrediction]:
        statement = select(tables.StoredPrediction).where(tables.StoredPrediction.project_id == project_id)
        if query.iteration_id:
            statement = statement.where(tables.StoredPrediction.iteration_id == query.iteration_id.lower())
        if query.application:
            statement = statement.where(tables.StoredPrediction.application == query.application)
        if query.start:
            statement = statement.where(tables.StoredPrediction.created >= query.start)
        if query.end:
            statement = statement.where(tables.StoredPrediction.created <= query.end)
        order = tables.StoredPrediction.created.desc() if query.newest else tables.StoredPrediction.created
        statement = statement.order_by(order, tables.StoredPrediction.id)
        wanted, skipped = [], 0
        with self.db.reading() as session:
            for row in session.scalars(statement).yield_per(500):  # tag ranges are checked on the JSON
                if not self._matches(row, query.tags):
                    continue
                if skipped < query.skip:
                    skipped += 1
                    continue
                wanted.append(row)
                if len(wanted) == query.take:
                    break
        return wanted

    @staticmethod
    def _matches(row: tables.StoredPrediction, ranges: Sequence[TagRange]) -> bool:
        # A detector's answer holds several boxes of a tag: a range matches when one of them is in it.
        return all(any(p["tag_id"] == r.tag_id.lower() and r.low <= p["probability"] <= r.high
                       for p in row.predictions) for r in ranges)

    def by_ids(self, project_id: str, ids: Sequence[str]) -> dict[str, tables.StoredPrediction]:
        with self.db.reading() as session:
            rows = session.scalars(select(tables.StoredPrediction).where(
                tables.StoredPrediction.project_id == project_id,
                tables.StoredPrediction.id.in_([i.lower() for i in ids]))).all()
        return {row.id: row for row in rows}

    def delete(self, project: ProjectRef, ids: Sequence[str]) -> None:
        """Forget predictions and their records; their images stay, for the images made from them."""
        rows = self.by_ids(project.id, ids)
        with self.db.writing() as session:
            session.execute(delete(tables.StoredPrediction).where(
                tables.StoredPrediction.project_id == project.id, tables.StoredPrediction.id.in_(list(rows))))
        for row in rows.values():
            self.objects.client.remove_object(project.bucket, row.object_key)
