"""What both drivers observe of a project outside Kubernetes: its dataset manifest in S3, its MLflow experiment
(through MLflow's REST API: neither driver imports MLflow's client for it). Each turns a fault into an observation
the reconcile core reports, never into an exception."""

from __future__ import annotations

from kubevision.core import dataset, tracking
from kubevision.core.api import CustomVisionProject
from kubevision.core.settings import S3Settings
from kubevision.core.storage import STORAGE_FAULTS, DatasetLayout, DatasetStore, ObjectStore
from kubevision.operator.reconcile import DatasetObservation


def observe_dataset(project: CustomVisionProject, s3: S3Settings) -> DatasetObservation:
    store = ObjectStore(s3)
    layout = DatasetLayout.of(project.spec.dataset)
    try:
        if not store.exists(layout.bucket, layout.manifest_key):
            return DatasetObservation()
        records = DatasetStore(store, layout).manifest()
    except STORAGE_FAULTS as error:
        return DatasetObservation(error=f"S3 at {s3.endpoint}: {error}")
    except dataset.ManifestError as error:
        return DatasetObservation(manifest_found=True, manifest_error=str(error))
    return DatasetObservation(manifest_found=True, image_count=len(records),
                              tag_counts=dict(dataset.tag_counts(records)))


def ensure_experiment(project: CustomVisionProject, tracking_uri: str) -> tuple[str | None, str | None]:
    """The project's MLflow experiment, created if need be: (experiment id, error)."""
    name = tracking.experiment_name(project.metadata.namespace, project.metadata.name)
    try:
        return tracking.ensure_experiment(tracking_uri, name), None
    except tracking.TrackingError as error:
        return None, str(error)
