"""The real operator (kopf) against the Kubernetes emulator, with the real local S3 and MLflow. The tests play the
Job and Deployment controllers, which the emulator does not run, by writing those objects' status."""

from __future__ import annotations

import asyncio
import collections
import json
from pathlib import Path
from typing import Any

import kmock
import pytest
from chart import role_rules
from fault_proxy import FaultProxy
from kopf_harness import eventually, running_operator
from kube_emulator import KubeEmulator
from kubernetes_asyncio import client
from mlflow.tracking import MlflowClient
from prometheus_client import REGISTRY
from seeding import Seed, photo, seed

from kubevision.core import tracking
from kubevision.core.dataset import Region
from kubevision.core.labels import model_name
from kubevision.core.reasons import Reason
from kubevision.core.results import TERMINATION_MESSAGE_BYTES, termination_message
from kubevision.core.settings import OperatorSettings
from kubevision.core.storage import DatasetLayout, ObjectStore
from kubevision.core.training import TrainingResult
from kubevision.operator.cluster import Cluster, mlflow_request_limits

REPO = Path(__file__).resolve().parents[2]
NS = "ml"
BUCKET = "operator-tests"
PROJECTS = f"/apis/kubevision.io/v1alpha1/namespaces/{NS}/customvisionprojects"
ITERATIONS = f"/apis/kubevision.io/v1alpha1/namespaces/{NS}/iterations"
JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"
PODS = f"/api/v1/namespaces/{NS}/pods"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
SERVICES = f"/api/v1/namespaces/{NS}/services"
WORKLOADS = f"/apis/kueue.x-k8s.io/v1beta1/namespaces/{NS}/workloads"
KUEUE_CRD = REPO / "tests" / "kueue_workload_crd.yaml"
RESOURCES = {
    "project": kmock.resource("kubevision.io", "v1alpha1", "customvisionprojects"),
    "iteration": kmock.resource("kubevision.io", "v1alpha1", "iterations"),
    "job": kmock.resource("batch", "v1", "jobs"),
    "deployment": kmock.resource("apps", "v1", "deployments"),
    "service": kmock.resource("v1", "services"),
}
MERGE = {"Content-Type": "application/merge-patch+json"}
OBSERVED_PERMISSIONS: set[tuple[str, str, str]] = set()  # every request the operator made, over all tests

pytestmark = pytest.mark.kmock(cls=KubeEmulator, crds=sorted(str(p) for p in (REPO / "crds").glob("*.yaml")),
                               strict=True)


# A resync far beyond any test's wait: whatever the operator notices in these tests, it notices through a watch.
WATCHES_ONLY = OperatorSettings(resync_seconds=3600)
QUICK_RESYNC = 0.3


@pytest.fixture
async def operator(kmock, platform):
    s3 = platform.s3_settings()
    async with running_operator(str(kmock.url), NS, s3, platform.mlflow_settings().tracking_uri, WATCHES_ONLY):
        yield
    OBSERVED_PERMISSIONS.update(kmock.permissions)


def current(emulator: KubeEmulator, kind: str, name: str) -> dict[str, Any] | None:
    key = (RESOURCES[kind], NS, name)
    return None if key not in emulator.objects or emulator.objects[key].deleted else emulator.objects[key].raw


def phase(emulator, kind: str, name: str, wanted: str):
    return lambda: (o := current(emulator, kind, name)) and (o.get("status") or {}).get("phase") == wanted and o


def condition(obj: dict, type_: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def creates(emulator: KubeEmulator, resource: str) -> int:
    """Objects the operator created: a create answered 409 (a concurrent reconcile was first) adopts, not creates."""
    return emulator.created[resource]


def upload_dataset(platform, prefix: str, counts: dict[str, int]) -> None:
    seed(ObjectStore(platform.s3_settings()), DatasetLayout(BUCKET, prefix),  # the operator reads the manifest only
         [Seed(photo(f"{prefix}{tag}-{i}"), [tag]) for tag, count in counts.items() for i in range(count)])


async def create(emulator, path: str, body: dict) -> dict:
    response = await emulator.post(path, json=body)
    assert response.status in (200, 201), await response.text()
    return await response.json()


async def create_project(emulator, platform, name: str, counts: dict[str, int] | None = None) -> dict:
    upload_dataset(platform, f"{NS}/{name}/", counts or {"cat": 5, "dog": 6})
    return await create(emulator, PROJECTS, {
        "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": name},
        "spec": {"displayName": name, "dataset": {"bucket": BUCKET, "prefix": f"{NS}/{name}/"}},
    })


async def create_iteration(emulator, name: str, project: str, **spec) -> dict:
    return await create(emulator, ITERATIONS, {
        "apiVersion": "kubevision.io/v1alpha1", "kind": "Iteration", "metadata": {"name": name},
        "spec": {"projectRef": {"name": project}, **spec},
    })


