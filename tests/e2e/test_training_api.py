"""The Custom Vision training API as its users call it: Microsoft's Python SDK runs the classification quickstart
against the gateway that `kubevision local up` runs, unchanged but for endpoint and keys; plain HTTP pins the JSON
shapes and the refusals."""

from __future__ import annotations

import io
import time
import uuid

import httpx
import onnx
import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageIdCreateBatch,
    ImageIdCreateEntry,
    PredictionQueryToken,
)
from conftest import EXAMPLES
from image_server import serving
from msrest.authentication import ApiKeyCredentials
from PIL import Image

from kubevision.core import dataset
from kubevision.core.storage import ObjectStore
from kubevision.local import api_keys

SAMPLES = EXAMPLES / "samples"
DATASETS_BUCKET = "kubevision-datasets"  # the quickstart's images, examples/project.yaml
TEST_IMAGE = (SAMPLES / "test" / "test_image.jpg").read_bytes()


def keys(platform, namespace: str = "default") -> dict[str, str]:
    return api_keys.ensure(platform.data_dir, namespace)


def trainer_for(quickstart, platform, namespace: str = "default") -> CustomVisionTrainingClient:
    credentials = ApiKeyCredentials(in_headers={"Training-key": keys(platform, namespace)["trainingKey"]})
    return CustomVisionTrainingClient(quickstart.gateway, credentials)


def wait_trained(trainer, project_id: str, iteration_id: str, timeout: float = 600):
    deadline = time.monotonic() + timeout
    iteration = trainer.get_iteration(project_id, iteration_id)
    while iteration.status == "Training":
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(1)
        iteration = trainer.get_iteration(project_id, iteration_id)
    return iteration


def test_the_official_sdk_runs_the_classification_quickstart(quickstart, platform):
    """Microsoft's quickstart, step by step, then the loop that improves a model from its stored predictions."""
    trainer = trainer_for(quickstart, platform)
    project = trainer.create_project("My New Project")
    hemlock_tag = trainer.create_tag(project.id, "Hemlock")
    cherry_tag = trainer.create_tag(project.id, "Japanese Cherry")
    image_list = []
    for tag, folder in ((hemlock_tag, "Hemlock"), (cherry_tag, "Japanese_Cherry")):
        for path in sorted((SAMPLES / folder).glob("*.jpg")):
            image_list.append(ImageFileCreateEntry(name=path.name, contents=path.read_bytes(), tag_ids=[tag.id]))
    upload_result = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=image_list))
    assert upload_result.is_batch_successful, [i.status for i in upload_result.images]

    iteration = trainer.train_project(project.id)
    assert iteration.status == "Training"
    iteration = wait_trained(trainer, project.id, iteration.id)
    assert iteration.status == "Completed", iteration.training_error_details
    trainer.publish_iteration(project.id, iteration.id, "classifyModel", "/subscriptions/any/prediction-resource")

    credentials = ApiKeyCredentials(in_headers={"Prediction-key": keys(platform)["predictionKey"]})
    predictor = CustomVisionPredictionClient(quickstart.gateway, credentials)
    results = predictor.classify_image(project.id, "classifyModel", TEST_IMAGE)
    assert results.predictions[0].tag_name == "Hemlock" and results.predictions[0].tag_id == hemlock_tag.id

    performance = trainer.get_iteration_performance(project.id, iteration.id, threshold=0.5)
    assert {t.id for t in performance.per_tag_performance} == {hemlock_tag.id, cherry_tag.id}
    assert 0 <= performance.precision <= 1 and performance.average_precision > 0.5

    deadline = time.monotonic() + 30  # the gateway stores a prediction after its answer has left
    while True:
        query = trainer.query_predictions(project.id, PredictionQueryToken(order_by="Newest", max_count=10))
        if any(r.id == results.id for r in query.results) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    stored = next(r for r in query.results if r.id == results.id)
    assert stored.iteration == iteration.id and stored.predictions[0].tag_name == "Hemlock"
    assert httpx.get(stored.original_image_url if hasattr(stored, "original_image_url")
                     else stored.original_image_uri, timeout=30).content == TEST_IMAGE

    added = trainer.create_images_from_predictions(project.id, ImageIdCreateBatch(
        images=[ImageIdCreateEntry(id=results.id, tag_ids=[hemlock_tag.id])]))
    assert added.is_batch_successful and added.images[0].status == "OK"
    assert trainer.get_tagged_image_count(project.id) == len(image_list) + 1
    assert trainer.get_tag(project.id, hemlock_tag.id).image_count == 11

    second = trainer.train_project(project.id)
    assert wait_trained(trainer, project.id, second.id).status == "Completed"
    assert [i.id for i in trainer.get_iterations(project.id)] == [iteration.id, second.id]

    export = trainer.export_iteration(project.id, second.id, "ONNX")
    assert export.status == "Done"
    model = httpx.get(trainer.get_exports(project.id, second.id)[0].download_uri, timeout=60)
    assert model.status_code == 200 and onnx.load_from_string(model.content).graph.input

    trainer.unpublish_iteration(project.id, iteration.id)
    trainer.delete_iteration(project.id, iteration.id)
    assert [i.id for i in trainer.get_iterations(project.id)] == [second.id]


