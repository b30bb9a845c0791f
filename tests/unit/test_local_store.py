"""Local mode's store keeps Kubernetes' promise to concurrent writers: a `kubevision apply` or `delete` that lands
while the controller writes status is never undone, and a status computed from an older object is refused."""

import multiprocessing

import pytest

from kubevision.core import validation
from kubevision.local.store import Conflict, LocalStore

KIND = "CustomVisionProject"
CHANGES = 60


def project(budget: int) -> dict:
    return {"apiVersion": "kubevision.io/v1alpha1", "kind": KIND, "metadata": {"name": "pets"},
            "spec": {"displayName": "Pets", "dataset": {"bucket": "data", "prefix": "default/pets/"},
                     "trainingDefaults": {"budgetMinutes": budget}}}


def a_user_applying_then_deleting(path) -> None:
    store = LocalStore(path)
    for budget in range(2, CHANGES + 1):
        store.apply(project(budget))
    store.mark_deleted(KIND, "default", "pets")


def a_controller_writing_status(path, done) -> None:
    store = LocalStore(path)
    while not done.is_set():
        body = store.get(KIND, "default", "pets")
        try:
            store.update_status(KIND, "default", "pets", {"phase": "Ready"}, body["metadata"]["resourceVersion"])
        except Conflict:
            pass  # the next pass reads the new version


def test_concurrent_applies_deletes_and_status_writes_lose_nothing(tmp_path):
    path = tmp_path / "resources.db"
    LocalStore(path).apply(project(1))
    processes = multiprocessing.get_context("fork")
    done = processes.Event()
    controller = processes.Process(target=a_controller_writing_status, args=(path, done))
    controller.start()
    user = processes.Process(target=a_user_applying_then_deleting, args=(path,))
    user.start()
    user.join(120)
    done.set()
    controller.join(30)
    assert (user.exitcode, controller.exitcode) == (0, 0)
    body = LocalStore(path).get(KIND, "default", "pets")
    assert body["metadata"]["generation"] == CHANGES, "an apply was undone"
    assert body["spec"]["trainingDefaults"]["budgetMinutes"] == CHANGES
    assert "deletionTimestamp" in body["metadata"], "the delete was undone"


def test_apply_refuses_a_project_whose_dataset_is_another_namespaces(tmp_path):
    store = LocalStore(tmp_path / "store.db")
    foreign = {**project(30), "metadata": {"name": "pets", "namespace": "team-b"}}
    foreign["spec"] = {**foreign["spec"], "dataset": {"bucket": "data", "prefix": "default/pets/"}}
    with pytest.raises(validation.InvalidManifest, match="must begin with 'team-b/'"):
        store.apply(foreign)
    assert store.list(KIND) == []  # nothing stored


def test_a_status_computed_from_an_older_object_is_refused(tmp_path):
    store = LocalStore(tmp_path / "resources.db")
    seen, _ = store.apply(project(1))
    changed, action = store.apply(project(2))
    assert action == "configured" and changed["metadata"]["resourceVersion"] != seen["metadata"]["resourceVersion"]
    with pytest.raises(Conflict):
        store.update_status(KIND, "default", "pets", {"phase": "Ready"}, seen["metadata"]["resourceVersion"])
    assert "status" not in store.get(KIND, "default", "pets")  # the refused write left no trace
    store.update_status(KIND, "default", "pets", {"phase": "Ready"}, changed["metadata"]["resourceVersion"])
    current = store.get(KIND, "default", "pets")
    assert current["status"] == {"phase": "Ready"} and current["spec"]["trainingDefaults"]["budgetMinutes"] == 2
    again, action = store.apply(project(2))
    assert action == "unchanged" and again["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]