async def finish_job(emulator, platform, job: dict, result: TrainingResult | None, failure: str = "",
                     ended: dict | None = None) -> None:
    """What the trainer, the kubelet and the Job controller would write: the termination message (through S3 when
    it is big), cut at 4 KiB as the kubelet cuts it, then the pod's and the Job's end."""
    name = job["metadata"]["name"]
    message = "" if result is None else termination_message(result, ObjectStore(platform.s3_settings()), NS, name)
    pod = await create(emulator, PODS, {"apiVersion": "v1", "kind": "Pod",
                                        "metadata": {"name": f"{name}-pod", "labels": {
                                            **job["spec"]["template"]["metadata"]["labels"], "job-name": name}},
                                        "spec": {"containers": [{"name": "trainer", "image": "trainer"}]}})
    terminated = {"exitCode": result.exit_code if result else 1,
                  "message": message.encode()[:TERMINATION_MESSAGE_BYTES].decode(errors="ignore"), **(ended or {})}
    await emulator.patch(f"{PODS}/{pod['metadata']['name']}/status", headers=MERGE, json={"status": {
        "containerStatuses": [{"name": "trainer", "ready": False, "restartCount": 0, "image": "trainer",
                               "imageID": "", "state": {"terminated": terminated}}]}})
    job_condition = {"type": "Failed", "status": "True", "reason": failure} if failure else {
        "type": "Complete", "status": "True"}
    await emulator.patch(f"{JOBS}/{name}/status", headers=MERGE, json={"status": {
        "conditions": [job_condition], "startTime": "2026-11-25T12:00:00Z",
        **({"failed": 1} if failure else {"succeeded": 1, "completionTime": "2026-11-25T12:05:00Z"})}})


def succeeded(tags: int = 2) -> TrainingResult:
    names = [f"tag-{i:03d}-as-long-as-tag-names-come" for i in range(tags)]
    return TrainingResult.model_validate({
        "outcome": "Succeeded", "reason": "TrainingSucceeded", "message": f"trained on {5 * tags} images",
        "mlflow_run_id": "run-1", "model_uri": "s3://kubevision-models/triton/ml/pets/pets-1/", "tags": names,
        "metrics": {"probability_threshold": 0.5, "precision": 0.9, "recall": 0.8, "average_precision": 0.95,
                    "per_tag": [{"tag": n, "precision": 0.9, "recall": 0.8, "average_precision": 0.95}
                                for n in names]},
    })


def store_model(platform, model: str) -> list[str]:
    """The files a trainer leaves in the project's model repository; their keys."""
    store = ObjectStore(platform.s3_settings())
    bucket = platform.s3_settings().models_bucket
    keys = [f"triton/{NS}/pets/{model}/{path}" for path in ("config.pbtxt", "labels.txt", "1/model.onnx")]
    for key in keys:
        store.put(bucket, key, b"model")
    return keys


def model_keys(platform, model: str) -> list[str]:
    return ObjectStore(platform.s3_settings()).keys(platform.s3_settings().models_bucket, f"triton/{NS}/pets/{model}/")


async def make_ready(emulator, deployment: dict) -> None:
    await emulator.patch(f"{DEPLOYMENTS}/{deployment['metadata']['name']}/status", headers=MERGE, json={
        "status": {"readyReplicas": 1, "replicas": 1, "observedGeneration": deployment["metadata"]["generation"]}})


# ----------------------------------------------------------------------------------------------------------------


def loaded(emulator) -> list[str]:
    deployment = current(emulator, "deployment", "kv-triton-pets")
    args = deployment["spec"]["template"]["spec"]["containers"][0].get("args", []) if deployment else []
    return [a.removeprefix("--load-model=") for a in args if a.startswith("--load-model=")]


async def test_full_lifecycle_to_published_with_conflict_and_delete(kmock, platform, operator):
    project = await create_project(kmock, platform, "pets")
    ready = await eventually(phase(kmock, "project", "pets", "Ready"), what="project Ready")
    assert condition(ready, "DatasetReady")["reason"] == Reason.ENOUGH_IMAGES
    assert ready["status"]["imageCount"] == 11 and ready["status"]["experimentId"]

    iteration = await create_iteration(kmock, "pets-1", "pets", publishName="pets-v1")
    job_name = f"pets-1-{iteration['metadata']['uid'][:8]}"
    job = await eventually(lambda: current(kmock, "job", job_name), what="the training Job")
    assert job["metadata"]["ownerReferences"][0]["uid"] == iteration["metadata"]["uid"]
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["KUBEVISION_TRAINING_REQUEST"]["value"])["iteration"]["metadata"]["name"] == "pets-1"
    training = await eventually(phase(kmock, "iteration", "pets-1", "Training"), what="Training")
    assert training["status"]["trainingJob"] == job_name
    assert ObjectStore(platform.s3_settings()).exists(BUCKET, f"{NS}/pets/snapshots/{job_name}.jsonl")

    # 500 tags (Custom Vision's most): a result far over the kubelet's 4 KiB reaches status whole.
    first = model_name(iteration["metadata"]["uid"])  # Triton's name of the model: its Iteration's uid
    model_files = store_model(platform, first)
    await finish_job(kmock, platform, job, succeeded(tags=500))
    deployment = await eventually(lambda: current(kmock, "deployment", "kv-triton-pets"), what="Deployment")
    assert loaded(kmock) == [first]
    await eventually(lambda: current(kmock, "service", "kv-triton-pets"))  # made after the Deployment
    await make_ready(kmock, deployment)
    published = await eventually(phase(kmock, "iteration", "pets-1", "Published"), what="Published")
    assert published["status"]["publishedName"] == "pets-v1"
    assert published["status"]["endpoint"] == "http://kv-triton-pets.ml.svc:8000"
    assert published["status"]["metrics"]["averagePrecision"] == 0.95
    assert len(published["status"]["metrics"]["perTag"]) == 500
    assert condition(published, "Ready")["status"] == "True"
    assert creates(kmock, "jobs") == 1

    # A second claimant of the publish name gets a conflict, and trains all the same, unserved.
    second = await create_iteration(kmock, "pets-2", "pets", publishName="pets-v1")
    second_job = await eventually(lambda: current(kmock, "job", f"pets-2-{second['metadata']['uid'][:8]}"),
                                  what="the second claimant's Job")
    await finish_job(kmock, platform, second_job, succeeded())
    trained = await eventually(phase(kmock, "iteration", "pets-2", "Trained"), what="the second claimant trained")
    assert condition(trained, "Trained")["status"] == "True"
    assert condition(trained, "Published")["reason"] == Reason.PUBLISH_NAME_CONFLICT
    assert '"pets-1"' in condition(trained, "Published")["message"]

    # A second published Iteration joins the same Triton.
    third = await create_iteration(kmock, "pets-3", "pets", publishName="pets-v3")
    await finish_job(kmock, platform, await eventually(
        lambda: current(kmock, "job", f"pets-3-{third['metadata']['uid'][:8]}")), succeeded())
    models = {name: model_name(body["metadata"]["uid"]) for name, body in (("pets-2", second), ("pets-3", third))}
    await eventually(lambda: loaded(kmock) == sorted([first, models["pets-3"]]), what="two models")

    # Delete with finalizer: the object goes, Triton stops serving it, its model leaves S3.
    assert model_keys(platform, first) == sorted(model_files)
    await kmock.delete(f"{ITERATIONS}/pets-1")
    await eventually(lambda: current(kmock, "iteration", "pets-1") is None, what="pets-1 deleted")
    assert model_keys(platform, first) == []
    # The publish name passes to the oldest remaining claimant, which is trained: Triton serves it instead.
    await eventually(lambda: loaded(kmock) == sorted(models.values()), what="pets-1 unloaded, pets-2 loaded")
    await kmock.delete(f"{ITERATIONS}/pets-2")
    await kmock.delete(f"{ITERATIONS}/pets-3")
    await eventually(lambda: current(kmock, "deployment", "kv-triton-pets") is None, what="Deployment removed")
    assert creates(kmock, "deployments") == 1 and project["metadata"]["uid"]


