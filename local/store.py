"""Local mode's API server: resources applied with `kubevision apply`, kept in SQLite.

It admits manifests as the Kubernetes API server would (kubevision.core.validation), keeps uid, generation,
resourceVersion and creationTimestamp the Kubernetes way (generation moves only with the spec), and separates spec
from status. Writers never lose each other's changes: `apply` and `mark_deleted` read and write in one transaction,
and a status write carries the resourceVersion it was computed from and is refused (Conflict) if the object changed
since, as the API server answers 409. It keeps the Events the controller posts, counted when repeated, as the API
server does, for `kubevision describe`.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubevision.core import validation
from kubevision.local.private import private_folder

KINDS = {"customvisionproject": "CustomVisionProject", "customvisionprojects": "CustomVisionProject",
         "cvp": "CustomVisionProject", "projects": "CustomVisionProject", "project": "CustomVisionProject",
         "iteration": "Iteration", "iterations": "Iteration", "cvi": "Iteration"}


def kind_of(word: str) -> str:
    try:
        return KINDS[word.lower()]
    except KeyError:
        raise ValueError(f"unknown resource type {word!r}; use projects or iterations") from None


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Conflict(Exception):
    """The object changed after it was read; read it again and recompute."""


class LocalStore:
    def __init__(self, path: Path):
        private_folder(path.parent)
        self.path = path
        with self._transaction() as db:
            db.execute("""CREATE TABLE IF NOT EXISTS resources (
                kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
                PRIMARY KEY (kind, namespace, name))""")
            db.execute("""CREATE TABLE IF NOT EXISTS events (
                uid TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                type TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL, source TEXT NOT NULL,
                count INTEGER NOT NULL, first_timestamp TEXT NOT NULL, last_timestamp TEXT NOT NULL,
                PRIMARY KEY (uid, type, reason, message))""")
            # One counter for the whole store, as the API server's: a recreated object never reuses a version.
            db.execute("CREATE TABLE IF NOT EXISTS sequence (last INTEGER NOT NULL)")
            if db.execute("SELECT COUNT(*) FROM sequence").fetchone()[0] == 0:
                db.execute("INSERT INTO sequence VALUES (0)")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One writer at a time from the first read on (BEGIN IMMEDIATE), across processes."""
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def apply(self, manifest: dict[str, Any], now: datetime | None = None) -> tuple[dict[str, Any], str]:
        """Create or update; returns the stored object and "created", "configured" or "unchanged"."""
        metadata = manifest.setdefault("metadata", {})
        metadata.setdefault("namespace", "default")
        with self._transaction() as db:
            old = self._get(db, manifest.get("kind", ""), metadata["namespace"], metadata.get("name", ""))
            admitted = validation.admit(manifest, old=old)
            if old is None:
                body = {**admitted, "metadata": {
                    **admitted["metadata"], "uid": str(uuid.uuid4()), "generation": 1,
                    "creationTimestamp": timestamp(now or datetime.now(UTC)),
                }}
                body.pop("status", None)
                action = "created"
            else:
                changed = admitted["spec"] != old["spec"]
                metadata = {**old["metadata"], **{k: v for k, v in admitted["metadata"].items()
                                                  if k in ("labels", "annotations")}}
                metadata["generation"] = old["metadata"]["generation"] + (1 if changed else 0)
                body = {**{k: v for k, v in admitted.items() if k != "status"}, "metadata": metadata}
                if "status" in old:  # the status subresource is the controller's: apply never writes it
                    body["status"] = old["status"]
                action = "configured" if changed or metadata != old["metadata"] else "unchanged"
            if action != "unchanged":  # a no-op keeps the resourceVersion, as on Kubernetes
                self._write(db, body)
        return body, action

    def _write(self, db: sqlite3.Connection, body: dict[str, Any]) -> None:
        db.execute("UPDATE sequence SET last = last + 1")
        version = db.execute("SELECT last FROM sequence").fetchone()[0]
        meta = body["metadata"]
        meta["resourceVersion"] = str(version)
        db.execute("INSERT OR REPLACE INTO resources VALUES (?, ?, ?, ?)",
                   (body["kind"], meta["namespace"], meta["name"], json.dumps(body)))

    @staticmethod
    def _get(db: sqlite3.Connection, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        row = db.execute("SELECT body FROM resources WHERE kind=? AND namespace=? AND name=?",
                         (kind, namespace, name)).fetchone()
        return json.loads(row[0]) if row else None

    def _connect(self) -> sqlite3.Connection:
        """A connection for reads; writes go through _transaction."""
        return sqlite3.connect(self.path, timeout=30)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with closing(self._connect()) as db:
            return self._get(db, kind, namespace, name)

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT body FROM resources WHERE kind=?", [kind]
        if namespace is not None:
            query, args = query + " AND namespace=?", [kind, namespace]
        with closing(self._connect()) as db:
            return [json.loads(row[0]) for row in db.execute(query + " ORDER BY namespace, name", args)]

    def update_status(self, kind: str, namespace: str, name: str, status: dict[str, Any],
                      resource_version: str) -> None:
        """The status subresource: only status changes, only if the object still exists, and only if it is still
        the version the status was computed from (else Conflict)."""
        with self._transaction() as db:
            body = self._get(db, kind, namespace, name)
            if body is None:
                return
            if body["metadata"].get("resourceVersion") != resource_version:
                raise Conflict(f"{kind} {namespace}/{name} changed since version {resource_version}")
            body["status"] = status
            self._write(db, body)

    def mark_deleted(self, kind: str, namespace: str, name: str, now: datetime | None = None) -> bool:
        """Deletion as with a finalizer: the controller cleans up, then removes the object."""
        with self._transaction() as db:
            body = self._get(db, kind, namespace, name)
            if body is None:
                return False
            if "deletionTimestamp" not in body["metadata"]:
                body["metadata"]["deletionTimestamp"] = timestamp(now or datetime.now(UTC))
                self._write(db, body)
        return True

    def remove(self, kind: str, namespace: str, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM resources WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name))
            db.execute("DELETE FROM events WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name))

    def record_event(self, body: dict[str, Any], type_: str, reason: str, message: str, source: str,
                     now: datetime | None = None) -> None:
        """An Event about `body`; the same one again raises its count and last timestamp."""
        meta, moment = body["metadata"], timestamp(now or datetime.now(UTC))
        with self._transaction() as db:
            db.execute("""INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
                          ON CONFLICT (uid, type, reason, message)
                          DO UPDATE SET count = count + 1, last_timestamp = excluded.last_timestamp""",
                       (meta["uid"], body["kind"], meta["namespace"], meta["name"], type_, reason, message, source,
                        moment, moment))

    def events(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The Events of this object (not of an earlier one of the same name), oldest first."""
        with closing(self._connect()) as db:
            rows = db.execute("""SELECT type, reason, message, source, count, first_timestamp, last_timestamp
                                 FROM events WHERE uid=? ORDER BY last_timestamp, rowid""",
                              (body["metadata"]["uid"],)).fetchall()
        keys = ("type", "reason", "message", "source", "count", "firstTimestamp", "lastTimestamp")
        return [dict(zip(keys, row, strict=True)) for row in rows]