def png(number: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (number % 256, number // 256, 7)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_two_namespaces_projects_of_one_name_are_each_answered_by_their_own_model(quickstart, platform):
    """Two teams on one platform each train a project of the same name and publish it under the same name: one
    Triton serves both, and each team is answered by its own model, with its own tags."""
    teams = {"team-orchard": ("Granny Smith", "Gala"), "team-closet": ("Sneaker", "Boot", "Sandal")}
    published = {}
    for offset, (namespace, tag_names) in enumerate(teams.items()):
        trainer = trainer_for(quickstart, platform, namespace)
        deadline = time.monotonic() + 30  # the gateway reads a new namespace's keys within a second or two
        while httpx.get(f"{quickstart.gateway}/customvision/v3.3/Training/projects", timeout=30, headers={
                "Training-Key": keys(platform, namespace)["trainingKey"]}).status_code == 401:
            assert time.monotonic() < deadline, "the gateway never took the new keys"
            time.sleep(0.5)
        project = trainer.create_project("Same Name")
        tags = [trainer.create_tag(project.id, name) for name in tag_names]
        images = [ImageFileCreateEntry(name=f"{t}-{n}.png", contents=png(1000 * offset + 100 * t + n), tag_ids=[tag.id])
                  for t, tag in enumerate(tags) for n in range(5)]  # Custom Vision's least: 5 images a tag
        assert trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=images)).is_batch_successful
        iteration = wait_trained(trainer, project.id, trainer.train_project(project.id).id)
        assert iteration.status == "Completed", iteration.training_error_details
        trainer.publish_iteration(project.id, iteration.id, "sameModel", "/subscriptions/any/prediction-resource")
        published[namespace] = project.id, {(tag.id, tag.name) for tag in tags}

    for namespace, (project_id, tags) in published.items():
        credentials = ApiKeyCredentials(in_headers={"Prediction-key": keys(platform, namespace)["predictionKey"]})
        predictor = CustomVisionPredictionClient(quickstart.gateway, credentials)
        answer = predictor.classify_image(project_id, "sameModel", png(7))
        assert {(p.tag_id, p.tag_name) for p in answer.predictions} == tags, namespace


class Api:
    """Plain HTTP against the v3.3 routes, as Microsoft's REST reference shows them."""

    def __init__(self, quickstart, key: str, version: str = "v3.3"):
        self.base = f"{quickstart.gateway}/customvision/{version}/Training"
        self.key = key

    def __call__(self, method: str, path: str, key: str | None = "", **options) -> httpx.Response:
        headers = options.pop("headers", {})
        if key is not None:
            headers["Training-Key"] = key or self.key
        return httpx.request(method, f"{self.base}{path}", headers=headers, timeout=60, **options)


def code(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"code", "message"} and body["message"], body
    return response.status_code, body["code"]