async def test_drift_is_repaired_and_a_deleted_project_leaves_no_stale_ready(kmock, platform, operator):
    settings = OperatorSettings()
    await create_project(kmock, platform, "pets")
    await eventually(phase(kmock, "project", "pets", "Ready"), what="project Ready")
    iteration = await create_iteration(kmock, "pets-1", "pets", publishName="pets-v1")
    await finish_job(kmock, platform, await eventually(
        lambda: current(kmock, "job", f"pets-1-{iteration['metadata']['uid'][:8]}")), succeeded())
    await make_ready(kmock, await eventually(lambda: current(kmock, "deployment", "kv-triton-pets")))
    await eventually(phase(kmock, "iteration", "pets-1", "Published"), what="Published")

    # Deleted: the Deployment and the Service come back.
    await kmock.delete(f"{DEPLOYMENTS}/kv-triton-pets")
    await eventually(lambda: current(kmock, "deployment", "kv-triton-pets"), what="the Deployment back")
    await kmock.delete(f"{SERVICES}/kv-triton-pets")
    await eventually(lambda: current(kmock, "service", "kv-triton-pets"), what="the Service back")
    # Edited: scaled to 0 and given another image, the Deployment is set back, its models kept.
    await kmock.patch(f"{DEPLOYMENTS}/kv-triton-pets", headers=MERGE, json={"spec": {
        "replicas": 0, "template": {"spec": {"containers": [{"name": "triton", "image": "someone/else:1"}]}}}})
    restored = await eventually(lambda: (d := current(kmock, "deployment", "kv-triton-pets"))
                                and d["spec"]["replicas"] == 1 and d, what="the Deployment set back")
    assert restored["spec"]["template"]["spec"]["containers"][0]["image"] == settings.triton_image
    assert loaded(kmock) == [model_name(iteration["metadata"]["uid"])]
    await kmock.patch(f"{SERVICES}/kv-triton-pets", headers=MERGE, json={"spec": {"ports": [
        {"name": "http", "port": 9999, "targetPort": "http"}]}})
    await eventually(lambda: [p["port"] for p in current(kmock, "service", "kv-triton-pets")["spec"]["ports"]] == [
        8000, 8001, 8002], what="the Service set back")

    # Its project deleted, the Iteration is no longer Ready, nor Published.
    await kmock.delete(f"{PROJECTS}/pets")
    orphan = await eventually(lambda: (o := current(kmock, "iteration", "pets-1")) and condition(
        o, "Ready")["reason"] == Reason.PROJECT_NOT_FOUND and o, what="not Ready without its project")
    assert condition(orphan, "Ready")["status"] == "False"
    assert condition(orphan, "Published")["status"] == "False" and "endpoint" not in orphan["status"]


async def test_a_finishing_job_is_seen_through_its_watch_not_read(kmock, platform, operator):
    await create_project(kmock, platform, "cats")
    await eventually(phase(kmock, "project", "cats", "Ready"))
    iteration = await create_iteration(kmock, "cats-1", "cats")
    job = await eventually(lambda: current(kmock, "job", f"cats-1-{iteration['metadata']['uid'][:8]}"))
    await eventually(phase(kmock, "iteration", "cats-1", "Training"))
    await finish_job(kmock, platform, job, succeeded())
    trained = await eventually(phase(kmock, "iteration", "cats-1", "Trained"), what="Trained, from the Job's watch")
    assert trained["status"]["metrics"]["averagePrecision"] == 0.95
    reads = {key for key in kmock.request_counts if key[0] == "get" and key[1:] in {("batch", "jobs"), ("", "pods")}}
    # One list at the operator's start, one for the watch: no other read.
    assert reads == set() and kmock.request_counts[("list", "", "pods")] == 2
    await eventually(lambda: any(
        o.raw.get("reason") == Reason.TRAINING_SUCCEEDED and o.raw["involvedObject"]["name"] == "cats-1"
        for key, o in kmock.objects.items() if key[0] == kmock.resource("v1", "events")), what="the Event")
    assert kmock.create_requests["jobs"] == 1  # a pass before the new Job's watch event does not ask again


