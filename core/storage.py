"""The storage layout: the only module that knows bucket and key names (docs/storage.md describes it).

    <dataset bucket>/<dataset prefix>images/<sha256[:2]>/<sha256>         image bytes, stored once by content
    <dataset bucket>/<dataset prefix>manifest.jsonl                        the live dataset manifest
    <dataset bucket>/<dataset prefix>snapshots/<iteration id>.jsonl        immutable manifest of one iteration
    <dataset bucket>/<dataset prefix>predictions/<date>/<prediction id>.json  a stored prediction (image in images/)
    <dataset bucket>/<dataset prefix>exports/<export id>.json              a project exported for import elsewhere
    <models bucket>/triton/<namespace>/<project>/                          the project's Triton model repository
    <models bucket>/triton/<namespace>/<project>/<model>/config.pbtxt      one model a trained iteration
    <models bucket>/results/<namespace>/<iteration id>.json               a training result too big for the
                                                                           Job's termination message
    <models bucket>/results/<namespace>/<iteration id>.heldout.json       its held-out predictions

A project's dataset prefix is `<its namespace>/<at least one more segment>/` (dataset_prefix_problem), and a deleted
project's dataset goes whole (delete_project_dataset).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from kubevision.core import dataset
from kubevision.core.api import DatasetLocation
from kubevision.core.settings import S3Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

_MISSING = {"NoSuchKey", "NoSuchBucket", "NoSuchObject"}
# Faults that pass: a storage that is slow, throttles, restarts or denies for a moment. Retried by the caller.
STORAGE_FAULTS = (S3Error, urllib3.exceptions.HTTPError, OSError)


def is_missing(error: Exception) -> bool:
    """Only these errors mean the object is not there; every other one may pass and is worth a retry."""
    return isinstance(error, S3Error) and error.code in _MISSING


class StorageUnavailable(Exception):
    """S3 kept failing (denied, throttled, unreachable, hung) through every retry."""


def retrying(call: Callable[[], T], what: str, attempts: int = 4, delay: float = 1.0) -> T:
    """call(), again after 1, 2, 4 … seconds while S3 fails; a missing object is an answer and is not retried."""
    failures = 0
    while True:
        try:
            return call()
        except STORAGE_FAULTS as error:
            failures += 1
            if is_missing(error):
                raise
            if failures == attempts:
                raise StorageUnavailable(f"S3 failed {attempts} times reading {what}: {error}") from error
            log.warning("S3 failed reading %s (%s); trying again", what, error)
            time.sleep(delay * 2 ** (failures - 1))


def dataset_prefix_problem(namespace: str, prefix: str) -> str | None:
    """Why a project of `namespace` may not keep its dataset under `prefix`; None when it may.

    A project's dataset lives under `<its namespace>/<at least one more segment>/`. Namespaces hold no '/', so no
    namespace's area contains another's: a project can never name, read or write another namespace's data. The bare
    `<namespace>/` is refused too: it would hold every other project of the namespace, and deleting the project
    would delete theirs (docs/storage.md)."""
    own = f"{namespace}/"
    if prefix.startswith(own) and prefix.endswith("/") and all(prefix[len(own):-1].split("/")):
        return None
    return (f"spec.dataset.prefix {prefix!r} is outside the project's namespace: it must begin with "
            f"'{own}' followed by at least one more segment, e.g. '{own}<project>/'")


def shares_dataset(bucket: str, prefix: str, others: Iterable[tuple[str, str]]) -> bool:
    """Whether another project's dataset (bucket, prefix) overlaps this one: then deleting this project keeps the
    objects, which the other still reads (docs/storage.md)."""
    return any(b == bucket and (p.startswith(prefix) or prefix.startswith(p)) for b, p in others)


def delete_project_dataset(store: ObjectStore, namespace: str, location: DatasetLocation,
                           others: Iterable[tuple[str, str]]) -> str:
    """Remove a deleted project's dataset (images, manifest, snapshots, stored predictions, exports), so that no
    later project finds anything of it; returns what was done, for an Event or the log. `others`: (bucket, prefix)
    of the namespace's other projects that are not being deleted. Kept when the prefix is not the project's own
    (another namespace's data is never touched) or while another project uses an overlapping prefix."""
    bucket, prefix = location.bucket, location.prefix
    if dataset_prefix_problem(namespace, prefix) is not None:
        return f"dataset s3://{bucket}/{prefix} kept: it is not under namespace {namespace}"
    if shares_dataset(bucket, prefix, others):
        return f"dataset s3://{bucket}/{prefix} kept: another project of namespace {namespace} uses it"
    removed = DatasetStore(store, DatasetLayout(bucket, prefix)).delete()
    return f"dataset s3://{bucket}/{prefix} removed ({removed} objects)"


def default_dataset_prefix(namespace: str, project: str) -> str:
    """Where a project made by the training API keeps its dataset."""
    return f"{namespace}/{project}/"


@dataclass(frozen=True)
class DatasetLayout:
    bucket: str
    prefix: str

    @classmethod
    def of(cls, location: DatasetLocation) -> DatasetLayout:
        return cls(location.bucket, location.prefix)

    def image_key(self, sha256: str) -> str:
        return f"{self.prefix}images/{sha256[:2]}/{sha256}"

    @property
    def manifest_key(self) -> str:
        return f"{self.prefix}manifest.jsonl"

    def snapshot_key(self, iteration_id: str) -> str:
        return f"{self.prefix}snapshots/{iteration_id}.jsonl"

    def export_key(self, export_id: str) -> str:
        return f"{self.prefix}exports/{export_id}.json"

    def prediction_key(self, created: datetime, prediction_id: str) -> str:
        return f"{self.prefix}predictions/{created.astimezone(UTC):%Y-%m-%d}/{prediction_id}.json"


@dataclass(frozen=True)
class ModelRepositoryLayout:
    """A project's Triton model repository: Triton reads it straight from S3."""

    bucket: str
    namespace: str
    project: str

    @property
    def prefix(self) -> str:
        return f"triton/{self.namespace}/{self.project}/"

    def model_key(self, model: str, path: str) -> str:
        """Key of a file inside one model's folder, e.g. ("iter-1", "1/model.onnx")."""
        return f"{self.prefix}{model}/{path}"

    def triton_uri(self, s3: S3Settings) -> str:
        """The --model-repository argument Triton takes for this repository."""
        host = f"https://{s3.endpoint}" if s3.secure else s3.endpoint
        return f"s3://{host}/{self.bucket}/{self.prefix.rstrip('/')}"


def model_labels_key(model_uri: str) -> tuple[str, str]:
    """(bucket, key) of labels.txt in the model folder that `model_uri` (s3://bucket/.../model/) names."""
    bucket, _, folder = model_uri.removeprefix("s3://").partition("/")
    if not bucket or not folder:
        raise ValueError(f"not a model folder URI: {model_uri!r}")
    return bucket, folder.rstrip("/") + "/labels.txt"


def model_onnx_key(model_uri: str) -> tuple[str, str]:
    """(bucket, key) of the ONNX model in the model folder that `model_uri` names (beside labels.txt)."""
    bucket, labels_key = model_labels_key(model_uri)
    return bucket, labels_key.removesuffix("labels.txt") + "1/model.onnx"


def result_key(namespace: str, iteration_id: str) -> str:
    """Where a trainer keeps its whole result when the termination message (4 KiB) cannot hold it."""
    return f"results/{namespace}/{iteration_id}.json"


def held_out_key(namespace: str, iteration_id: str) -> str:
    """Where a trainer keeps its held-out predictions (kubevision.core.heldout), beside its result."""
    return f"results/{namespace}/{iteration_id}.heldout.json"


class ObjectStore:
    """Thin typed access to S3 through the MinIO SDK."""

    def __init__(self, settings: S3Settings):
        self.settings = settings
        # MinIO's own client waits 5 minutes on a storage that accepts and never answers, retrying 5 times: a
        # hung S3 would hold a reconcile (and a worker thread) for half an hour. Bounded here; callers retry.
        timeout = urllib3.Timeout(connect=settings.timeout_seconds, read=settings.timeout_seconds)
        http = urllib3.PoolManager(
            timeout=timeout, maxsize=10,
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key.get_secret_value(),
            secure=settings.secure,
            region=settings.region,
            http_client=http,
        )

    def ensure_bucket(self, bucket: str) -> None:
        if not self.client.bucket_exists(bucket):
            self.client.make_bucket(bucket)

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None) -> str:
        """Write an object, with user metadata if given (written with it, in one request); returns its ETag."""
        result = self.client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type,
                                        metadata=metadata)
        return result.etag.strip('"')

    def user_metadata(self, bucket: str, key: str) -> dict[str, str] | None:
        """The user metadata an object was written with (keys in lower case), or None when it does not exist."""
        try:
            headers = self.client.stat_object(bucket, key).metadata
        except S3Error as error:
            if error.code in _MISSING:
                return None
            raise
        prefix = "x-amz-meta-"
        return {name.lower()[len(prefix):]: value for name, value in headers.items()
                if name.lower().startswith(prefix)}

    def get(self, bucket: str, key: str) -> bytes:
        response = self.client.get_object(bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def etag(self, bucket: str, key: str) -> str | None:
        """The object's ETag, or None when it does not exist."""
        try:
            return self.client.stat_object(bucket, key).etag.strip('"')
        except S3Error as error:
            if error.code in _MISSING:
                return None
            raise

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.client.stat_object(bucket, key)
        except S3Error as error:
            if is_missing(error):
                return False
            raise
        return True

    def labels(self, model_uri: str) -> list[str]:
        """A model's tags, in the order of its outputs."""
        return self.get(*model_labels_key(model_uri)).decode().splitlines()

    def keys(self, bucket: str, prefix: str) -> list[str]:
        return [o.object_name for o in self.client.list_objects(bucket, prefix=prefix, recursive=True)]

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Remove every object under `prefix`; returns how many there were. A missing bucket holds none."""
        if not prefix:
            raise ValueError("refusing to delete a whole bucket")
        if not self.client.bucket_exists(bucket):
            return 0
        keys = self.keys(bucket, prefix)
        for first in range(0, len(keys), 1000):  # S3's DeleteObjects takes 1000 keys a request
            failed = list(self.client.remove_objects(bucket, [DeleteObject(k) for k in keys[first:first + 1000]]))
            if failed:
                raise StorageUnavailable(f"S3 kept {len(failed)} objects under s3://{bucket}/{prefix}: {failed[0]}")
        return len(keys)


class DatasetStore:
    """A project's images and manifest, read; and its snapshots. The label store (kubevision.core.labelstore)
    writes the manifest."""

    def __init__(self, store: ObjectStore, layout: DatasetLayout):
        self.store = store
        self.layout = layout

    def image(self, record: dataset.ImageRecord) -> bytes:
        return self.store.get(self.layout.bucket, self.layout.image_key(record.sha256))

    def manifest(self) -> list[dataset.ImageRecord]:
        """The live manifest; empty when none was written yet."""
        if not self.store.exists(self.layout.bucket, self.layout.manifest_key):
            return []
        return dataset.loads(self.store.get(self.layout.bucket, self.layout.manifest_key))

    def snapshot(self, iteration_id: str) -> str:
        """Freeze the manifest for an iteration and return the snapshot's key. A snapshot is written once:
        taking it again (a retried reconcile) returns the first one unchanged, so a retrain is reproducible."""
        key = self.layout.snapshot_key(iteration_id)
        if not self.store.exists(self.layout.bucket, key):
            self.store.put(self.layout.bucket, key, dataset.dumps(self.manifest()), "application/x-ndjson")
        return key

    def delete(self) -> int:
        """Remove the whole dataset (images, manifest, snapshots, predictions, exports): a project that is deleted
        leaves nothing a later project could read. Returns how many objects went."""
        return self.store.delete_prefix(self.layout.bucket, self.layout.prefix)

    def snapshot_records(self, iteration_id: str) -> list[dataset.ImageRecord]:
        return dataset.loads(self.store.get(self.layout.bucket, self.layout.snapshot_key(iteration_id)))
