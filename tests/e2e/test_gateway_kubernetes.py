"""The gateway on a cluster, against the Kubernetes emulator: it finds published iterations and keys from resource
status and Secrets through its watches, follows a republish, an unpublish and a key rotation without a restart, and
serves another namespace's key nothing. Predictions go to the real Triton serving the quickstart model."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
import pytest
import tritonclient.http as triton_http
import yaml
from chart import role_rules
from conftest import EXAMPLES
from gateway_harness import kubernetes_gateway
from kube_emulator import KubeEmulator
from seeding import photo

from kubevision.core.labels import model_name
from kubevision.core.settings import GatewaySettings
from kubevision.core.storage import ModelRepositoryLayout, ObjectStore
from kubevision.local.store import LocalStore

REPO = Path(__file__).resolve().parents[2]
TEST_IMAGE = (EXAMPLES / "samples" / "test" / "test_image.jpg").read_bytes()
MERGE = {"Content-Type": "application/merge-patch+json"}
OBSERVED_PERMISSIONS: set[tuple[str, str, str]] = set()

pytestmark = pytest.mark.kmock(cls=KubeEmulator, crds=sorted(str(p) for p in (REPO / "crds").glob("*.yaml")),
                               strict=True)


def objects(namespace: str, kind: str) -> str:
    if kind == "secrets":
        return f"/api/v1/namespaces/{namespace}/secrets"
    return f"/apis/kubevision.io/v1alpha1/namespaces/{namespace}/{kind}"


async def create(emulator, namespace: str, kind: str, body: dict) -> dict:
    response = await emulator.post(objects(namespace, kind), json=body)
    assert response.status in (200, 201), await response.text()
    return await response.json()


async def publish(emulator, namespace: str, iteration: str, status: dict) -> None:
    response = await emulator.patch(f"{objects(namespace, 'iterations')}/{iteration}/status", headers=MERGE,
                                    json={"status": status})
    assert response.status == 200, await response.text()


async def put_keys(emulator, namespace: str, prediction_key: str, create_it: bool = True) -> None:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kubevision-api-keys"},
            "data": {"predictionKey": base64.b64encode(prediction_key.encode()).decode(),
                     "trainingKey": base64.b64encode(b"t-" + prediction_key.encode()).decode()}}
    if create_it:
        await create(emulator, namespace, "secrets", body)
    else:
        response = await emulator.patch(f"{objects(namespace, 'secrets')}/kubevision-api-keys", headers=MERGE,
                                        json={"data": body["data"]})
        assert response.status == 200, await response.text()


def serve_quickstart_as(platform, iteration: dict) -> str:
    """The quickstart's model, trained in local mode, copied to the model name of the emulator's Iteration (as its
    trainer would have written it) and loaded into the real Triton; returns its model URI."""
    store = ObjectStore(platform.s3_settings())
    repository = ModelRepositoryLayout(platform.s3_settings().models_bucket, "default", "trees")
    trained = LocalStore(platform.data_dir / "resources.db").get("Iteration", "default", "trees-quickstart")
    source, name = model_name(trained["metadata"]["uid"]), model_name(iteration["metadata"]["uid"])
    for path in ("1/model.onnx", "labels.txt", "config.pbtxt"):  # config.pbtxt last, naming the model
        content = store.get(repository.bucket, repository.model_key(source, path))
        if path == "config.pbtxt":
            content = content.replace(f'name: "{source}"'.encode(), f'name: "{name}"'.encode())
        store.put(repository.bucket, repository.model_key(name, path), content)
    triton_http.InferenceServerClient(platform.triton_settings().http_url).load_model(name)
    return f"s3://{repository.bucket}/{repository.model_key(name, '')}"


async def test_the_gateway_serves_what_resource_status_publishes(kmock, quickstart, platform, tmp_path):
    project_manifest = yaml.safe_load((EXAMPLES / "project.yaml").read_text())
    project_manifest["spec"]["dataset"]["prefix"] = "team-a/trees/"  # each under its own namespace
    project = await create(kmock, "team-a", "customvisionprojects", project_manifest)
    project_manifest["spec"]["dataset"]["prefix"] = "team-b/trees/"
    await create(kmock, "team-b", "customvisionprojects", project_manifest)
    iteration = await create(kmock, "team-a", "iterations",
                             yaml.safe_load((EXAMPLES / "quickstart-iteration.yaml").read_text()))
    await put_keys(kmock, "team-a", "key-a")
    await put_keys(kmock, "team-b", "key-b")
    served = {"phase": "Published", "publishedName": "trees-k8s",
              "endpoint": f"http://{platform.triton_settings().http_url}",  # the operator writes a Service's URL
              "modelUri": await asyncio.to_thread(serve_quickstart_as, platform, iteration)}
    await publish(kmock, "team-a", "trees-quickstart", served)

    settings = GatewaySettings(mode="kubernetes", data_dir=tmp_path)  # its label store: SQLite in tmp_path
    async with kubernetes_gateway(kmock, settings, platform.s3_settings()) as base, \
            httpx.AsyncClient(base_url=base, timeout=60) as http:
        assert (await http.get("/readyz")).status_code == 200

        async def predict(name: str, key: str = "key-a") -> httpx.Response:
            return await http.post(
                f"/customvision/v3.1/Prediction/{project['metadata']['uid']}/classify/iterations/{name}/image",
                content=TEST_IMAGE, headers={"Prediction-Key": key, "Content-Type": "application/octet-stream"})

        answer = await predict("trees-k8s")
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0]["tagName"] == "Hemlock"
        assert answer.json()["iteration"] != "" and answer.json()["project"] == project["metadata"]["uid"]

        foreign = await predict("trees-k8s", key="key-b")  # team B's key, team A's project id
        assert (foreign.status_code, foreign.json()["code"]) == (404, "NotFoundProject")

        async def code_of(name: str, key: str = "key-a") -> int:
            return (await predict(name, key)).status_code

        await publish(kmock, "team-a", "trees-quickstart", {"publishedName": "trees-k8s-v2"})  # a republish
        await eventually_async(lambda: code_of("trees-k8s-v2"), 200)
        assert (await predict("trees-k8s")).json()["code"] == "NotFoundIteration"

        await publish(kmock, "team-a", "trees-quickstart", {"phase": "Trained", "publishedName": None,
                                                            "endpoint": None})  # an unpublish
        await eventually_async(lambda: code_of("trees-k8s-v2"), 404)

        await publish(kmock, "team-a", "trees-quickstart", served)
        await eventually_async(lambda: code_of("trees-k8s"), 200)
        await put_keys(kmock, "team-a", "key-a2", create_it=False)  # a key rotation
        await eventually_async(lambda: code_of("trees-k8s", "key-a2"), 200)
        assert await code_of("trees-k8s", "key-a") == 401
    # Every change above reached the gateway through its watches: each resource was listed once, at the start.
    assert {resource: kmock.request_counts[("list", group, resource)] for group, resource in (
        ("kubevision.io", "customvisionprojects"), ("kubevision.io", "iterations"), ("", "secrets"))} == {
        "customvisionprojects": 1, "iterations": 1, "secrets": 1}
    OBSERVED_PERMISSIONS.update(kmock.permissions)


async def eventually_async(call, wanted, timeout: float = 20.0) -> None:
    results = []

    async def check():
        results.append(await call())
        return results[-1] == wanted

    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"still {results[-1]}, not {wanted}"
        await asyncio.sleep(0.1)


async def test_the_training_api_creates_projects_and_iterations_in_the_keys_namespace(kmock, platform, tmp_path):
    await put_keys(kmock, "team-a", "key-a")  # its trainingKey is t-key-a
    await put_keys(kmock, "team-b", "key-b")
    photos = {tag: sorted((EXAMPLES / "samples" / tag).glob("*.jpg"))[:5] for tag in ("Hemlock", "Japanese_Cherry")}
    settings = GatewaySettings(mode="kubernetes", data_dir=tmp_path, publish_wait_seconds=0)
    async with kubernetes_gateway(kmock, settings, platform.s3_settings()) as base, \
            httpx.AsyncClient(base_url=f"{base}/customvision/v3.4-preview/training", timeout=60,
                              headers={"Training-Key": "t-key-a"}) as http:
        created = await http.post("/projects", params={"name": "Trees on Kubernetes"})
        assert created.status_code == 200, created.text
        project = created.json()
        path = f"{objects('team-a', 'customvisionprojects')}/trees-on-kubernetes"
        resource = await (await kmock.get(path)).json()
        assert resource["metadata"]["uid"] == project["id"]
        assert resource["spec"]["displayName"] == "Trees on Kubernetes"
        assert resource["spec"]["dataset"] == {"bucket": "kubevision-datasets",
                                               "prefix": "team-a/trees-on-kubernetes/"}
        foreign = await http.get(f"/projects/{project['id']}", headers={"Training-Key": "t-key-b"})
        assert (foreign.status_code, foreign.json()["code"]) == (404, "NotFoundProject")
        renamed = await http.patch(f"/projects/{project['id']}", json={"name": "Trees", "description": "K8s"})
        assert renamed.json()["name"] == "Trees" and renamed.json()["description"] == "K8s"
        assert (await (await kmock.get(path)).json())["spec"]["displayName"] == "Trees"

        for tag, paths in photos.items():
            tag_id = (await http.post(f"/projects/{project['id']}/tags", params={"name": tag})).json()["id"]
            files = {"images": [{"name": p.name, "contents": base64.b64encode(p.read_bytes()).decode(),
                                 "tagIds": [tag_id]} for p in paths]}
            assert (await http.post(f"/projects/{project['id']}/images/files", json=files)).json()[
                "isBatchSuccessful"]
        trained = await http.post(f"/projects/{project['id']}/train")
        assert trained.status_code == 200, trained.text
        iteration = trained.json()
        assert iteration["status"] == "Training" and iteration["name"] == "Iteration 1"
        body = await (await kmock.get(f"{objects('team-a', 'iterations')}/trees-on-kubernetes-1")).json()
        assert body["metadata"]["uid"] == iteration["id"]
        assert body["spec"] == {"projectRef": {"name": "trees-on-kubernetes"}, "trainingType": "Quick"}
        manifest = ObjectStore(platform.s3_settings()).get(
            "kubevision-datasets", "team-a/trees-on-kubernetes/manifest.jsonl")  # exported before the Iteration
        assert len(manifest.splitlines()) == 10

        await publish(kmock, "team-a", "trees-on-kubernetes-1", {  # as the operator reports a trained model
            "phase": "Trained", "metrics": {"probabilityThreshold": 0.5, "precision": 1, "recall": 1,
                                            "averagePrecision": 1, "perTag": []}})

        async def status_of() -> str:
            return (await http.get(f"/projects/{project['id']}/iterations/{iteration['id']}")).json()["status"]

        await eventually_async(status_of, "Completed")
        published = await http.post(f"/projects/{project['id']}/iterations/{iteration['id']}/publish",
                                     params={"publishName": "treesK8s", "predictionId": "unused"})
        assert published.json() is True
        body = await (await kmock.get(f"{objects('team-a', 'iterations')}/trees-on-kubernetes-1")).json()
        assert body["spec"]["publishName"] == "treesk8s"
        assert (await http.delete(f"/projects/{project['id']}/iterations/{iteration['id']}/publish")).status_code \
            == 204
        assert (await http.delete(f"/projects/{project['id']}/iterations/{iteration['id']}")).status_code == 204
        assert (await http.delete(f"/projects/{project['id']}")).status_code == 204
        assert (await kmock.get(path)).status == 404
    OBSERVED_PERMISSIONS.update(kmock.permissions)


async def test_one_namespace_can_do_nothing_to_another_that_it_could_notice(kmock, platform, tmp_path):
    """Team B cannot reach team A's dataset by naming its prefix, nor import A's export without A naming B; an import
    token expires; a deleted project leaves nothing, and a project made again under its name starts empty."""
    await put_keys(kmock, "team-a", "key-a")  # training keys t-key-a, t-key-b
    await put_keys(kmock, "team-b", "key-b")
    store = ObjectStore(platform.s3_settings())
    settings = GatewaySettings(mode="kubernetes", data_dir=tmp_path, import_token_seconds=4)
    async with kubernetes_gateway(kmock, settings, platform.s3_settings()) as base, \
            httpx.AsyncClient(base_url=f"{base}/customvision/v3.3/training", timeout=60,
                              headers={"Training-Key": "t-key-a"}) as http:
        b = {"Training-Key": "t-key-b"}

        async def make(name: str, images: int) -> str:
            project = (await http.post("/projects", params={"name": name})).json()
            tag = (await http.post(f"/projects/{project['id']}/tags", params={"name": "Hemlock"})).json()["id"]
            for n in range(images):
                added = await http.post(f"/projects/{project['id']}/images", params={"tagIds": tag},
                                        content=photo(f"{name}-{n}"),
                                        headers={"Content-Type": "application/octet-stream"})
                assert added.json()["isBatchSuccessful"], added.text
            return project["id"]

        async def count(project_id: str, headers=None) -> int:
            return (await http.get(f"/projects/{project_id}/images/tagged/count", headers=headers)).json()

        async def refusal(token: str) -> str:
            answer = await http.post("/projects/import", params={"token": token}, headers=b)
            assert (answer.status_code, answer.json()["code"]) == (400, "BadRequestInvalidImportToken")
            return answer.json()["message"]

        trees = await make("Trees", 3)
        own_token = (await http.get(f"/projects/{trees}/export")).json()["token"]  # as Azure's SDK asks
        manifest = store.get("kubevision-datasets", "team-a/trees/manifest.jsonl")

        # 1. B's project naming A's dataset is served by no route, and reads or writes nothing of A's.
        copy = await create(kmock, "team-b", "customvisionprojects", {
            "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "copy"},
            "spec": {"displayName": "Copy", "dataset": {"bucket": "kubevision-datasets",
                                                        "prefix": "team-a/trees/"}}})
        await asyncio.sleep(0.5)  # the watch has brought it
        assert (await http.get("/projects", headers=b)).json() == []
        for path in ("", "/tags", "/images/tagged"):
            answer = await http.get(f"/projects/{copy['metadata']['uid']}{path}", headers=b)
            assert (answer.status_code, answer.json()["code"]) == (404, "NotFoundProject")
        assert store.get("kubevision-datasets", "team-a/trees/manifest.jsonl") == manifest

        # 5. A token works in the namespace it names, until it expires.
        assert "may be used in namespace 'team-a' only" in await refusal(own_token)
        for_b = (await http.get(f"/projects/{trees}/export", params={"importNamespace": "team-b"})).json()
        imported = await http.post("/projects/import", params={"token": for_b["token"], "name": "Mine"},
                                   headers=b)
        assert imported.status_code == 200, imported.text
        assert await count(imported.json()["id"], b) == 3
        late = (await http.get(f"/projects/{trees}/export", params={"importNamespace": "team-b"})).json()
        await asyncio.sleep(settings.import_token_seconds + 1)
        assert "expired" in await refusal(late["token"])

        # 5. Deleted is deleted: the dataset goes, its tokens die, the name comes back empty.
        fresh = (await http.get(f"/projects/{trees}/export", params={"importNamespace": "team-b"})).json()
        assert (await http.delete(f"/projects/{trees}")).status_code == 204
        assert store.keys("kubevision-datasets", "team-a/trees/") == []
        assert "deleted" in await refusal(fresh["token"])
        again = await make("Trees", 0)
        assert again != trees and await count(again) == 0
        assert [t["name"] for t in (await http.get(f"/projects/{again}/tags")).json()] == ["Hemlock"]
        assert (await http.get(f"/projects/{again}/tags")).json()[0]["imageCount"] == 0
        assert await count(imported.json()["id"], b) == 3  # B's own copy is B's
    OBSERVED_PERMISSIONS.update(kmock.permissions)


def test_the_gateway_role_grants_exactly_what_the_test_needed():
    """RBAC from evidence, as the operator's: every request the gateway made above is allowed by the chart's
    rendered ClusterRole, and the role grants nothing that the test did not need."""
    granted = {(verb, group, resource) for rule in role_rules("gateway") for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert OBSERVED_PERMISSIONS, "run with the gateway test above"
    assert OBSERVED_PERMISSIONS - granted == set(), "the role misses these"
    assert granted - OBSERVED_PERMISSIONS == set(), "the role grants these, which no test needed"