def reconciles(kind: str) -> float:
    return REGISTRY.get_sample_value("kubevision_reconciles_total", {"kind": kind}) or 0


async def settled_counts(emulator: KubeEmulator, still: float) -> dict:
    """The operator's request counts once they have not moved for `still` seconds (an operator that keeps writing
    never gets there, and the wait fails)."""
    async def settle() -> dict:
        counts = dict(emulator.request_counts)
        while True:
            await asyncio.sleep(still)
            if (latest := dict(emulator.request_counts)) == counts:
                return counts
            counts = latest

    return await asyncio.wait_for(settle(), timeout=30)


async def test_a_settled_operator_resyncs_without_a_single_request(kmock, platform):
    """Resyncs of a finished Iteration and of its project reconcile again, find nothing changed, and neither read
    the cluster (the watches keep what they need) nor patch a status that would not change."""
    s3, tracking = platform.s3_settings(), platform.mlflow_settings().tracking_uri
    async with running_operator(str(kmock.url), NS, s3, tracking, OperatorSettings(resync_seconds=QUICK_RESYNC)):
        await create_project(kmock, platform, "moths")
        await eventually(phase(kmock, "project", "moths", "Ready"))
        iteration = await create_iteration(kmock, "moths-1", "moths")
        await finish_job(kmock, platform, await eventually(
            lambda: current(kmock, "job", f"moths-1-{iteration['metadata']['uid'][:8]}")), succeeded())
        await eventually(phase(kmock, "iteration", "moths-1", "Trained"))
        before = await settled_counts(kmock, 5 * QUICK_RESYNC)  # the last writes' own watch events come back
        iterations, projects = reconciles("Iteration"), reconciles("CustomVisionProject")
        await asyncio.sleep(10 * QUICK_RESYNC)
        assert reconciles("Iteration") >= iterations + 3, "the Iteration was not resynced"
        assert reconciles("CustomVisionProject") >= projects + 3, "the project was not resynced"
        assert dict(kmock.request_counts) == before
    OBSERVED_PERMISSIONS.update(kmock.permissions)


async def test_a_restarted_operator_reads_settled_resources_and_writes_nothing(kmock, platform):
    """At start the operator lists and watches, and reconciles everything once from what the watches bring: a
    project and a finished Iteration (which have their finalizers already) cost no write,
    and kopf's last-handled state is kept nowhere."""
    s3, tracking = platform.s3_settings(), platform.mlflow_settings().tracking_uri
    async with running_operator(str(kmock.url), NS, s3, tracking, WATCHES_ONLY):
        await create_project(kmock, platform, "wasps")
        await eventually(phase(kmock, "project", "wasps", "Ready"))
        iteration = await create_iteration(kmock, "wasps-1", "wasps")
        await finish_job(kmock, platform, await eventually(
            lambda: current(kmock, "job", f"wasps-1-{iteration['metadata']['uid'][:8]}")), succeeded())
        await eventually(phase(kmock, "iteration", "wasps-1", "Trained"))
        await settled_counts(kmock, 1.0)
    assert current(kmock, "project", "wasps")["metadata"]["finalizers"] == ["kubevision.io/finalizer"]  # its dataset
    trained = current(kmock, "iteration", "wasps-1")["metadata"]
    assert trained["finalizers"] == ["kubevision.io/finalizer"]  # its model leaves S3 when it goes
    assert not any("last-handled" in key for key in trained.get("annotations") or {})

    before = collections.Counter(kmock.request_counts)
    iterations, projects = reconciles("Iteration"), reconciles("CustomVisionProject")
    async with running_operator(str(kmock.url), NS, s3, tracking, WATCHES_ONLY):
        await eventually(lambda: reconciles("Iteration") > iterations and reconciles("CustomVisionProject") > projects,
                         what="both reconciled after the restart")
        await settled_counts(kmock, 1.0)
    OBSERVED_PERMISSIONS.update(kmock.permissions)
    sent = collections.Counter(kmock.request_counts) - before
    assert sent and {verb for verb, _, _ in sent} == {"list", "watch"}, sent


async def test_a_deleted_project_takes_its_dataset_with_it(kmock, platform, operator):
    """Deleted is deleted: its images, manifest and snapshots go before the project does (its finalizer), so a
    project made again under its name finds nothing; a neighbour's dataset stays."""
    store = ObjectStore(platform.s3_settings())
    upload_dataset(platform, f"{NS}/ants-2/", {"red": 5, "black": 5})
    await create_project(kmock, platform, "ants", {"red": 5, "black": 5})
    ready = await eventually(phase(kmock, "project", "ants", "Ready"), what="project Ready")
    assert ready["metadata"]["finalizers"] == ["kubevision.io/finalizer"]
    iteration = await create_iteration(kmock, "ants-1", "ants")
    job_name = f"ants-1-{iteration['metadata']['uid'][:8]}"
    await eventually(lambda: store.exists(BUCKET, f"{NS}/ants/snapshots/{job_name}.jsonl"), what="the snapshot")
    assert len(store.keys(BUCKET, f"{NS}/ants/")) == 12  # 10 images, the manifest, the snapshot

    await kmock.delete(f"{ITERATIONS}/ants-1")
    await kmock.delete(f"{PROJECTS}/ants")
    await eventually(lambda: current(kmock, "project", "ants") is None, what="the project deleted")
    assert store.keys(BUCKET, f"{NS}/ants/") == []
    assert len(store.keys(BUCKET, f"{NS}/ants-2/")) == 11

    await create(kmock, PROJECTS, {  # the same name again: nothing of the deleted one comes back
        "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "ants"},
        "spec": {"displayName": "ants", "dataset": {"bucket": BUCKET, "prefix": f"{NS}/ants/"}}})
    empty = await eventually(lambda: (o := current(kmock, "project", "ants")) and (o.get("status") or {}).get(
        "conditions") and o, what="the new project reconciled")
    assert condition(empty, "DatasetReady")["reason"] == Reason.DATASET_NOT_FOUND


