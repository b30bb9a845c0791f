"""What both drivers observe of a project outside Kubernetes: its dataset manifest in S3, its MLflow experiment
(through MLflow's REST API: neither driver imports MLflow's client for it). Each turns a fault into an observation
the reconcile core reports, never into an exception. Also what both drivers write to MLflow: the alias that marks
a published model version, and the end of a run whose trainer died."""

from __future__ import annotations

import logging

from kubevision.core import conditions, dataset, tracking
from kubevision.core.api import CustomVisionProject, Iteration, IterationPhase, IterationStatus
from kubevision.core.settings import S3Settings
from kubevision.core.storage import STORAGE_FAULTS, DatasetLayout, DatasetStore, ObjectStore
from kubevision.operator.reconcile import DatasetObservation

log = logging.getLogger(__name__)


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


def sync_tracking(iteration: Iteration, old: IterationStatus, new: IterationStatus, tracking_uri: str) -> None:
    """MLflow follows the new status. When an Iteration starts or stops being served, its registered model version
    gains or loses the alias of its publish name, so that MLflow shows what serves. When its training has just
    failed, a run its trainer left RUNNING (killed before it could end it) is ended as FAILED, with the reason.
    MLflow failing is logged, never fatal: serving goes on."""
    namespace, project = iteration.metadata.namespace, iteration.spec.project_ref.name
    try:
        if old.published_name != new.published_name:
            if old.published_name:
                tracking.delete_published_alias(tracking_uri, namespace, project, old.published_name)
            if new.published_name and new.mlflow_run_id:
                tracking.set_published_alias(tracking_uri, namespace, project, new.mlflow_run_id,
                                             new.published_name)
        if new.phase == IterationPhase.FAILED and old.phase != IterationPhase.FAILED and iteration.metadata.uid:
            trained = conditions.find(new.conditions, "Trained")
            why = f"{trained.reason}: {trained.message}" if trained else "the training failed"
            tracking.end_unfinished_runs(tracking_uri, namespace, project, iteration.metadata.uid, why)
    except tracking.TrackingError as error:
        log.warning("Iteration %s/%s: MLflow was not updated: %s", namespace, iteration.metadata.name, error)
