"""The usage ledger in the label store's database: what each namespace and project used, kept where the gateway's
replicas and local mode's CLI all find it, through restarts.

Calls are counted in memory and written in batches (`flush`, every few seconds and at shutdown), one row per
project and hour that every replica adds to, so that a prediction never waits on a write; a crash loses at most the
counts of one batch. Ended trainings are written once each, keyed by their Iteration's uid: every replica, and every
restart, may offer the same training again, and it is kept once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import func, select

from kubevision.core.labelstore import tables
from kubevision.core.labelstore.database import Database
from kubevision.core.labelstore.store import dialect_insert
from kubevision.core.usage import COUNTED_BY_GATEWAY, TrainingUse, Usage

Key = tuple[str, str, datetime]  # namespace, project, hour


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class UsageLedger:
    def __init__(self, database: Database):
        self.db = database
        self._lock = threading.Lock()
        self._pending: dict[Key, Counter[str]] = {}

    def add(self, namespace: str, project: str, at: datetime | None = None, **counts: int) -> None:
        """Count calls of a project (fields of core.usage.COUNTED_BY_GATEWAY); written at the next flush."""
        unknown = set(counts) - set(COUNTED_BY_GATEWAY)
        if unknown:
            raise ValueError(f"no such usage figure: {', '.join(sorted(unknown))}")
        key = (namespace, project, hour_of(at or datetime.now(UTC)))
        with self._lock:
            self._pending.setdefault(key, Counter()).update(counts)

    def flush(self) -> int:
        """Write what was counted since the last flush, in one transaction; returns the rows written. A failed
        write keeps the counts for the next flush."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            with self.db.writing() as session:
                insert = dialect_insert(session)(tables.UsageCount)
                statement = insert.values([
                    {"namespace": ns, "project": project, "hour": hour,
                     **{field: counts.get(field, 0) for field in COUNTED_BY_GATEWAY}}
                    for (ns, project, hour), counts in pending.items()])
                statement = statement.on_conflict_do_update(
                    index_elements=["namespace", "project", "hour"],
                    set_={field: getattr(tables.UsageCount, field) + statement.excluded[field]
                          for field in COUNTED_BY_GATEWAY})
                session.execute(statement)
        except Exception:
            with self._lock:
                for key, counts in pending.items():
                    self._pending.setdefault(key, Counter()).update(counts)
            raise
        return len(pending)

    def record_trainings(self, uses: Iterable[TrainingUse]) -> int:
        """Keep each ended training once; returns how many were new."""
        rows = [{"iteration_uid": u.iteration_uid, "namespace": u.namespace, "project": u.project,
                 "iteration": u.iteration, "finished": u.finished, "seconds": u.seconds, "gpus": u.gpus,
                 "advanced": u.advanced}
                for u in uses]
        if not rows:
            return 0
        with self.db.writing() as session:
            inserted = session.scalars(dialect_insert(session)(tables.TrainingUsage).values(rows)
                                       .on_conflict_do_nothing().returning(tables.TrainingUsage.iteration_uid))
            return len(inserted.all())

    def advanced_seconds(self, namespace: str, since: datetime) -> float:
        """Seconds of the namespace's Advanced trainings that ended since `since`."""
        with self.db.reading() as session:
            return float(session.scalar(select(func.sum(tables.TrainingUsage.seconds)).where(
                tables.TrainingUsage.namespace == namespace, tables.TrainingUsage.advanced.is_(True),
                tables.TrainingUsage.finished >= since)) or 0)

    def totals(self, since: datetime, namespace: str | None = None, by_project: bool = False) -> list[Usage]:
        """Each namespace's figures (or each project's) since `since`: calls of the hours from the one `since`
        falls in, trainings that ended since then. Only `namespace`'s when one is named."""
        counts, trainings = tables.UsageCount, tables.TrainingUsage
        count_keys = [counts.namespace, *([counts.project] if by_project else [])]
        training_keys = [trainings.namespace, *([trainings.project] if by_project else [])]
        calls = select(*count_keys, *(func.sum(getattr(counts, f)) for f in COUNTED_BY_GATEWAY)).where(
            counts.hour >= hour_of(since)).group_by(*count_keys)
        ended = select(*training_keys, func.count(), func.sum(trainings.seconds),
                       func.sum(trainings.seconds * trainings.gpus)).where(
            trainings.finished >= since).group_by(*training_keys)
        if namespace is not None:
            calls, ended = calls.where(counts.namespace == namespace), ended.where(trainings.namespace == namespace)
        rows: dict[tuple[str, str], dict] = {}
        width = len(count_keys)
        with self.db.reading() as session:
            for row in session.execute(calls):
                key = (row[0], row[1] if by_project else "")
                rows.setdefault(key, {}).update(zip(COUNTED_BY_GATEWAY, (int(v or 0) for v in row[width:]),
                                                    strict=True))
            for row in session.execute(ended):
                key = (row[0], row[1] if by_project else "")
                number, seconds, gpu_seconds = row[width:]
                rows.setdefault(key, {}).update(trainings=int(number), training_seconds=float(seconds or 0),
                                                gpu_seconds=float(gpu_seconds or 0))
        return [Usage(namespace=ns, project=project, **figures) for (ns, project), figures in sorted(rows.items())]
