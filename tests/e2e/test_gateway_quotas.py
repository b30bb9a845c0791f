"""Each namespace's quotas through the gateway on a cluster (the Kubernetes emulator): the object past a limit is
refused at the boundary with Azure's error code and changes nothing, Azure's S0 tier is the default, one namespace's
override is its own, and a limits file changed while the gateway runs applies to the next request."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from gateway_harness import kubernetes_gateway
from image_server import serving
from kube_emulator import KubeEmulator
from limits_files import UNLIMITED_RATES, write_limits
from seeding import photo
from test_gateway_kubernetes import create, eventually_async, objects, publish, put_keys

from kubevision.core.labelstore.database import open_database
from kubevision.core.labelstore.store import LabelStore, NewImage, ProjectRef
from kubevision.core.labelstore.upload import local_database_url
from kubevision.core.settings import GatewaySettings
from kubevision.core.storage import ObjectStore

REPO = Path(__file__).resolve().parents[2]
TRAINING = "/customvision/v3.3/training"

pytestmark = pytest.mark.kmock(cls=KubeEmulator, crds=sorted(str(p) for p in (REPO / "crds").glob("*.yaml")),
                               strict=True)


def refusal(answer: httpx.Response) -> tuple[int, str]:
    body = answer.json()
    assert set(body) == {"code", "message"} and body["message"], body
    return answer.status_code, body["code"]


async def resources(emulator, namespace: str, kind: str) -> list[str]:
    listed = await (await emulator.get(objects(namespace, kind))).json()
    return sorted(item["metadata"]["name"] for item in listed["items"])


def limit(path: Path, defaults: dict | None = None, namespaces: dict | None = None) -> None:
    """The limits file, without the per-second limits: these tests call the API back to back."""
    write_limits(path, UNLIMITED_RATES | (defaults or {}), namespaces)


@pytest.fixture
def limits_file(tmp_path, monkeypatch) -> Path:
    """Where the gateway reads the limits, as the chart points it at its ConfigMap."""
    path = tmp_path / "limits" / "limits.yaml"
    path.parent.mkdir()
    monkeypatch.setenv("KUBEVISION_LIMITS_FILE", str(path))
    return path


async def test_the_101st_project_of_a_namespace_is_refused_by_default(kmock, platform, tmp_path, monkeypatch):
    """Azure S0's 100 projects, with no limits file at all; the namespace beside it is not affected."""
    monkeypatch.delenv("KUBEVISION_LIMITS_FILE", raising=False)
    await put_keys(kmock, "team-a", "key-a")
    await put_keys(kmock, "team-b", "key-b")
    await asyncio.gather(*(create(kmock, "team-a", "customvisionprojects", {
        "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": f"p-{n}"},
        "spec": {"displayName": f"P {n}", "dataset": {"bucket": "kubevision-datasets", "prefix": f"team-a/p-{n}/"}},
    }) for n in range(100)))
    settings = GatewaySettings(mode="kubernetes", data_dir=tmp_path)
    async with kubernetes_gateway(kmock, settings, platform.s3_settings()) as base, \
            httpx.AsyncClient(base_url=f"{base}{TRAINING}", timeout=60, headers={"Training-Key": "t-key-a"}) as http:
        assert len((await http.get("/projects")).json()) == 100
        refused = await http.post("/projects", params={"name": "One too many"})
        assert refusal(refused) == (400, "BadRequestExceedProjectLimit")
        assert len(await resources(kmock, "team-a", "customvisionprojects")) == 100
        assert len((await http.get("/projects")).json()) == 100
        other = await http.post("/projects", params={"name": "Team B's first"}, headers={"Training-Key": "t-key-b"})
        assert other.status_code == 200, other.text