def test_raw_http_pins_shapes_limits_and_refusals(quickstart, platform):
    api = Api(quickstart, keys(platform)["trainingKey"])
    other = Api(quickstart, keys(platform, "team-b")["trainingKey"])  # the gateway reads new keys within a second
    assert code(api("GET", "/projects", key=None)) == (401, "Unauthorized")
    assert code(api("GET", "/projects", key="wrong")) == (401, "Unauthorized")
    assert code(api("POST", "/projects", params={"name": "x", "domainId": str(uuid.uuid4())})) == (
        400, "BadRequestProjectUnknownDomain")
    assert code(api("POST", "/projects", params={"name": "x", "classificationType": "Some"})) == (
        400, "BadRequestProjectUnknownClassification")

    created = api("POST", "/projects", params={"name": "Raw HTTP, 1st!", "description": "shapes",
                                               "classificationType": "Multilabel",
                                               "domainId": "0732100f-1a38-4e49-a514-c9b44c697ab5"})
    assert created.status_code == 200, created.text
    project = created.json()
    assert set(project) >= {"id", "name", "description", "settings", "created", "lastModified", "status"}
    assert project["name"] == "Raw HTTP, 1st!" and project["settings"]["classificationType"] == "Multilabel"
    assert project["settings"]["domainId"] == "0732100f-1a38-4e49-a514-c9b44c697ab5"
    pid = project["id"]
    deadline = time.monotonic() + 10
    while other("GET", "/projects").status_code == 401 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert code(other("GET", f"/projects/{pid}")) == (404, "NotFoundProject")  # another namespace's project
    assert pid not in {p["id"] for p in other("GET", "/projects").json()}

    tag = api("POST", f"/projects/{pid}/tags", params={"name": "red"}).json()
    assert tag == {"id": dataset.tag_id(pid, "red"), "name": "red", "description": "", "type": "Regular",
                   "imageCount": 0}
    assert code(api("POST", f"/projects/{pid}/tags", params={"name": "RED"})) == (400, "BadRequestTagNameNotUnique")
    assert code(api("POST", f"/projects/{pid}/tags", params={"name": "x", "type": "Odd"})) == (
        400, "BadRequestTagType")
    assert code(api("GET", f"/projects/{pid}/tags/{uuid.uuid4()}")) == (404, "NotFoundTag")

    entries = [{"name": f"{n}.png", "contents": __import__("base64").b64encode(png(n)).decode(), "tagIds": [tag["id"]]}
               for n in range(3)]
    entries.append({"name": "bad.png", "contents": "bm90IGFuIGltYWdl"})  # "not an image"
    summary = api("POST", f"/projects/{pid}/images/files", json={"images": entries}).json()
    assert summary["isBatchSuccessful"] is False
    assert [i["status"] for i in summary["images"]] == ["OK", "OK", "OK", "ErrorImageFormat"]
    image = summary["images"][0]["image"]
    assert set(image) >= {"id", "created", "width", "height", "resizedImageUri", "thumbnailUri", "originalImageUri",
                          "tags"}
    assert image["tags"][0]["tagName"] == "red" and (image["width"], image["height"]) == (16, 16)
    assert httpx.get(image["originalImageUri"], timeout=30).content == png(0)
    tampered = image["originalImageUri"][:-1] + ("1" if image["originalImageUri"].endswith("0") else "0")
    assert code(httpx.get(tampered, timeout=30)) == (401, "Unauthorized")

    too_many = [{"name": f"{n}.png", "contents": ""} for n in range(65)]
    assert code(api("POST", f"/projects/{pid}/images/files", json={"images": too_many})) == (
        400, "BadRequestImageBatch")
    untagged = api("POST", f"/projects/{pid}/images", content=png(10),
                   headers={"Content-Type": "application/octet-stream"}).json()
    assert untagged["images"][0]["status"] == "OK" and "tags" not in untagged["images"][0]["image"]
    assert api("GET", f"/projects/{pid}/images/tagged/count").json() == 3
    assert api("GET", f"/projects/{pid}/images/untagged/count").json() == 1
    page = api("GET", f"/projects/{pid}/images/tagged", params={"take": 2, "skip": 0, "orderBy": "Oldest"}).json()
    assert [i["id"] for i in page] == [dataset.image_id(dataset.content_hash(png(n))) for n in range(2)]
    assert code(api("GET", f"/projects/{pid}/images/tagged", params={"take": 257})) == (400, "BadRequest")

    image_ids = [dataset.image_id(dataset.content_hash(png(n))) for n in (0, 10)]
    tagged = api("POST", f"/projects/{pid}/images/tags", json={"tags": [
        {"imageId": image_ids[1], "tagId": tag["id"]}, {"imageId": image_ids[0], "tagId": tag["id"]}]}).json()
    assert tagged["created"] == [{"imageId": image_ids[1], "tagId": tag["id"]}]
    assert tagged["duplicated"] == [{"imageId": image_ids[0], "tagId": tag["id"]}]
    assert api("GET", f"/projects/{pid}/tags/{tag['id']}").json()["imageCount"] == 4
    assert api("DELETE", f"/projects/{pid}/images", params={"imageIds": ",".join(image_ids)}).status_code == 204
    assert api("GET", f"/projects/{pid}/images/count").json() == 2

    assert code(api("POST", f"/projects/{pid}/train")) == (400, "BadRequestTrainingValidationFailed")
    assert code(api("GET", f"/projects/{pid}/iterations/{uuid.uuid4()}")) == (404, "NotFoundIteration")
    assert code(api("POST", f"/projects/{pid}/predictions/query", json={"maxCount": 1000})) == (
        400, "BadRequestPredictionResultsExceededCount")
    assert code(api("DELETE", f"/projects/{pid}/predictions")) == (400, "BadRequestPredictionIdsMissing")
    assert api("GET", "/domains").json()[0] == {
        "id": "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31", "name": "General", "type": "Classification",
        "exportable": True, "enabled": True, "exportablePlatforms": ["ONNX"]}
    assert api("DELETE", f"/projects/{pid}").status_code == 204
    assert code(api("GET", f"/projects/{pid}")) == (404, "NotFoundProject")