async def test_a_project_naming_another_namespaces_dataset_is_refused_and_reads_nothing(kmock, platform, operator):
    """Namespace ml's project pointing at team-a's dataset: a condition says why; nothing of team-a's is counted,
    snapshotted, trained or deleted, and no MLflow experiment is made for it."""
    store = ObjectStore(platform.s3_settings())
    upload_dataset(platform, "team-a/pets/", {"cat": 5, "dog": 5})
    before = sorted(store.keys(BUCKET, "team-a/pets/"))
    await create(kmock, PROJECTS, {
        "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "copy"},
        "spec": {"displayName": "copy", "dataset": {"bucket": BUCKET, "prefix": "team-a/pets/"}}})
    refused = await eventually(phase(kmock, "project", "copy", "NotReady"), what="refused")
    assert condition(refused, "DatasetReady")["reason"] == Reason.DATASET_OUTSIDE_NAMESPACE
    assert "must begin with 'ml/'" in condition(refused, "DatasetReady")["message"]
    assert "imageCount" not in refused["status"] and "experimentId" not in refused["status"]
    await create_iteration(kmock, "copy-1", "copy")
    pending = await eventually(lambda: (o := current(kmock, "iteration", "copy-1")) and (o.get("status") or {}).get(
        "conditions") and o, what="the Iteration reconciled")
    assert condition(pending, "Trained")["reason"] == Reason.PROJECT_NOT_READY
    assert pending["status"]["phase"] == "Pending"
    assert creates(kmock, "jobs") == 0

    await kmock.delete(f"{ITERATIONS}/copy-1")
    await kmock.delete(f"{PROJECTS}/copy")
    await eventually(lambda: current(kmock, "project", "copy") is None, what="the project deleted")
    assert sorted(store.keys(BUCKET, "team-a/pets/")) == before  # team-a's dataset, untouched


@pytest.mark.parametrize(
    ("result", "failure", "reason"),
    [
        (None, "DeadlineExceeded", Reason.BUDGET_EXCEEDED),
        (None, "BackoffLimitExceeded", Reason.TRAINING_FAILED),
        (TrainingResult(outcome="InvalidDataset", reason=Reason.TOO_FEW_IMAGES,
                        message='tag "cat" has 4 usable images; 5 needed'), "PodFailurePolicy", Reason.TOO_FEW_IMAGES),
    ],
)
async def test_a_failed_job_says_why(kmock, platform, operator, result, failure, reason):
    await create_project(kmock, platform, "birds")
    await eventually(phase(kmock, "project", "birds", "Ready"))
    iteration = await create_iteration(kmock, "birds-1", "birds")
    job = await eventually(lambda: current(kmock, "job", f"birds-1-{iteration['metadata']['uid'][:8]}"))
    await finish_job(kmock, platform, job, result, failure=failure)
    failed = await eventually(phase(kmock, "iteration", "birds-1", "Failed"), what="Failed")
    assert condition(failed, "Trained")["reason"] == reason and condition(failed, "Ready")["reason"] == reason


async def test_a_killed_trainer_says_how_its_container_ended(kmock, platform, operator):
    await create_project(kmock, platform, "owls")
    await eventually(phase(kmock, "project", "owls", "Ready"))
    iteration = await create_iteration(kmock, "owls-1", "owls")
    job = await eventually(lambda: current(kmock, "job", f"owls-1-{iteration['metadata']['uid'][:8]}"))
    await finish_job(kmock, platform, job, None, failure="BackoffLimitExceeded",
                     ended={"exitCode": 137, "reason": "OOMKilled"})
    failed = await eventually(phase(kmock, "iteration", "owls-1", "Failed"), what="Failed")
    assert "the trainer's container exited with code 137 (OOMKilled)" in condition(failed, "Trained")["message"]


