"""Argo CD's health checks of CustomVisionProject and Iteration, run as Argo CD runs them: the Lua of
deploy/argocd/argocd-cm-health.yaml with the object as the global `obj`, in Lua 5.1 (Argo CD's gopher-lua speaks
5.1), against a status of every state the operator writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lupa import lua51

from kubevision.core.reasons import Reason

REPO = Path(__file__).resolve().parents[2]
CHECKS = yaml.safe_load((REPO / "deploy" / "argocd" / "argocd-cm-health.yaml").read_text())["data"]
KEY = "resource.customizations.health.kubevision.io_{}"

# What Argo CD shows for an Iteration whose Ready condition is False for each reason: every reason is decided here,
# so a new one fails the test below until someone says whether it waits or needs a person.
ITERATION_NOT_READY = {
    Reason.PROJECT_NOT_READY: "Progressing", Reason.TRAINING: "Progressing", Reason.PUBLISHING: "Progressing",
    Reason.SERVING_NOT_READY: "Progressing", Reason.NOT_TRAINED: "Progressing",
    Reason.STORAGE_UNAVAILABLE: "Progressing", Reason.CONCURRENT_TRAINING_LIMIT: "Progressing",
    Reason.QUEUED: "Progressing",
    Reason.INADMISSIBLE: "Degraded",  # Kueue's LocalQueue or ClusterQueue is missing or stopped
    Reason.ITERATION_LIMIT: "Degraded",  # someone has to delete older iterations
    Reason.PROJECT_NOT_FOUND: "Degraded", Reason.IMAGE_PULL_FAILED: "Degraded", Reason.TRAINING_FAILED: "Degraded",
    Reason.BUDGET_EXCEEDED: "Degraded", Reason.NO_RESULT: "Degraded", Reason.PUBLISH_NAME_CONFLICT: "Degraded",
    Reason.DATASET_NOT_FOUND: "Degraded", Reason.NO_IMAGES: "Degraded", Reason.TOO_FEW_IMAGES: "Degraded",
    Reason.TOO_FEW_TAGS: "Degraded", Reason.UNSUPPORTED_PROJECT_TYPE: "Degraded",
    Reason.MANIFEST_INVALID: "Degraded", Reason.MODEL_NOT_FOUND: "Degraded",
    Reason.RECONCILE_FAILED: "Degraded",  # unforeseen: retried, but a person should read the message
}
# Reasons that never make an Iteration's Ready False (True reasons, the project's own, or an Event's).
NOT_ITERATION_BLOCKERS = {Reason.ENOUGH_IMAGES, Reason.READY, Reason.DATASET_NOT_READY, Reason.TRACKING_UNAVAILABLE,
                          Reason.TRAINING_SUCCEEDED, Reason.SPEC_CURRENT, Reason.SPEC_CHANGED_AFTER_TRAINING,
                          Reason.NOT_PUBLISHED, Reason.PUBLISHED, Reason.DATASET_OUTSIDE_NAMESPACE,
                          Reason.DATASET_NOT_REMOVED, Reason.PROJECT_LIMIT}


def health(kind: str, obj: dict) -> dict[str, str]:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = to_lua(lua, obj)
    result = lua.execute(CHECKS[KEY.format(kind)])
    return {"status": result["status"], "message": result["message"]}


def to_lua(lua, value):
    """Nested dicts and lists as Lua tables, as Argo CD hands the object over."""
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([to_lua(lua, v) for v in value])
    return value


def condition(type_: str, status: str, reason: str, message: str = "") -> dict:
    return {"type": type_, "status": status, "reason": reason, "message": message, "observedGeneration": 2,
            "lastTransitionTime": "2026-01-01T00:00:00Z"}


def resource(*conditions, generation: int = 2, observed: int | None = 2, phase: str | None = None) -> dict:
    status: dict = {"conditions": list(conditions)}
    if observed is not None:
        status["observedGeneration"] = observed
    if phase:
        status["phase"] = phase
    return {"metadata": {"name": "x", "generation": generation}, "status": status}


@pytest.mark.parametrize("kind", ["CustomVisionProject", "Iteration"])
def test_a_new_or_unseen_resource_is_progressing(kind):
    assert health(kind, {"metadata": {"name": "x", "generation": 1}})["status"] == "Progressing"
    stale = resource(condition("Ready", "True", "Ready"), generation=3, observed=2)
    assert health(kind, stale) == {"status": "Progressing",
                                   "message": "Waiting for the operator to see generation 3"}
    assert health(kind, resource(condition("Ready", "Unknown", "Ready")))["status"] == "Progressing"


def test_a_ready_project_is_healthy():
    ready = resource(condition("DatasetReady", "True", "EnoughImages"),
                     condition("Ready", "True", "Ready", "the dataset can train iterations"))
    assert health("CustomVisionProject", ready) == {"status": "Healthy",
                                                    "message": "the dataset can train iterations"}


def test_a_project_short_of_images_is_degraded_with_the_reason():
    short = resource(condition("DatasetReady", "False", "TooFewImages", "tag cat has 3 images, 5 are needed"),
                     condition("Ready", "False", "DatasetNotReady", "tag cat has 3 images, 5 are needed"))
    assert health("CustomVisionProject", short) == {
        "status": "Degraded", "message": "DatasetNotReady: tag cat has 3 images, 5 are needed"}


def test_a_project_past_its_namespaces_project_limit_is_degraded_until_someone_deletes_older_ones():
    """Its dataset is not read (DatasetReady Unknown), but nothing resolves it by itself: a person deletes older
    projects, or the platform team raises the limit."""
    message = "namespace ml holds 2 older projects and its limit projects is 2"
    past = resource(condition("DatasetReady", "Unknown", Reason.PROJECT_LIMIT, "not read"),
                    condition("Ready", "False", Reason.PROJECT_LIMIT, message))
    assert health("CustomVisionProject", past) == {"status": "Degraded",
                                                   "message": f"ProjectLimitExceeded: {message}"}


@pytest.mark.parametrize("ready", [
    condition("Ready", "False", "TrackingUnavailable", "MLflow refused"),
    condition("Ready", "False", "DatasetNotReady", "S3 timed out"),
])
def test_a_project_waiting_on_s3_or_mlflow_is_progressing(ready):
    dataset = condition("DatasetReady", "Unknown", "StorageUnavailable", "S3 timed out")
    assert health("CustomVisionProject", resource(dataset, ready))["status"] == "Progressing"


@pytest.mark.parametrize(("reason", "phase"), [("Published", "Published"), ("TrainingSucceeded", "Trained")])
def test_a_published_or_trained_iteration_is_healthy(reason, phase):
    iteration = resource(condition("Trained", "True", "TrainingSucceeded"), condition("Ready", "True", reason,
                                                                                      "the model is served"),
                         phase=phase)
    assert health("Iteration", iteration) == {"status": "Healthy", "message": f"{phase}: the model is served"}


@pytest.mark.parametrize("reason", sorted(ITERATION_NOT_READY))
def test_an_iteration_that_is_not_ready(reason):
    iteration = resource(condition("Trained", "False", reason, "what happened"),
                         condition("Ready", "False", reason, "what happened"))
    assert health("Iteration", iteration) == {"status": ITERATION_NOT_READY[reason],
                                              "message": f"{reason}: what happened"}


def test_every_reason_is_decided():
    assert set(ITERATION_NOT_READY) | NOT_ITERATION_BLOCKERS == set(Reason)


def test_a_spec_changed_after_training_is_degraded_until_a_new_iteration():
    iteration = resource(condition("Trained", "True", "TrainingSucceeded"), condition("Ready", "True", "Published"),
                         condition("TrainingSpecCurrent", "False", "SpecChangedAfterTraining", "create a new one"))
    assert health("Iteration", iteration) == {"status": "Degraded",
                                              "message": "SpecChangedAfterTraining: create a new one"}


def test_the_keys_name_the_crds_group_and_kinds():
    kinds = {yaml.safe_load(p.read_text())["spec"]["names"]["kind"] for p in (REPO / "crds").glob("*.yaml")}
    assert set(CHECKS) == {KEY.format(kind) for kind in kinds}
