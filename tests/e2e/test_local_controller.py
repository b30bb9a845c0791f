"""The local controller with the real S3, MLflow and Triton, on a store of its own: a broken resource fails alone
and says why, and a model missing from every repository is reported, not chased by restarting Triton."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime

import pytest
from conftest import FASHION_TAGS, fashion_mnist
from seeding import Seed, photo, seed

from kubevision.core.api import Iteration
from kubevision.core.labels import model_name
from kubevision.core.reasons import Reason
from kubevision.core.storage import DatasetLayout, DatasetStore, ObjectStore
from kubevision.core.training import iteration_id
from kubevision.local.controller import LocalController
from kubevision.local.store import LocalStore

BUCKET = "local-controller"


def project(name: str) -> dict:
    return {"apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": name},
            "spec": {"displayName": name, "dataset": {"bucket": BUCKET, "prefix": f"default/{name}/"}}}


def iteration(name: str, project_name: str, **spec) -> dict:
    return {"apiVersion": "kubevision.io/v1alpha1", "kind": "Iteration", "metadata": {"name": name},
            "spec": {"projectRef": {"name": project_name}, **spec}}


def condition(body: dict, type_: str) -> dict:
    return next(c for c in body["status"]["conditions"] if c["type"] == type_)


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "resources.db")


@pytest.fixture
def datasets(platform) -> ObjectStore:
    objects = ObjectStore(platform.s3_settings())
    objects.ensure_bucket(BUCKET)
    return objects


def a_finished_training(controller: LocalController, body: dict, files: dict[str, str]) -> None:
    """The folder a trainer process leaves, its process long gone."""
    done = subprocess.Popen(["true"])
    done.wait()
    folder = controller.trainings.folder / iteration_id_of(body)
    folder.mkdir(parents=True)
    process = {"pid": f"{done.pid} a-process-that-ended/1", "deadline": str(time.time() + 600), "trainer.log": ""}
    for name, content in {**process, **files}.items():
        (folder / name).write_text(content)


def iteration_id_of(body: dict) -> str:
    return iteration_id(Iteration.model_validate(body))


def test_a_broken_resource_fails_alone_and_says_why(platform, store, datasets):
    good = DatasetStore(datasets, DatasetLayout(BUCKET, "default/fine/"))
    seed(datasets, good.layout, [Seed(photo(f"fine-{tag}-{i}"), [tag]) for tag in ("cat", "dog") for i in range(5)])
    manifest = DatasetLayout(BUCKET, "default/broken/").manifest_key
    valid_line = good.store.get(BUCKET, good.layout.manifest_key).splitlines()[0]
    datasets.put(BUCKET, manifest, valid_line + b'\n{"id": "x", "sha256": "not-a-hash"}\n')
    store.apply(project("broken"))
    store.apply(project("fine"))
    spoilt, _ = store.apply(iteration("spoilt-1", "fine"))
    garbled, _ = store.apply(iteration("garbled-1", "fine"))
    controller = LocalController(platform, store)
    a_finished_training(controller, spoilt, {"result.json": '{"outcome": "Succeeded", "reas'})  # cut short
    a_finished_training(controller, garbled, {"pid": "garbage"})  # unforeseen: fails in the controller

    controller.reconcile_all()

    broken = store.get("CustomVisionProject", "default", "broken")
    assert condition(broken, "DatasetReady")["reason"] == Reason.MANIFEST_INVALID
    assert "manifest line 2: sha256" in condition(broken, "DatasetReady")["message"]
    assert store.get("CustomVisionProject", "default", "fine")["status"]["phase"] == "Ready"
    failed = store.get("Iteration", "default", "spoilt-1")
    assert failed["status"]["phase"] == "Failed"
    assert condition(failed, "Trained")["reason"] == Reason.TRAINING_FAILED
    unforeseen = store.get("Iteration", "default", "garbled-1")
    assert condition(unforeseen, "Ready")["reason"] == Reason.RECONCILE_FAILED
    assert "ValueError" in condition(unforeseen, "Ready")["message"]


def test_a_model_in_no_repository_is_reported_without_restarting_triton(platform, store):
    store.apply(project("ghosts"))
    body, _ = store.apply(iteration("ghosts-1", "ghosts", publishName="ghosts-v1"))
    trained = {"phase": "Trained", "conditions": [{"type": "Trained", "status": "True", "reason": "TrainingSucceeded",
                                                   "message": "trained", "lastTransitionTime": "2026-11-25T12:00:00Z"}]}
    store.update_status("Iteration", "default", "ghosts-1", trained, body["metadata"]["resourceVersion"])
    triton = platform.load_state().services["triton"].pid
    controller = LocalController(platform, store, clock=lambda: datetime.now(UTC))
    for _ in range(3):
        controller.reconcile_all()
    assert platform.load_state().services["triton"].pid == triton, "Triton was restarted, dropping every model"
    ghost = store.get("Iteration", "default", "ghosts-1")
    assert condition(ghost, "Published")["status"] == "False"
    assert condition(ghost, "Published")["reason"] == Reason.MODEL_NOT_FOUND
    assert model_name(ghost["metadata"]["uid"]) in condition(ghost, "Published")["message"]
    assert ghost["status"]["phase"] == "Trained"


def test_a_deleted_project_leaves_nothing_for_the_next_one_of_its_name(platform, store, datasets):
    """`kubevision delete`: the controller removes the project's dataset (images, manifest, snapshots) before the
    project, so the project applied again under its name starts empty; a neighbour's dataset stays."""
    for name in ("gone", "gone-2"):
        seed(datasets, DatasetLayout(BUCKET, f"default/{name}/"),
             [Seed(photo(f"{name}-{tag}-{i}"), [tag]) for tag in ("cat", "dog") for i in range(5)])
        store.apply(project(name))
    controller = LocalController(platform, store)
    controller.reconcile_all()
    assert store.get("CustomVisionProject", "default", "gone")["status"]["imageCount"] == 10

    store.mark_deleted("CustomVisionProject", "default", "gone")
    controller.reconcile_all()
    assert store.get("CustomVisionProject", "default", "gone") is None
    assert datasets.keys(BUCKET, "default/gone/") == []
    assert len(datasets.keys(BUCKET, "default/gone-2/")) == 11

    store.apply(project("gone"))
    controller.reconcile_all()
    again = store.get("CustomVisionProject", "default", "gone")
    assert condition(again, "DatasetReady")["reason"] == Reason.DATASET_NOT_FOUND and not again["status"].get(
        "imageCount")


