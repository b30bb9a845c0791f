"""Usage per team: a known sequence of calls through a real gateway (on the Kubernetes emulator, predictions from the
real Triton) in two namespaces is counted in the Prometheus counters, the usage ledger, the usage route (each key
sees its own namespace only) and `kubevision usage`; a known training is counted once by the local controller's
counters, however many passes and restarts see it ended."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import tritonclient.http as triton_http
from detector_model import onnx_detector, upload
from gateway_harness import kubernetes_gateway
from kube_emulator import KubeEmulator
from prometheus_client import REGISTRY
from test_detection_api import photo
from test_gateway_kubernetes import create, publish, put_keys
from test_local_controller import BUCKET, a_finished_training, iteration, iteration_id_of, project

from kubevision.core.labels import model_name
from kubevision.core.settings import GatewaySettings
from kubevision.core.storage import ModelRepositoryLayout, ObjectStore
from kubevision.local.controller import LocalController
from kubevision.local.store import LocalStore

REPO = Path(__file__).resolve().parents[2]
TAGS = ["fork", "scissors"]
TRAINED_FOR = timedelta(seconds=754)


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def gateway_counters(namespace: str) -> dict[str, float]:
    labels = {"namespace": namespace, "project": "tools"}
    return {
        "stored": sample("kubevision_usage_predictions_total", {**labels, "stored": "true"}),
        "not_stored": sample("kubevision_usage_predictions_total", {**labels, "stored": "false"}),
        "images": sample("kubevision_usage_images_stored_total", labels),
        "bytes": sample("kubevision_usage_image_bytes_stored_total", labels),
        "exports": sample("kubevision_usage_exports_total", labels),
    }


async def served_tools(kmock, platform, namespace: str, model: bytes, gpus: int) -> tuple[str, str]:
    """A detection project `tools` in the namespace, and its Iteration, trained (for a known time) and published;
    returns the project's and the Iteration's uids."""
    s3 = platform.s3_settings()
    await put_keys(kmock, namespace, f"key-{namespace}")
    body = await create(kmock, namespace, "customvisionprojects", {
        "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "tools"},
        "spec": {"displayName": "Tools", "type": "ObjectDetection", "domain": "General",
                 "dataset": {"bucket": "kubevision-datasets", "prefix": f"{namespace}/tools/"}}})
    item = await create(kmock, namespace, "iterations", {
        "apiVersion": "kubevision.io/v1alpha1", "kind": "Iteration", "metadata": {"name": "tools-1"},
        "spec": {"projectRef": {"name": "tools"}, "resources": {"gpus": gpus}}})
    name = model_name(item["metadata"]["uid"])
    uri = upload(ObjectStore(s3), ModelRepositoryLayout(s3.models_bucket, namespace, "tools"), name, model, TAGS)
    finished = datetime.now(UTC) - timedelta(minutes=5)
    await publish(kmock, namespace, "tools-1", {
        "phase": "Published", "publishedName": "tools", "modelUri": uri,
        "endpoint": f"http://{platform.triton_settings().http_url}",
        "trainingStarted": (finished - TRAINED_FOR).isoformat(), "trainingFinished": finished.isoformat()})
    return body["metadata"]["uid"], item["metadata"]["uid"]


async def add_images(http: httpx.AsyncClient, project_id: str, namespace: str, images: list[bytes]) -> list[str]:
    """Uploads the images to the project with the namespace's Training-Key; returns each image's status."""
    files = [{"name": f"{n}.png", "contents": base64.b64encode(data).decode()} for n, data in enumerate(images)]
    summary = await http.post(f"/customvision/v3.3/training/projects/{project_id}/images/files",
                              json={"images": files}, headers={"Training-Key": f"t-key-{namespace}"})
    assert summary.status_code == 200, summary.text
    return [i["status"] for i in summary.json()["images"]]


async def export(http: httpx.AsyncClient, namespace: str, project_id: str, iteration_id: str) -> None:
    exported = await http.post(f"/customvision/v3.3/training/projects/{project_id}/iterations/{iteration_id}/export",
                               params={"platform": "ONNX"}, headers={"Training-Key": f"t-key-{namespace}"})
    assert exported.status_code == 200, exported.text


@pytest.mark.kmock(cls=KubeEmulator, crds=sorted(str(p) for p in (REPO / "crds").glob("*.yaml")), strict=True)
async def test_each_team_sees_what_it_used_and_nothing_of_another(kmock, platform, tmp_path, kubevision_cli):
    model = onnx_detector(len(TAGS))
    one, one_iteration = await served_tools(kmock, platform, "team-u1", model, gpus=2)
    two, two_iteration = await served_tools(kmock, platform, "team-u2", model, gpus=0)

    def serve() -> None:  # Triton's HTTP client stays in the thread that made it
        platform.restart_triton()  # a new project's repository is seen when Triton starts
        triton = triton_http.InferenceServerClient(platform.triton_settings().http_url)
        for uid in (one_iteration, two_iteration):
            triton.load_model(model_name(uid))

    await asyncio.to_thread(serve)
    before = {ns: gateway_counters(ns) for ns in ("team-u1", "team-u2")}
    pictures = [photo(n, size=(40 + n, 32)) for n in range(7)]  # distinct contents, known sizes

    settings = GatewaySettings(mode="kubernetes", data_dir=tmp_path, usage_write_seconds=3600)  # written when asked
    async with kubernetes_gateway(kmock, settings, platform.s3_settings()) as base, \
            httpx.AsyncClient(base_url=base, timeout=60) as http:

        async def predict(project_id: str, namespace: str, store: bool) -> None:
            route = f"/customvision/v3.0/Prediction/{project_id}/detect/iterations/tools/image"
            answer = await http.post(route if store else f"{route}/nostore", headers={
                "Prediction-Key": f"key-{namespace}"}, files={"imageData": ("p.png", pictures[0])})
            assert answer.status_code == 200, answer.text

        for store in (True, True, True, False, False):
            await predict(one, "team-u1", store)
        assert await add_images(http, one, "team-u1", pictures[:3]) == ["OK"] * 3
        assert await add_images(http, one, "team-u1", [pictures[2], *pictures[3:5]]) == ["OKDuplicate", "OK", "OK"]
        await export(http, "team-u1", one, one_iteration)
        await predict(two, "team-u2", True)
        assert await add_images(http, two, "team-u2", pictures[5:7]) == ["OK"] * 2

        one_bytes, two_bytes = sum(map(len, pictures[:5])), sum(map(len, pictures[5:7]))
        after = {ns: gateway_counters(ns) for ns in ("team-u1", "team-u2")}
        assert {k: after["team-u1"][k] - before["team-u1"][k] for k in after["team-u1"]} == {
            "stored": 3, "not_stored": 2, "images": 5, "bytes": one_bytes, "exports": 1}
        assert {k: after["team-u2"][k] - before["team-u2"][k] for k in after["team-u2"]} == {
            "stored": 1, "not_stored": 0, "images": 2, "bytes": two_bytes, "exports": 0}

        async def usage(key: str | None, since: str = "1h") -> httpx.Response:
            return await http.get("/kubevision/v1/usage", params={"since": since},
                                  headers={"Training-Key": key} if key else {})

        trained = TRAINED_FOR.total_seconds()
        mine = await usage("t-key-team-u1")
        assert mine.status_code == 200, mine.text
        assert mine.json()["namespace"] == "team-u1"
        assert mine.json()["projects"] == [{
            "project": "tools", "predictionsStored": 3, "predictionsNotStored": 2, "imagesStored": 5,
            "imageBytes": one_bytes, "exports": 1, "trainings": 1, "trainingSeconds": trained,
            "gpuSeconds": 2 * trained}]
        theirs = await usage("t-key-team-u2")
        assert (theirs.json()["namespace"], theirs.json()["projects"]) == ("team-u2", [{
            "project": "tools", "predictionsStored": 1, "predictionsNotStored": 0, "imagesStored": 2,
            "imageBytes": two_bytes, "exports": 0, "trainings": 1, "trainingSeconds": trained, "gpuSeconds": 0}])
        assert (await usage("t-key-team-u1", since="1m")).json()["projects"][0]["trainings"] == 0  # ended before
        assert (await usage(None)).status_code == 401
        assert (await usage("key-team-u1")).status_code == 401  # a Prediction-Key is no Training-Key
        refused = await usage("t-key-team-u1", since="forever")
        assert (refused.status_code, refused.json()["code"]) == (400, "BadRequest")

        await predict(one, "team-u1", False)  # counted in memory; written when the gateway stops

    table = kubevision_cli("usage", "--since", "1h", "--data-dir", str(tmp_path))
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines() == [
        "NAMESPACE   PREDICTIONS STORED   NOT STORED   IMAGES   IMAGE BYTES   EXPORTS   TRAININGS   "
        "TRAINING SECONDS   GPU SECONDS",
        f"team-u1     3                    3            5        {one_bytes:<11}   1         1           754"
        "                1508",
        f"team-u2     1                    0            2        {two_bytes:<11}   0         1           754"
        "                0",
    ]
    projects = kubevision_cli("usage", "-n", "team-u2", "--by-project", "--data-dir", str(tmp_path))
    assert projects.returncode == 0, projects.stderr
    assert [line.split()[:3] for line in projects.stdout.splitlines()[1:]] == [["team-u2", "tools", "1"]]


def test_a_training_is_counted_once_by_the_local_controller_through_passes_and_restarts(platform, tmp_path):
    store = LocalStore(tmp_path / "resources.db")
    ObjectStore(platform.s3_settings()).ensure_bucket(BUCKET)
    store.apply(project("timed"))
    body, _ = store.apply(iteration("timed-1", "timed", resources={"gpus": 3}))
    labels = {"namespace": "default", "project": "timed"}
    names = ("kubevision_usage_trainings_total", "kubevision_usage_training_seconds_total",
             "kubevision_usage_gpu_seconds_total")
    before = [sample(name, labels) for name in names]
    controller = LocalController(platform, store)
    a_finished_training(controller, body, {})  # a trainer that ended without a result: a failed training counts too
    folder = controller.trainings.folder / iteration_id_of(body)
    started = time.time() - 3600
    os.utime(folder / "pid", (started, started))
    os.utime(folder / "trainer.log", (started + 754, started + 754))

    for again in (controller, controller, LocalController(platform, store)):  # two passes, then a restart
        again.reconcile_all()
        assert store.get("Iteration", "default", "timed-1")["status"]["phase"] == "Failed"
        assert [sample(name, labels) - b for name, b in zip(names, before, strict=True)] == [1, 754, 3 * 754]
