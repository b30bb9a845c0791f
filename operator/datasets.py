"""A deleted project's dataset removed, by both drivers (the cluster's finalizer, local mode's controller), as
core/storage.py says: a later project of the same name, or any other, finds nothing of it (docs/storage.md)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from kubevision.core.api import DatasetLocation
from kubevision.core.settings import S3Settings
from kubevision.core.storage import ObjectStore, delete_project_dataset

log = logging.getLogger(__name__)


def delete_dataset(body: Any, siblings: Iterable[dict[str, Any]], s3: S3Settings) -> str:
    """Remove the dataset of the project `body`, being deleted; `siblings`: the projects of its namespace (those
    being deleted too, and itself, do not keep it). S3 failing raises (STORAGE_FAULTS, StorageUnavailable): the
    caller tries again, and the project stays until it is done."""
    meta = body["metadata"]
    others = [(s["spec"]["dataset"]["bucket"], s["spec"]["dataset"].get("prefix", "")) for s in siblings
              if s["metadata"]["name"] != meta["name"] and not s["metadata"].get("deletionTimestamp")]
    done = delete_project_dataset(ObjectStore(s3), meta["namespace"],
                                  DatasetLocation.model_validate(dict(body["spec"]["dataset"])), others)
    log.info("CustomVisionProject %s/%s deleted: %s", meta["namespace"], meta["name"], done)
    return done