async def test_projects_past_the_limit_are_refused_per_namespace_and_a_changed_file_applies_at_once(
        kmock, platform, tmp_path, limits_file):
    """team-b's override is team-b's alone, and holds for creations racing for its last slots; an import into a full
    namespace, or of more tags than a project of the namespace may have, makes no project; raising the limit in the
    file lets the next creation through."""
    limit(limits_file, {"projects": 2}, {"team-b": {"projects": 3}, "team-c": {"tags_per_project": 1}})
    for namespace in ("team-a", "team-b", "team-c"):
        await put_keys(kmock, namespace, f"key-{namespace[-1]}")
    keys = {namespace: {"Training-Key": f"t-key-{namespace[-1]}"} for namespace in ("team-a", "team-b", "team-c")}
    settings = GatewaySettings(mode="kubernetes", data_dir=tmp_path)
    async with kubernetes_gateway(kmock, settings, platform.s3_settings()) as base, \
            httpx.AsyncClient(base_url=f"{base}{TRAINING}", timeout=60) as http:

        async def make(namespace: str, name: str) -> httpx.Response:
            return await http.post("/projects", params={"name": name}, headers=keys[namespace])

        first = (await make("team-a", "First")).json()["id"]
        assert (await make("team-a", "Second")).status_code == 200
        assert refusal(await make("team-a", "Third")) == (400, "BadRequestExceedProjectLimit")
        assert await resources(kmock, "team-a", "customvisionprojects") == ["first", "second"]
        racing = await asyncio.gather(*(make("team-b", name) for name in ("One", "Two", "Three", "Four", "Five")))
        assert sorted(a.status_code for a in racing) == [200, 200, 200, 400, 400]  # the override: three
        assert {refusal(a) for a in racing if a.status_code != 200} == {(400, "BadRequestExceedProjectLimit")}
        assert len(await resources(kmock, "team-b", "customvisionprojects")) == 3

        for name in ("alder", "birch"):
            assert (await http.post(f"/projects/{first}/tags", params={"name": name},
                                    headers=keys["team-a"])).status_code == 200

        async def import_into(namespace: str) -> httpx.Response:
            token = (await http.get(f"/projects/{first}/export", params={"importNamespace": namespace},
                                    headers=keys["team-a"])).json()["token"]
            return await http.post("/projects/import", params={"token": token}, headers=keys[namespace])

        assert refusal(await import_into("team-a")) == (400, "BadRequestExceedProjectLimit")
        assert refusal(await import_into("team-c")) == (400, "BadRequestExceedTagPerProjectLimit")
        assert await resources(kmock, "team-a", "customvisionprojects") == ["first", "second"]
        assert await resources(kmock, "team-c", "customvisionprojects") == []

        limit(limits_file, {"projects": 3})  # as the kubelet swaps the mounted ConfigMap
        assert (await make("team-a", "Third")).status_code == 200
        assert refusal(await make("team-a", "Fourth")) == (400, "BadRequestExceedProjectLimit")
        assert (await import_into("team-c")).status_code == 200  # team-c's override is gone with the old file


async def test_tags_images_and_iterations_past_their_limits_are_refused_and_change_nothing(
        kmock, platform, tmp_path, limits_file):
    limit(limits_file, {"tags_per_project": 2, "images_per_project": 4, "iterations_per_project": 1})
    await put_keys(kmock, "team-a", "key-a")
    settings = GatewaySettings(mode="kubernetes", data_dir=tmp_path, allow_loopback_urls=True)
    async with kubernetes_gateway(kmock, settings, platform.s3_settings()) as base, \
            httpx.AsyncClient(base_url=f"{base}{TRAINING}", timeout=60, headers={"Training-Key": "t-key-a"}) as http:
        project = (await http.post("/projects", params={"name": "Trees"})).json()
        pid = project["id"]

        # Tags: the third of two.
        tags = [(await http.post(f"/projects/{pid}/tags", params={"name": n})).json()["id"] for n in ("a", "b")]
        assert refusal(await http.post(f"/projects/{pid}/tags", params={"name": "c"})) == (
            400, "BadRequestExceedTagPerProjectLimit")
        assert sorted(t["name"] for t in (await http.get(f"/projects/{pid}/tags")).json()) == ["a", "b"]

        # Images: three seeded through the label store, then every upload route past the fourth.
        resource = await (await kmock.get(f"{objects('team-a', 'customvisionprojects')}/trees")).json()
        dataset = resource["spec"]["dataset"]
        ref = ProjectRef(pid, "team-a", "trees", dataset["bucket"], dataset["prefix"])
        database = open_database(local_database_url(tmp_path))  # the gateway's own label store
        objects_store = ObjectStore(platform.s3_settings())
        seeded = LabelStore(database, objects_store).add_images(ref, [NewImage(photo(f"seed-{n}"), [tags[0]])
                                                                      for n in range(3)])
        assert [r.status for r in seeded] == ["OK"] * 3
        database.dispose()

        async def count() -> int:
            return (await http.get(f"/projects/{pid}/images/tagged/count")).json()

        by_data = (await http.post(f"/projects/{pid}/images", params={"tagIds": tags[1]}, files=[
            ("imageData", ("a.png", photo("new-1"))), ("imageData", ("b.png", photo("new-2")))])).json()
        assert not by_data["isBatchSuccessful"]
        assert [i["status"] for i in by_data["images"]] == ["OK", "ErrorLimitExceed"]
        assert "image" not in by_data["images"][1] and by_data["images"][0]["image"]["id"]
        assert await count() == 4
        by_files = (await http.post(f"/projects/{pid}/images/files", json={"images": [
            {"name": "seed.png", "contents": base64.b64encode(photo("seed-0")).decode(), "tagIds": [tags[0]]},
            {"name": "c.png", "contents": base64.b64encode(photo("new-3")).decode(), "tagIds": [tags[0]]}]})).json()
        assert [i["status"] for i in by_files["images"]] == ["OKDuplicate", "ErrorLimitExceed"]
        with serving({"d.png": photo("new-4")}) as server:
            by_url = (await http.post(f"/projects/{pid}/images/urls", json={
                "images": [{"url": f"{server}/d.png"}], "tagIds": [tags[1]]})).json()
        assert [i["status"] for i in by_url["images"]] == ["ErrorLimitExceed"] and not by_url["isBatchSuccessful"]
        assert await count() == 4
        assert len(objects_store.keys(dataset["bucket"], f"{dataset['prefix']}images/")) == 4  # no refused bytes

        # Iterations: the project keeps one already; training again waits for it to be deleted.
        iteration = await create(kmock, "team-a", "iterations", {
            "apiVersion": "kubevision.io/v1alpha1", "kind": "Iteration", "metadata": {"name": "trees-1"},
            "spec": {"projectRef": {"name": "trees"}}})
        await publish(kmock, "team-a", "trees-1", {"phase": "Trained"})

        async def iterations() -> list[str]:
            return [i["status"] for i in (await http.get(f"/projects/{pid}/iterations")).json()]

        await eventually_async(iterations, ["Completed"])
        assert refusal(await http.post(f"/projects/{pid}/train", params={"forceTrain": "true"})) == (
            400, "BadRequestExceedIterationPerProjectLimit")
        assert await resources(kmock, "team-a", "iterations") == ["trees-1"]
        assert (await http.delete(f"/projects/{pid}/iterations/{iteration['metadata']['uid']}")).status_code == 204
        assert refusal(await http.post(f"/projects/{pid}/train")) == (  # past the limit; 2 tags of 5 images lack
            400, "BadRequestTrainingValidationFailed")


