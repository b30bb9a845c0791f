"""Object detection through the gateway on a cluster (the Kubernetes emulator), over plain HTTP as Microsoft's REST
reference shows it: regions at upload, created and deleted on stored images, listed and exported to the manifest;
every bad region refused with Custom Vision's error and nothing changed, as are names and metadata past the label
store's rules; the detect routes answered by the real Triton serving a detector of core.serving.detection's
contract, and stored predictions that keep their boxes."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
from pathlib import Path

import httpx
import pytest
import tritonclient.http as triton_http
from detector_model import expected_detections, onnx_detector, upload
from gateway_harness import kubernetes_gateway
from image_server import serving
from kube_emulator import KubeEmulator
from PIL import Image
from test_gateway_kubernetes import create, eventually_async, publish, put_keys

from kubevision.core import dataset
from kubevision.core.labels import model_name
from kubevision.core.settings import GatewaySettings
from kubevision.core.storage import DatasetLayout, DatasetStore, ModelRepositoryLayout, ObjectStore

REPO = Path(__file__).resolve().parents[2]
DETECTION_DOMAIN = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"  # General, ObjectDetection
NS = "team-d"

pytestmark = pytest.mark.kmock(cls=KubeEmulator, crds=sorted(str(p) for p in (REPO / "crds").glob("*.yaml")),
                               strict=True)


def photo(number: int, size: tuple[int, int] = (48, 32)) -> bytes:
    """A distinct small picture: a coloured square on grey, placed by `number`."""
    image = Image.new("RGB", size, (120, 120, 120))
    image.paste((200, number * 37 % 256, 40), (number % 20, number % 12, number % 20 + 16, number % 12 + 16))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()


def code(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"code", "message"} and body["message"], body
    return response.status_code, body["code"]


def box(tag_id: str, left=0.1, top=0.2, width=0.5, height=0.4) -> dict:
    return {"tagId": tag_id, "left": left, "top": top, "width": width, "height": height}


async def test_regions_are_kept_listed_exported_and_every_bad_one_is_refused(kmock, platform, tmp_path):
    await put_keys(kmock, NS, "key-d")  # its trainingKey is t-key-d
    settings = GatewaySettings(mode="kubernetes", data_dir=tmp_path, publish_wait_seconds=0,
                               allow_loopback_urls=True)  # the test serves its images on 127.0.0.1
    async with kubernetes_gateway(kmock, settings, platform.s3_settings()) as base, \
            httpx.AsyncClient(base_url=f"{base}/customvision/v3.3/training", timeout=60,
                              headers={"Training-Key": "t-key-d"}) as http:
        created = await http.post("/projects", params={"name": "Cutlery", "domainId": DETECTION_DOMAIN})
        assert created.status_code == 200, created.text
        pid = created.json()["id"]
        assert created.json()["settings"]["domainId"] == DETECTION_DOMAIN
        fork = (await http.post(f"/projects/{pid}/tags", params={"name": "fork"})).json()["id"]
        scissors = (await http.post(f"/projects/{pid}/tags", params={"name": "scissors"})).json()["id"]

        async def images() -> list[dict]:
            return (await http.get(f"/projects/{pid}/images", params={"take": 256})).json()

        # Regions at upload, from files and from URLs.
        files = [{"name": f"{n}.png", "contents": encoded(photo(n)),
                  "regions": [box(fork if n % 2 else scissors, left=0.05 * n)]} for n in range(4)]
        files[0]["regions"].append(box(fork, 0.6, 0.5, 0.4, 0.5))  # to the very corner
        summary = (await http.post(f"/projects/{pid}/images/files", json={"images": files})).json()
        assert summary["isBatchSuccessful"], summary
        with serving({"4.png": photo(4)}) as server:
            by_url = (await http.post(f"/projects/{pid}/images/urls", json={"images": [
                {"url": f"{server}/4.png", "regions": [box(scissors, 0.25, 0.25, 0.5, 0.5)]}]})).json()
        assert by_url["images"][0]["status"] == "OK"
        listed = {i["id"]: i for i in await images()}
        first = listed[dataset.image_id(dataset.content_hash(photo(0)))]
        assert sorted((r["tagName"], r["left"], r["top"], r["width"], r["height"]) for r in first["regions"]) == [
            ("fork", 0.6, 0.5, 0.4, 0.5), ("scissors", 0.0, 0.2, 0.5, 0.4)]
        assert {"regionId", "tagId", "created"} <= set(first["regions"][0])
        assert (await http.get(f"/projects/{pid}/images/tagged/count")).json() == 5  # regions tag an image
        counts = {t["name"]: t["imageCount"] for t in (await http.get(f"/projects/{pid}/tags")).json()}
        assert counts == {"fork": 3, "scissors": 3}

        # Every bad region at upload refuses the request and stores nothing.
        before = await images()
        for bad, wanted in (
            (box(fork, left=0.7, width=0.5), "BadRequestImageRegions"),  # past the right edge
            (box(fork, top=-0.1), "BadRequestImageRegions"),  # above the top
            (box(fork, width=0), "BadRequestImageRegions"),  # zero size
            (box(fork, height=0), "BadRequestImageRegions"),
            (box(fork, left=float("nan")), "BadRequestImageRegions"),  # JSON's NaN, which Python reads
        ):
            entries = [{"name": "good.png", "contents": encoded(photo(10)), "regions": [box(fork)]},
                       {"name": "bad.png", "contents": encoded(photo(11)), "regions": [bad]}]
            refused = await http.post(f"/projects/{pid}/images/files", content=json.dumps({"images": entries}),
                                      headers={"Content-Type": "application/json"})  # json.dumps writes NaN
            assert code(refused) == (400, wanted), bad
            assert "bad.png" in refused.json()["message"]
        unknown = await http.post(f"/projects/{pid}/images/files", json={"images": [
            {"name": "unknown.png", "contents": encoded(photo(12)), "regions": [box(str(uuid.uuid4()))]}]})
        assert unknown.json()["images"][0]["status"] == "ErrorInvalidTag"  # Custom Vision's per-image status
        assert await images() == before

        # Regions created on stored images: created, duplicated; bad ones refuse the whole batch.
        image_id = dataset.image_id(dataset.content_hash(photo(1)))
        new = [{"imageId": image_id, **box(scissors, 0.5, 0.5, 0.25, 0.25)},
               {"imageId": image_id, **box(fork, left=0.05)}]  # already there, from the upload
        made = (await http.post(f"/projects/{pid}/images/regions", json={"regions": new})).json()
        assert [(r["imageId"], r["tagName"], r["left"]) for r in made["created"]] == [(image_id, "scissors", 0.5)]
        assert [(r["imageId"], r["tagId"]) for r in made["duplicated"]] == [(image_id, fork)]
        assert made["exceeded"] == []
        before = await images()
        for bad, wanted in (
            ({"imageId": image_id, **box(fork, top=0.9, height=0.2)}, (400, "BadRequestImageRegions")),
            ({"imageId": image_id, **box(fork, width=0, height=0)}, (400, "BadRequestImageRegions")),
            ({"imageId": image_id, **box(str(uuid.uuid4()))}, (400, "BadRequestInvalidIds")),
            ({"imageId": str(uuid.uuid4()), **box(fork)}, (400, "BadRequestInvalidIds")),
        ):
            good = {"imageId": image_id, **box(fork, 0.3, 0.3, 0.1, 0.1)}
            assert code(await http.post(f"/projects/{pid}/images/regions", json={"regions": [good, bad]})) == \
                wanted, bad
        assert code(await http.post(f"/projects/{pid}/images/regions", json={"regions": []})) == (
            400, "BadRequestExceededBatchSize")
        assert await images() == before

        # Deleting regions; the image stays, untagged once its last region goes.
        made_id = made["created"][0]["regionId"]
        assert (await http.delete(f"/projects/{pid}/images/regions", params={"regionIds": made_id})).status_code \
            == 204
        left = [r for i in await images() if i["id"] == image_id for r in i["regions"]]
        assert [r["tagName"] for r in left] == ["fork"]
        assert (await http.delete(f"/projects/{pid}/images/regions", params={
            "regionIds": left[0]["regionId"]})).status_code == 204
        assert (await http.get(f"/projects/{pid}/images/untagged/count")).json() == 1
        assert code(await http.delete(f"/projects/{pid}/images/regions")) == (400, "BadRequestInvalidIds")

        # Training needs 15 images a tag for a detector; the manifest it exports carries the regions.
        assert code(await http.post(f"/projects/{pid}/train")) == (
            400, "BadRequestDetectionTrainingValidationFailed")
        more = [{"name": f"{n}.png", "contents": encoded(photo(n)),
                 "regions": [box(fork), box(scissors, 0.5, 0.5, 0.5, 0.5)]} for n in range(20, 35)]
        # A box drawn to the right edge, a rounding error past it: kept on the edge, so that the manifest
        # stays one that the snapshot and the trainer read.
        more[0]["regions"].append(box(fork, 0, 0.75, 1.0000005, 0.25))
        assert (await http.post(f"/projects/{pid}/images/files", json={"images": more})).json()[
            "isBatchSuccessful"]
        trained = await http.post(f"/projects/{pid}/train")
        assert trained.status_code == 200, trained.text
        layout = DatasetLayout("kubevision-datasets", f"{NS}/cutlery/")
        records = {r.id: r for r in dataset.loads(ObjectStore(platform.s3_settings()).get(
            layout.bucket, layout.manifest_key))}
        assert sorted((r.tag, r.left, r.top, r.width, r.height) for r in records[first["id"]].regions) == [
            ("fork", 0.6, 0.5, 0.4, 0.5), ("scissors", 0.0, 0.2, 0.5, 0.4)]
        assert dataset.tag_counts(list(records.values())) == {"fork": 17, "scissors": 18}
        edge = next(r for r in records[dataset.image_id(dataset.content_hash(photo(20)))].regions if r.top == 0.75)
        assert (edge.left, edge.width) == (0, 1)
        snapshots = DatasetStore(ObjectStore(platform.s3_settings()), layout)
        snapshots.snapshot("cutlery-1")  # as the operator takes it for the iteration
        assert len(snapshots.snapshot_records("cutlery-1")) == len(records)


async def test_names_and_metadata_are_refused_at_the_door_by_the_stores_rules(kmock, platform, tmp_path):
    """Names that a labels file or PostgreSQL could misread, the Negative tag's name on a regular tag, and metadata
    past Custom Vision's limits, at upload or on update: each refused with Custom Vision's error, nothing changed."""
    await put_keys(kmock, NS, "key-d")
    settings = GatewaySettings(mode="kubernetes", data_dir=tmp_path, publish_wait_seconds=0)
    async with kubernetes_gateway(kmock, settings, platform.s3_settings()) as base, \
            httpx.AsyncClient(base_url=f"{base}/customvision/v3.3/training", timeout=60,
                              headers={"Training-Key": "t-key-d"}) as http:
        for name in ("two\nlines", "line\u2028separator", "next\x85line", "del\x7f"):
            refused = await http.post("/projects", params={"name": name, "domainId": DETECTION_DOMAIN})
            assert code(refused) == (400, "BadRequestProjectName"), repr(name)
        pid = (await http.post("/projects", params={"name": "Labels", "domainId": DETECTION_DOMAIN})).json()["id"]
        fork = (await http.post(f"/projects/{pid}/tags", params={"name": "fork"})).json()
        for name in ("two\nlines", "paragraph\u2029separator", "tab\tbed", "Negative", "negative "):
            assert code(await http.post(f"/projects/{pid}/tags", params={"name": name})) == (
                400, "BadRequestTagName"), repr(name)
            renamed = await http.patch(f"/projects/{pid}/tags/{fork['id']}", json={**fork, "name": name})
            assert code(renamed) == (400, "BadRequestTagName"), repr(name)
        assert [t["name"] for t in (await http.get(f"/projects/{pid}/tags")).json()] == ["fork"]

        ten = {f"key{n}": str(n) for n in range(10)}
        summary = (await http.post(f"/projects/{pid}/images/files", json={"metadata": ten, "images": [
            {"name": f"{n}.png", "contents": encoded(photo(n))} for n in (40, 41)]})).json()
        both = ",".join(i["image"]["id"] for i in summary["images"])

        async def update(pairs: dict[str, str]) -> httpx.Response:
            return await http.post(f"/projects/{pid}/images/metadata", params={"imageIds": both}, json=pairs)

        assert [i["status"] for i in (await update({"key3": "three"})).json()["images"]] == ["OK", "OK"]
        past_ten = (await update({"key10": "the eleventh"})).json()  # creation allows 10: so does an update
        assert past_ten["isBatchSuccessful"] is False
        assert [i["status"] for i in past_ten["images"]] == ["ErrorLimitExceed", "ErrorLimitExceed"]
        for pairs, wanted in (({"k" * 129: "v"}, "BadRequestImageMetadataKey"),
                              ({"line\nbreak": "v"}, "BadRequestImageMetadataKey"),
                              ({"camera": "v" * 257}, "BadRequestImageMetadataValue")):
            assert code(await update(pairs)) == (400, wanted), pairs
            assert code(await http.post(f"/projects/{pid}/images/files", json={"metadata": pairs, "images": [
                {"name": "new.png", "contents": encoded(photo(42))}]})) == (400, wanted), pairs
        listed = (await http.get(f"/projects/{pid}/images", params={"take": 10})).json()
        assert [i["metadata"] for i in listed] == [{**ten, "key3": "three"}] * 2


async def test_the_detect_routes_answer_boxes_from_triton_and_keep_them(kmock, platform, tmp_path):
    s3 = platform.s3_settings()
    store = ObjectStore(s3)
    tags = ["fork", "scissors"]
    model = onnx_detector(len(tags))
    await put_keys(kmock, NS, "key-d")
    project = await create(kmock, NS, "customvisionprojects", {
        "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "cutlery"},
        "spec": {"displayName": "Cutlery", "type": "ObjectDetection", "domain": "General",
                 "dataset": {"bucket": "kubevision-datasets", "prefix": f"{NS}/cutlery/"}}})
    classifier_project = await create(kmock, NS, "customvisionprojects", {
        "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "mislabelled"},
        "spec": {"displayName": "A classifier serving a detector",
                 "dataset": {"bucket": "kubevision-datasets", "prefix": f"{NS}/mislabelled/"}}})
    # The detector, under its project and under a Classification project that (wrongly) serves it too, each under
    # its Iteration's model name.
    models, uris = {}, {}
    for project_name in ("cutlery", "mislabelled"):
        iteration = await create(kmock, NS, "iterations", {
            "apiVersion": "kubevision.io/v1alpha1", "kind": "Iteration", "metadata": {"name": f"{project_name}-1"},
            "spec": {"projectRef": {"name": project_name}}})
        models[project_name] = model_name(iteration["metadata"]["uid"])
        uris[project_name] = upload(store, ModelRepositoryLayout(s3.models_bucket, NS, project_name),
                                    models[project_name], model, tags)

    def serve() -> None:  # Triton's HTTP client stays in the thread that made it
        platform.restart_triton()  # a new project's repository is seen when Triton starts
        triton = triton_http.InferenceServerClient(platform.triton_settings().http_url)
        for name in models.values():
            triton.load_model(name)

    await asyncio.to_thread(serve)
    for project_name, model_uri in uris.items():
        await publish(kmock, NS, f"{project_name}-1", {
            "phase": "Published", "publishedName": "tools", "modelUri": model_uri,
            "endpoint": f"http://{platform.triton_settings().http_url}"})
    # A second iteration of the same model, trained but not published: the gateway runs it in ONNX Runtime.
    unpublished = await create(kmock, NS, "iterations", {
        "apiVersion": "kubevision.io/v1alpha1", "kind": "Iteration", "metadata": {"name": "cutlery-2"},
        "spec": {"projectRef": {"name": "cutlery"}}})
    metrics = {"probabilityThreshold": 0.5, "precision": 0.8, "recall": 0.7, "averagePrecision": 0.75, "perTag": [
        {"tag": tag, "precision": 0.8, "recall": 0.7, "averagePrecision": 0.75} for tag in tags]}
    await publish(kmock, NS, "cutlery-2", {"phase": "Trained", "modelUri": uris["cutlery"], "metrics": metrics})
    pid, other = project["metadata"]["uid"], classifier_project["metadata"]["uid"]
    picture = Image.open(io.BytesIO(photo(3, size=(96, 64))))  # not square: the model stretches it
    wanted = expected_detections(model, picture)
    assert wanted, "the stand-in detector finds something in the picture"

    settings = GatewaySettings(mode="kubernetes", data_dir=tmp_path, allow_loopback_urls=True)
    async with kubernetes_gateway(kmock, settings, s3) as base, \
            httpx.AsyncClient(base_url=base, timeout=60, headers={"Prediction-Key": "key-d"}) as http:
        await eventually_async(lambda: published(http, pid), 200)
        data = photo(3, size=(96, 64))
        answers = []
        with serving({"cutlery.png": data}) as server:
            for version in ("v3.0", "v3.1"):
                route = f"/customvision/{version}/Prediction/{pid}/detect/iterations/tools"
                for suffix in ("image", "image/nostore"):
                    answers.append(await http.post(f"{route}/{suffix}", files={"imageData": ("c.png", data)}))
                for suffix in ("url", "url/nostore"):
                    answers.append(await http.post(f"{route}/{suffix}", json={"url": f"{server}/cutlery.png"}))
        for answer in answers:
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["project"] == pid and set(body) == {"id", "project", "iteration", "created", "predictions"}
            got = body["predictions"]
            assert [p["probability"] for p in got] == sorted((p["probability"] for p in got), reverse=True)
            assert len(got) == len(wanted)
            for p, (row, score, (left, top, width, height)) in zip(got, wanted, strict=True):
                assert set(p) == {"probability", "tagId", "tagName", "tagType", "boundingBox"}
                assert (p["tagName"], p["tagId"]) == (tags[row], dataset.tag_id(pid, tags[row]))
                assert p["probability"] == pytest.approx(score, abs=1e-5)
                assert [p["boundingBox"][k] for k in ("left", "top", "width", "height")] == pytest.approx(
                    [left, top, min(width, 1 - left), min(height, 1 - top)], abs=1e-5)

        classify = await http.post(f"/customvision/v3.1/Prediction/{pid}/classify/iterations/tools/image",
                                   content=data, headers={"Content-Type": "application/octet-stream"})
        assert code(classify) == (400, "BadRequestNotSupported") and "detect" in classify.json()["message"]
        served_wrong = await http.post(f"/customvision/v3.1/Prediction/{other}/classify/iterations/tools/image",
                                       content=data, headers={"Content-Type": "application/octet-stream"})
        assert code(served_wrong) == (400, "BadRequestNotSupported")
        assert "object detector" in served_wrong.json()["message"]
        detect_classifier = await http.post(f"/customvision/v3.1/Prediction/{other}/detect/iterations/tools/url",
                                            json={"url": "http://127.0.0.1:9/never-fetched.png"})
        assert code(detect_classifier) == (400, "BadRequestNotSupported")

        # The stored predictions (the two stored routes of each version) keep their boxes.
        async def stored() -> list[dict]:
            query = await http.post(f"/customvision/v3.3/training/projects/{pid}/predictions/query", json={},
                                    headers={"Training-Key": "t-key-d"})
            return query.json()["results"]

        await eventually_async(lambda: count_of(stored), 4)
        for result in await stored():
            assert [p["boundingBox"] for p in result["predictions"]] == [
                p["boundingBox"] for p in answers[0].json()["predictions"]]

        # A tag's probability range matches when one of the tag's boxes is in it.
        forks = [p["probability"] for p in answers[0].json()["predictions"] if p["tagName"] == "fork"]
        assert min(forks) < max(forks)

        async def in_range(low: float) -> int:
            query = await http.post(f"/customvision/v3.3/training/projects/{pid}/predictions/query", json={
                "tags": [{"id": dataset.tag_id(pid, "fork"), "minThreshold": low, "maxThreshold": 1}]},
                headers={"Training-Key": "t-key-d"})
            return len(query.json()["results"])

        assert await in_range((min(forks) + max(forks)) / 2) == 4 and await in_range(max(forks) + 1e-4) == 0

        # A quick test of a detector's iteration detects.
        quick = await http.post(f"/customvision/v3.3/training/projects/{pid}/quicktest/image", content=data,
                                params={"store": "false"}, headers={"Training-Key": "t-key-d",
                                                                    "Content-Type": "application/octet-stream"})
        assert quick.status_code == 200, quick.text
        assert quick.json()["predictions"] == answers[0].json()["predictions"]

        # ... and so does one of an unpublished iteration, in the gateway, with the boxes Triton gives.
        local = await http.post(f"/customvision/v3.3/training/projects/{pid}/quicktest/image", content=data,
                                params={"store": "false", "iterationId": unpublished["metadata"]["uid"]},
                                headers={"Training-Key": "t-key-d", "Content-Type": "application/octet-stream"})
        assert local.status_code == 200, local.text
        assert local.json()["iteration"] == unpublished["metadata"]["uid"]
        assert same_detections(local.json()["predictions"], answers[0].json()["predictions"])

        # With no held-out boxes kept (this iteration's status is the test's), its performance is the trainer's,
        # at the thresholds it was evaluated with only.
        async def performance(**params) -> httpx.Response:
            return await http.get(f"/customvision/v3.3/training/projects/{pid}/iterations/"
                                  f"{unpublished['metadata']['uid']}/performance", params=params,
                                  headers={"Training-Key": "t-key-d"})

        for asked in ({}, {"overlapThreshold": 0.5}, {"threshold": 0.5, "overlapThreshold": 0.5}):
            answer = await performance(**asked)
            assert answer.status_code == 200, answer.text
            assert (answer.json()["precision"], answer.json()["averagePrecision"]) == (0.8, 0.75)
            assert [t["id"] for t in answer.json()["perTagPerformance"]] == [dataset.tag_id(pid, t) for t in tags]
        for asked in ({"overlapThreshold": 0.3}, {"threshold": 0.2}):
            assert code(await performance(**asked)) == (404, "NotFoundIterationPerformance")
        assert code(await performance(overlapThreshold=1.5)) == (400, "BadRequest")
        held_out = await http.get(f"/customvision/v3.3/training/projects/{pid}/iterations/"
                                  f"{unpublished['metadata']['uid']}/performance/images",
                                  headers={"Training-Key": "t-key-d"})
        assert code(held_out) == (404, "NotFoundIterationPerformance") and "held-out" in held_out.json()["message"]


def same_detections(these: list[dict], those: list[dict], tolerance: float = 1e-4) -> bool:
    """The same tags with the same probabilities and boxes, in the same order, within `tolerance`."""
    def figures(predictions: list[dict]) -> list[float]:
        return [v for p in predictions for v in (p["probability"], *(p["boundingBox"][k] for k in
                                                                       ("left", "top", "width", "height")))]

    return ([p["tagId"] for p in these] == [p["tagId"] for p in those]
            and figures(these) == pytest.approx(figures(those), abs=tolerance))


async def published(http: httpx.AsyncClient, project_id: str) -> int:
    response = await http.post(f"/customvision/v3.1/Prediction/{project_id}/detect/iterations/tools/image/nostore",
                               content=photo(1), headers={"Content-Type": "application/octet-stream"})
    return response.status_code


async def count_of(call) -> int:
    return len(await call())
