"""Local mode's API server: resources applied with `kubevision apply`, kept in SQLite.

It admits manifests as the Kubernetes API server would (kubevision.core.validation), keeps uid, generation and
creationTimestamp the Kubernetes way (generation moves only with the spec), and separates spec from status. It keeps
the Events the controller posts, counted when repeated, as the API server does, for `kubevision describe`.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubevision.core import validation

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


class LocalStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with closing(self._connect()) as db, db:
            db.execute("""CREATE TABLE IF NOT EXISTS resources (
                kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
                PRIMARY KEY (kind, namespace, name))""")
            db.execute("""CREATE TABLE IF NOT EXISTS events (
                uid TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                type TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL, source TEXT NOT NULL,
                count INTEGER NOT NULL, first_timestamp TEXT NOT NULL, last_timestamp TEXT NOT NULL,
                PRIMARY KEY (uid, type, reason, message))""")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def apply(self, manifest: dict[str, Any], now: datetime | None = None) -> tuple[dict[str, Any], str]:
        """Create or update; returns the stored object and "created", "configured" or "unchanged"."""
        metadata = manifest.setdefault("metadata", {})
        metadata.setdefault("namespace", "default")
        old = self.get(manifest.get("kind", ""), metadata["namespace"], metadata.get("name", ""))
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
        self._write(body)
        return body, action

    def _write(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        with closing(self._connect()) as db, db:
            db.execute("INSERT OR REPLACE INTO resources VALUES (?, ?, ?, ?)",
                       (body["kind"], meta["namespace"], meta["name"], json.dumps(body)))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT body FROM resources WHERE kind=? AND namespace=? AND name=?",
                             (kind, namespace, name)).fetchone()
        return json.loads(row[0]) if row else None

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT body FROM resources WHERE kind=?", [kind]
        if namespace is not None:
            query, args = query + " AND namespace=?", [kind, namespace]
        with closing(self._connect()) as db:
            return [json.loads(row[0]) for row in db.execute(query + " ORDER BY namespace, name", args)]

    def update_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """The status subresource: only status changes, and only if the object still exists."""
        body = self.get(kind, namespace, name)
        if body is not None:
            body["status"] = status
            self._write(body)

    def mark_deleted(self, kind: str, namespace: str, name: str, now: datetime | None = None) -> bool:
        """Deletion as with a finalizer: the controller cleans up, then removes the object."""
        body = self.get(kind, namespace, name)
        if body is None:
            return False
        body["metadata"].setdefault("deletionTimestamp", timestamp(now or datetime.now(UTC)))
        self._write(body)
        return True

    def remove(self, kind: str, namespace: str, name: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM resources WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name))
            db.execute("DELETE FROM events WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name))

    def record_event(self, body: dict[str, Any], type_: str, reason: str, message: str, source: str,
                     now: datetime | None = None) -> None:
        """An Event about `body`; the same one again raises its count and last timestamp."""
        meta, moment = body["metadata"], timestamp(now or datetime.now(UTC))
        with closing(self._connect()) as db, db:
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