def test_each_bad_url_of_a_batch_is_its_own_image_error_and_the_rest_is_added(quickstart, platform):
    """A malformed URL, or one at the platform's own services (S3's filer would hand out any namespace's stored
    image without credentials, and the gateway's own API), is that image's ErrorSource; the good URLs of the batch
    are added, an image's originalImageUri among them (read from the store: its signature makes it the gateway's)."""
    api = Api(quickstart, keys(platform)["trainingKey"])
    created = api("POST", "/projects", params={"name": "URL batch"})
    source = api("POST", "/projects", params={"name": "URL batch source"})
    assert created.status_code == source.status_code == 200, (created.text, source.text)
    pid, source_id = created.json()["id"], source.json()["id"]
    uploaded = api("POST", f"/projects/{source_id}/images", content=png(102),
                   headers={"Content-Type": "application/octet-stream"})
    link = uploaded.json()["images"][0]["image"]["originalImageUri"]
    tampered = link[:-1] + ("1" if link.endswith("0") else "0")
    s3 = platform.load_state().services["s3"]
    objects = ObjectStore(platform.s3_settings())
    stored = next(key for key in objects.keys(DATASETS_BUCKET, "") if "/images/" in key)
    bad = ["http://127.0.0.1:99999/x.png", "http://127.0.0.1:png/x.png", "http://a..b/x.png", "http://[::1/x.png",
           "http://user:password@127.0.0.1/x.png", "http://exa mple.com/x.png",
           f"http://127.0.0.1:{s3.ports['filer.port']}/buckets/{DATASETS_BUCKET}/{stored}",
           f"http://[::ffff:127.0.0.1]:{s3.ports['filer.port']}/buckets/{DATASETS_BUCKET}/{stored}",
           f"http://localhost:{s3.ports['admin.port']}/", s3.health_url, tampered,
           f"{api.base}/projects"]
    with serving({"0.png": png(100), "1.png": png(101)}) as base:
        entries = [{"url": f"{base}/0.png"}, *({"url": url} for url in bad), {"url": f"{base}/1.png"}, {"url": link}]
        summary = api("POST", f"/projects/{pid}/images/urls", json={"images": entries})
    assert summary.status_code == 200, summary.text
    assert [i["status"] for i in summary.json()["images"]] == ["OK", *["ErrorSource"] * len(bad), "OK", "OK"]
    assert api("GET", f"/projects/{pid}/images/count").json() == 3
    for project_id in (pid, source_id):
        assert api("DELETE", f"/projects/{project_id}").status_code == 204


def test_the_sdk_raises_training_errors(quickstart, platform):
    trainer = trainer_for(quickstart, platform)
    with pytest.raises(CustomVisionErrorException) as error:
        trainer.get_project(str(uuid.uuid4()))
    assert error.value.error.code == "NotFoundProject"
