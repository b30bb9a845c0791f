"""What both drivers observe of a project outside Kubernetes: its dataset manifest in S3, its MLflow experiment.
Each turns a fault into an observation the reconcile core reports, never into an exception."""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from kubevision.core import dataset
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
    name = f"kubevision/{project.metadata.namespace}/{project.metadata.name}"
    try:
        tracking = MlflowClient(tracking_uri)
        if experiment := tracking.get_experiment_by_name(name):
            return experiment.experiment_id, None
        try:
            return tracking.create_experiment(name), None
        except MlflowException as error:  # a concurrent reconcile created it first
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return tracking.get_experiment_by_name(name).experiment_id, None
    except Exception as error:  # MLflow's client raises many kinds; all mean "not reachable now"
        return None, f"MLflow at {tracking_uri}: {error}"