async def test_an_advanced_training_past_the_namespaces_monthly_budget_is_refused(kmock, platform, tmp_path,
                                                                                   limits_file):
    """team-a may take 3 Advanced hours a month: 2 used by an ended training and 1 reserved by a running one leave
    nothing; a Quick training uses none, and team-b has no budget to run out of."""
    limit(limits_file, namespaces={"team-a": {"advanced_budget_hours": 3}})
    await put_keys(kmock, "team-a", "key-a")
    await put_keys(kmock, "team-b", "key-b")
    settings = GatewaySettings(mode="kubernetes", data_dir=tmp_path)
    async with kubernetes_gateway(kmock, settings, platform.s3_settings()) as base, \
            httpx.AsyncClient(base_url=f"{base}{TRAINING}", timeout=60, headers={"Training-Key": "t-key-a"}) as http:
        pid = (await http.post("/projects", params={"name": "Trees"})).json()["id"]
        ended = datetime.now(UTC)
        for name, training_type, hours in (("trees-1", "Advanced", 2), ("trees-2", "Quick", 5)):
            await create(kmock, "team-a", "iterations", {
                "apiVersion": "kubevision.io/v1alpha1", "kind": "Iteration", "metadata": {"name": name},
                "spec": {"projectRef": {"name": "trees"}, "trainingType": training_type}})
            await publish(kmock, "team-a", name, {"phase": "Trained", "trainingFinished": ended.isoformat(),
                                                  "trainingStarted": (ended - timedelta(hours=hours)).isoformat()})

        async def train(hours: int, key: str = "t-key-a", project: str = pid) -> tuple[int, str]:
            return refusal(await http.post(f"/projects/{project}/train", headers={"Training-Key": key}, params={
                "trainingType": "Advanced", "reservedBudgetInHours": hours, "forceTrain": "true"}))

        async def listed() -> int:
            return len((await http.get(f"/projects/{pid}/iterations")).json())

        await eventually_async(listed, 2)
        refused = (400, "BadRequestReservedBudgetInHoursNotEnoughForAdvancedTraining")
        assert await train(2) == refused  # 2 used + 2 asked > 3
        assert await train(1) == (400, "BadRequestTrainingValidationFailed")  # 2 + 1 fit: on to the data's checks
        await http.post("/projects", params={"name": "Pines"})  # another project's training, waiting its turn
        await create(kmock, "team-a", "iterations", {
            "apiVersion": "kubevision.io/v1alpha1", "kind": "Iteration", "metadata": {"name": "pines-1"},
            "spec": {"projectRef": {"name": "pines"}, "trainingType": "Advanced", "budgetMinutes": 60}})
        await publish(kmock, "team-a", "pines-1", {"phase": "Queued"})
        await eventually_async(lambda: train(1), refused)  # 2 used + 1 reserved + 1 asked > 3
        assert await resources(kmock, "team-a", "iterations") == ["pines-1", "trees-1", "trees-2"]

        other = (await http.post("/projects", params={"name": "Trees"}, headers={"Training-Key": "t-key-b"})).json()
        assert await train(48, "t-key-b", other["id"]) == (400, "BadRequestTrainingValidationFailed")