def test_a_project_past_the_namespaces_project_limit_is_not_ready_until_an_older_one_is_deleted(platform, store,
                                                                                                datasets, tmp_path):
    """<data dir>/limits.yaml allows the namespace one project: the younger of two (by creation, not by name) is
    not Ready and its dataset is not counted; once the older is deleted, the next pass makes it Ready."""
    (tmp_path / "limits.yaml").write_text("namespaces:\n  default:\n    projects: 1\n")
    for name in ("herons", "egrets"):
        seed(datasets, DatasetLayout(BUCKET, f"default/{name}/"),
             [Seed(photo(f"{name}-{tag}-{i}"), [tag]) for tag in ("grey", "white") for i in range(5)])
    store.apply(project("herons"), now=datetime(2026, 11, 25, 11, 0, tzinfo=UTC))
    store.apply(project("egrets"), now=datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    controller = LocalController(platform, store)
    controller.reconcile_all()
    assert store.get("CustomVisionProject", "default", "herons")["status"]["phase"] == "Ready"
    held = store.get("CustomVisionProject", "default", "egrets")
    assert held["status"]["phase"] == "NotReady" and condition(held, "Ready")["reason"] == Reason.PROJECT_LIMIT
    assert "its limit projects is 1" in condition(held, "Ready")["message"]
    assert "imageCount" not in held["status"] and "experimentId" not in held["status"]

    store.mark_deleted("CustomVisionProject", "default", "herons")
    controller.reconcile_all()
    ready = store.get("CustomVisionProject", "default", "egrets")
    assert ready["status"]["phase"] == "Ready" and ready["status"]["imageCount"] == 10


def test_past_the_namespace_limit_a_training_waits_queued_until_the_running_one_ends(platform, store, datasets,
                                                                                      tmp_path):
    """<data dir>/limits.yaml allows the namespace one training at once: of two Iterations, the younger is Queued,
    with no trainer process, while the older trains for real; when that one ends, the younger trains."""
    (tmp_path / "limits.yaml").write_text("namespaces:\n  default:\n    concurrent_trainings: 1\n")
    seed(datasets, DatasetLayout(BUCKET, "default/turns/"),
         [Seed(data, [FASHION_TAGS[label]]) for data, label in fashion_mnist(5, [0, 7])])
    store.apply(project("turns"))
    first, _ = store.apply(iteration("turns-1", "turns", trainingType="Quick"))
    second, _ = store.apply(iteration("turns-2", "turns", trainingType="Quick"))
    controller = LocalController(platform, store)
    waiting_trainer = controller.trainings.folder / iteration_id_of(second)

    def phases() -> dict[str, str]:
        return {name: (store.get("Iteration", "default", name).get("status") or {}).get("phase")
                for name in ("turns-1", "turns-2")}

    controller.reconcile_all()
    assert phases() == {"turns-1": "Training", "turns-2": "Queued"}
    queued = store.get("Iteration", "default", "turns-2")
    assert condition(queued, "Trained")["reason"] == Reason.CONCURRENT_TRAINING_LIMIT
    assert "limit concurrent_trainings is 1" in condition(queued, "Trained")["message"]

    def first_ended() -> bool:
        now = phases()
        if now["turns-1"] == "Training":  # every pass meanwhile: the younger waits, and no trainer runs for it
            assert now["turns-2"] == "Queued" and not waiting_trainer.exists()
        return now["turns-1"] != "Training"

    controller.run(until=first_ended, timeout=600, interval=1)
    assert phases()["turns-1"] == "Trained"
    try:
        controller.run(until=lambda: phases()["turns-2"] != "Queued", timeout=60, interval=1)
        started = store.get("Iteration", "default", "turns-2")
        assert started["status"]["phase"] == "Training" and condition(started, "Trained")["reason"] == Reason.TRAINING
        assert (waiting_trainer / "pid").is_file()
        controller.run(until=lambda: phases()["turns-2"] != "Training", timeout=600, interval=1)
        assert phases()["turns-2"] == "Trained"
    finally:
        controller.trainings.stop(iteration_id_of(second))