async def test_an_object_detection_project_trains_and_is_served_like_a_classifier(kmock, platform, operator):
    """Its tags count images by their regions (15 a tag); the Job's request names the project's type; the trained
    detector joins the project's Triton as a classifier does."""
    tools = []
    for i in range(16):
        regions = [Region(tag="fork", left=0.1, top=0.1, width=0.3, height=0.3)] * (2 if i < 15 else 0)
        regions += [Region(tag="scissors", left=0.5, top=0.5, width=0.5, height=0.5)]
        tools.append(Seed(photo(f"tools-{i}"), regions=regions))
    seed(ObjectStore(platform.s3_settings()), DatasetLayout(BUCKET, f"{NS}/tools/"), tools)
    await create(kmock, PROJECTS, {
        "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "tools"},
        "spec": {"displayName": "tools", "type": "ObjectDetection", "domain": "GeneralCompact",
                 "dataset": {"bucket": BUCKET, "prefix": f"{NS}/tools/"}}})
    ready = await eventually(phase(kmock, "project", "tools", "Ready"), what="project Ready")
    assert ready["status"]["tags"] == [{"tag": "fork", "images": 15}, {"tag": "scissors", "images": 16}]

    iteration = await create_iteration(kmock, "tools-1", "tools", publishName="tools")
    job = await eventually(lambda: current(kmock, "job", f"tools-1-{iteration['metadata']['uid'][:8]}"),
                           what="the training Job")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["KUBEVISION_TRAINING_REQUEST"]["value"])["project"]["spec"]["type"] == "ObjectDetection"
    model = model_name(iteration["metadata"]["uid"])
    model_uri = f"s3://kubevision-models/triton/ml/tools/{model}/"
    await finish_job(kmock, platform, job, succeeded().model_copy(update={"model_uri": model_uri}))
    deployment = await eventually(lambda: current(kmock, "deployment", "kv-triton-tools"), what="Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--load-model={model}" in args
    await make_ready(kmock, deployment)
    published = await eventually(phase(kmock, "iteration", "tools-1", "Published"), what="Published")
    assert published["status"]["modelUri"] == model_uri and published["status"]["publishedName"] == "tools"


async def test_a_dataset_that_cannot_train_is_reported_on_the_project(kmock, platform, operator):
    await create_project(kmock, platform, "fish", {"cod": 5, "eel": 3})
    not_ready = await eventually(phase(kmock, "project", "fish", "NotReady"))
    assert condition(not_ready, "DatasetReady")["reason"] == Reason.TOO_FEW_IMAGES
    assert condition(not_ready, "DatasetReady")["message"] == 'tag "eel" has 3 images, 5 needed'
    await create_iteration(kmock, "fish-1", "fish")
    pending = await eventually(phase(kmock, "iteration", "fish-1", "Pending"))
    assert condition(pending, "Trained")["reason"] == Reason.PROJECT_NOT_READY
    assert creates(kmock, "jobs") == 0


async def test_an_operator_restart_mid_training_adopts_the_running_job(kmock, platform):
    s3, tracking = platform.s3_settings(), platform.mlflow_settings().tracking_uri
    async with running_operator(str(kmock.url), NS, s3, tracking):
        await create_project(kmock, platform, "trees")
        await eventually(phase(kmock, "project", "trees", "Ready"))
        iteration = await create_iteration(kmock, "trees-1", "trees")
        job_name = f"trees-1-{iteration['metadata']['uid'][:8]}"
        job = await eventually(lambda: current(kmock, "job", job_name))
        await eventually(phase(kmock, "iteration", "trees-1", "Training"))
    asked_to_create = kmock.create_requests["jobs"]
    async with running_operator(str(kmock.url), NS, s3, tracking):  # the Job still runs
        await asyncio.sleep(1)  # the resumed handlers and a few timer passes see the running Job
        await finish_job(kmock, platform, job, succeeded())
        trained = await eventually(phase(kmock, "iteration", "trees-1", "Trained"), what="Trained after restart")
    OBSERVED_PERMISSIONS.update(kmock.permissions)
    assert kmock.create_requests["jobs"] == asked_to_create, "the restarted operator tried to create a Job"
    jobs = [key for key, o in kmock.objects.items() if key[0] == RESOURCES["job"] and not o.deleted]
    assert jobs == [(RESOURCES["job"], NS, job_name)]
    assert trained["status"]["trainingJob"] == job_name and trained["status"]["mlflowRunId"] == "run-1"
    assert trained["status"]["metrics"]["averagePrecision"] == 0.95


async def test_s3_and_mlflow_that_hang_are_reported_and_recovered_from_in_the_same_process(kmock, platform,
                                                                                          monkeypatch):
    """Servers that accept and never answer, the hardest fault: each request times out, the condition says so,
    deletion goes on, and once the server answers again the running operator recovers by itself."""
    # No watch tells of MLflow hanging once the project is Ready: the resync (short here) is what looks again.
    quick = OperatorSettings(mlflow_timeout_seconds=1, resync_seconds=3)
    for name, value in mlflow_request_limits(quick).items():
        monkeypatch.setenv(name, value)
    upload_dataset(platform, f"{NS}/owls/", {"barn": 5, "snowy": 5})
    with FaultProxy(platform.s3_settings().endpoint) as s3_proxy, \
            FaultProxy(platform.mlflow_settings().tracking_uri.removeprefix("http://")) as mlflow_proxy:
        s3 = platform.s3_settings().model_copy(update={"endpoint": s3_proxy.address, "timeout_seconds": 1})
        s3_proxy.hang = True
        async with running_operator(str(kmock.url), NS, s3, f"http://{mlflow_proxy.address}", quick):
            await create(kmock, PROJECTS, {
                "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "owls"},
                "spec": {"displayName": "owls", "dataset": {"bucket": BUCKET, "prefix": f"{NS}/owls/"}}})
            waiting = await eventually(phase(kmock, "project", "owls", "NotReady"), what="NotReady", timeout=60)
            assert condition(waiting, "DatasetReady")["status"] == "Unknown"
            assert condition(waiting, "DatasetReady")["reason"] == Reason.STORAGE_UNAVAILABLE
            assert "timed out" in condition(waiting, "DatasetReady")["message"].lower()
            await create_iteration(kmock, "owls-1", "owls")
            await eventually(phase(kmock, "iteration", "owls-1", "Pending"), what="Pending")
            await kmock.delete(f"{ITERATIONS}/owls-1")  # its model cannot be removed from S3: a few tries, then go
            await eventually(lambda: current(kmock, "iteration", "owls-1") is None, what="deleted anyway", timeout=90)
            await eventually(lambda: any(  # kopf posts Events from its own queue, after the handler returned
                o.raw.get("reason") == "ModelNotRemoved" and o.raw.get("type") == "Warning"
                for key, o in list(kmock.objects.items()) if key[0] == kmock.resource("v1", "events")),
                what="the ModelNotRemoved Warning", timeout=30)

            s3_proxy.hang = False  # S3 is back
            await eventually(phase(kmock, "project", "owls", "Ready"), what="Ready once S3 is back", timeout=60)

            mlflow_proxy.hang = True
            away = await eventually(lambda: (o := current(kmock, "project", "owls")) and condition(
                o, "Ready")["reason"] == Reason.TRACKING_UNAVAILABLE and o, what="MLflow reported", timeout=60)
            assert condition(away, "Ready")["status"] == "False" and mlflow_proxy.address in condition(
                away, "Ready")["message"]
            mlflow_proxy.hang = False  # MLflow is back
            await eventually(phase(kmock, "project", "owls", "Ready"), what="Ready once MLflow is back", timeout=60)
    OBSERVED_PERMISSIONS.update(kmock.permissions)


async def test_past_the_namespace_limit_iterations_are_queued_until_a_training_ends(kmock, platform, tmp_path,
                                                                                   monkeypatch):
    """concurrent_trainings from the platform team's limits file, 1 here: of three Iterations made at once, one gets
    a Job (those deciding together never both take the last slot), the others none, and say why. Its Job's end
    wakes them (no resync in this test), and the older of the two trains."""
    limits = tmp_path / "limits.yaml"
    limits.write_text(f"namespaces:\n  {NS}:\n    concurrent_trainings: 1\n")
    monkeypatch.setenv("KUBEVISION_LIMITS_FILE", str(limits))
    async with running_operator(str(kmock.url), NS, platform.s3_settings(), platform.mlflow_settings().tracking_uri,
                                WATCHES_ONLY):
        await create_project(kmock, platform, "pets")
        await eventually(phase(kmock, "project", "pets", "Ready"), what="project Ready")
        made = await asyncio.gather(*(create_iteration(kmock, f"pets-{i}", "pets") for i in (1, 2, 3)))
        jobs = {f"{it['metadata']['name']}-{it['metadata']['uid'][:8]}": it for it in made}

        def settled():
            found = {it["metadata"]["name"]: (current(kmock, "iteration", it["metadata"]["name"]).get("status") or {})
                     .get("phase") for it in made}
            return sorted(map(str, found.values())) == ["Queued", "Queued", "Training"] and found

        phases = await eventually(settled, what="one Training, two Queued")
        (running,) = [name for name, job_phase in phases.items() if job_phase == "Training"]
        waiting = sorted(name for name, job_phase in phases.items() if job_phase == "Queued")
        assert creates(kmock, "jobs") == 1
        for name in waiting:
            queued = current(kmock, "iteration", name)
            assert condition(queued, "Trained")["reason"] == condition(queued, "Ready")["reason"] == (
                Reason.CONCURRENT_TRAINING_LIMIT)
            assert "limit concurrent_trainings is 1" in condition(queued, "Trained")["message"]

        (job,) = [current(kmock, "job", name) for name in jobs if current(kmock, "job", name)]
        await finish_job(kmock, platform, job, succeeded())
        oldest = min(waiting, key=lambda name: (current(kmock, "iteration", name)["metadata"]["creationTimestamp"],
                                                name))
        training = await eventually(phase(kmock, "iteration", oldest, "Training"), what="the oldest waiting trains")
        assert condition(training, "Trained")["reason"] == Reason.TRAINING
        await eventually(lambda: creates(kmock, "jobs") == 2, what="its Job")
        (youngest,) = set(waiting) - {oldest}
        assert current(kmock, "iteration", youngest)["status"]["phase"] == "Queued"
        assert current(kmock, "iteration", running)["status"]["phase"] == "Trained"
    OBSERVED_PERMISSIONS.update(kmock.permissions)


async def test_a_project_past_the_namespaces_project_limit_is_not_ready_until_an_older_one_goes(kmock, platform,
                                                                                               tmp_path, monkeypatch):
    """projects from the platform team's limits file, 2 here: a third project applied (kubectl, Argo CD; the API
    refuses it) is not Ready, gets no MLflow experiment, and its Iteration no Job. An older project deleted (no
    event reaches the held one: it looks again on its own), it becomes Ready and its Iteration trains."""
    limits = tmp_path / "limits.yaml"
    limits.write_text(f"namespaces:\n  {NS}:\n    projects: 2\n")
    monkeypatch.setenv("KUBEVISION_LIMITS_FILE", str(limits))
    tracking_uri = platform.mlflow_settings().tracking_uri
    experiment = tracking.experiment_name(NS, "swans")
    async with running_operator(str(kmock.url), NS, platform.s3_settings(), tracking_uri, WATCHES_ONLY):
        for name in ("ducks", "geese"):
            await create_project(kmock, platform, name)
            await eventually(phase(kmock, "project", name, "Ready"), what=f"{name} Ready")
        await create_project(kmock, platform, "swans")
        held = await eventually(phase(kmock, "project", "swans", "NotReady"), what="past the limit")
        assert condition(held, "Ready")["reason"] == Reason.PROJECT_LIMIT
        assert condition(held, "Ready")["message"] == (
            f"namespace {NS} holds 2 older projects and its limit projects is 2; this project is made Ready once "
            "older ones are deleted")
        assert "imageCount" not in held["status"] and "experimentId" not in held["status"]
        assert MlflowClient(tracking_uri).get_experiment_by_name(experiment) is None
        await create_iteration(kmock, "swans-1", "swans")
        pending = await eventually(lambda: (o := current(kmock, "iteration", "swans-1")) and (
            o.get("status") or {}).get("conditions") and o, what="the Iteration reconciled")
        assert pending["status"]["phase"] == "Pending"
        assert condition(pending, "Trained")["reason"] == Reason.PROJECT_NOT_READY
        assert "its limit projects is 2" in condition(pending, "Trained")["message"]
        assert creates(kmock, "jobs") == 0

        await kmock.delete(f"{PROJECTS}/ducks")
        ready = await eventually(phase(kmock, "project", "swans", "Ready"), what="Ready once an older one goes")
        assert ready["status"]["experimentId"] == MlflowClient(tracking_uri).get_experiment_by_name(
            experiment).experiment_id
        await eventually(phase(kmock, "iteration", "swans-1", "Training"), what="its Iteration trains")
        assert creates(kmock, "jobs") == 1
        assert current(kmock, "project", "geese")["status"]["phase"] == "Ready"
    OBSERVED_PERMISSIONS.update(kmock.permissions)


async def test_with_kueue_the_iteration_is_queued_with_kueues_reason_until_kueue_admits_its_job(kmock, platform):
    """The test plays Kueue: it makes the Workload of the operator's suspended, labelled Job, with its quota not
    reserved; the Iteration is Queued with Kueue's reason and message; Kueue admits (the Workload's quota reserved,
    the Job unsuspended) and the Iteration trains. The namespace's own limit does not apply: Kueue's quota does."""
    kmock.load_crds(KUEUE_CRD)
    settings = OperatorSettings(resync_seconds=3600, kueue_queue_name="training")
    async with running_operator(str(kmock.url), NS, platform.s3_settings(), platform.mlflow_settings().tracking_uri,
                                settings):
        await create_project(kmock, platform, "pets")
        await eventually(phase(kmock, "project", "pets", "Ready"), what="project Ready")
        iterations = [await create_iteration(kmock, f"pets-{i}", "pets") for i in (1, 2, 3)]  # past S0's limit of 2
        names = [f"{it['metadata']['name']}-{it['metadata']['uid'][:8]}" for it in iterations]
        jobs = [await eventually(lambda name=name: current(kmock, "job", name), what=name) for name in names]
        assert all(j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "training" for j in jobs)
        assert all(j["spec"]["suspend"] is True for j in jobs)
        queued = await eventually(phase(kmock, "iteration", "pets-1", "Queued"), what="Queued")
        assert condition(queued, "Trained")["reason"] == Reason.QUEUED

        job = jobs[0]
        workload = await create(kmock, WORKLOADS, {
            "apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "Workload",
            "metadata": {"name": f"job-{job['metadata']['name']}-5c2d1",
                         "labels": {"kueue.x-k8s.io/job-uid": job["metadata"]["uid"]},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
                                              "uid": job["metadata"]["uid"], "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": {"queueName": "training", "podSets": [{"name": "main", "count": 1,
                                                           "template": job["spec"]["template"]}]}})
        no_quota = ("couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor "
                    "default-flavor, 1 more needed")
        await kueue_says(kmock, workload, ("QuotaReserved", "False", "Pending", no_quota))
        waiting = await eventually(lambda: (o := current(kmock, "iteration", "pets-1")) and condition(
            o, "Trained")["message"] == f"Kueue: Pending: {no_quota}" and o, what="Kueue's reason")
        assert waiting["status"]["phase"] == "Queued" and condition(waiting, "Ready")["reason"] == Reason.QUEUED

        await kueue_says(kmock, workload, ("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue"),
                         ("Admitted", "True", "Admitted", "The workload is admitted"))
        await kmock.patch(f"{JOBS}/{job['metadata']['name']}", headers=MERGE, json={"spec": {"suspend": False}})
        await kmock.patch(f"{JOBS}/{job['metadata']['name']}/status", headers=MERGE, json={"status": {
            "active": 1, "startTime": "2026-11-25T12:00:00Z"}})
        training = await eventually(phase(kmock, "iteration", "pets-1", "Training"), what="Training once admitted")
        assert condition(training, "Trained")["reason"] == Reason.TRAINING
        assert training["status"]["trainingStarted"] == "2026-11-25T12:00:00Z"
        assert current(kmock, "iteration", "pets-2")["status"]["phase"] == "Queued"
        assert creates(kmock, "jobs") == 3
    OBSERVED_PERMISSIONS.update(kmock.permissions)


async def test_kueue_named_on_a_cluster_without_kueue_stops_the_operator_at_start_saying_so(kmock, platform):
    """Else every training Job would wait, suspended, for an admission that never comes."""
    settings = OperatorSettings(kueue_queue_name="training")
    async with client.ApiClient(client.Configuration(host=str(kmock.url).rstrip("/"))) as api_client:
        cluster = Cluster(api_client, settings, platform.s3_settings(), platform.mlflow_settings().tracking_uri)
        with pytest.raises(RuntimeError, match="serves no kueue.x-k8s.io/v1beta1 Workloads: install Kueue"):
            async for _ in cluster.list_watched([NS]):
                pass
        kmock.load_crds(KUEUE_CRD)
        assert {kind async for kind, _ in cluster.list_watched([NS])} == set()  # nothing made yet, and no error


async def kueue_says(emulator, workload: dict, *conditions: tuple[str, str, str, str]) -> None:
    """Kueue's Workload's conditions: (type, status, reason, message) each."""
    written = [{"type": type_, "status": status, "reason": reason, "message": message,
                "lastTransitionTime": "2026-11-25T12:00:00Z"} for type_, status, reason, message in conditions]
    await emulator.patch(f"{WORKLOADS}/{workload['metadata']['name']}/status", headers=MERGE,
                         json={"status": {"conditions": written}})


def test_the_operator_role_grants_exactly_what_the_tests_needed():
    """RBAC from evidence: every request the operator made above is allowed by the chart's rendered ClusterRole, and
    the role grants nothing that no test needed."""
    granted = {(verb, group, resource) for rule in role_rules("operator") for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert OBSERVED_PERMISSIONS, "run with the operator tests above"
    assert OBSERVED_PERMISSIONS - granted == set(), "the role misses these"
    assert granted - OBSERVED_PERMISSIONS == set(), "the role grants these, which no test needed"
