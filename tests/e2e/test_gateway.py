"""The Custom Vision prediction API as its users call it: Microsoft's Python SDK and plain HTTP against the gateway
that `kubevision local up` runs, serving the quickstart project that `make run` trains and publishes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.prediction.models import CustomVisionErrorException
from conftest import EXAMPLES
from image_server import serving
from msrest.authentication import ApiKeyCredentials
from PIL import Image

from kubevision.core import dataset
from kubevision.core.storage import DatasetLayout, ObjectStore

TEST_IMAGE = (EXAMPLES / "samples" / "test" / "test_image.jpg").read_bytes()
CHERRY = next((EXAMPLES / "samples" / "Japanese_Cherry").glob("*.jpg")).read_bytes()
TREES = DatasetLayout("kubevision-datasets", "default/trees/")  # examples/project.yaml


def predictor(quickstart) -> CustomVisionPredictionClient:
    credentials = ApiKeyCredentials(in_headers={"Prediction-key": quickstart.prediction_key})
    return CustomVisionPredictionClient(quickstart.gateway, credentials)


def route(quickstart, source: str = "image", kind: str = "classify", version: str = "v3.1", project=None,
          name=None) -> str:
    return (f"{quickstart.gateway}/customvision/{version}/Prediction/{project or quickstart.project_uid}/{kind}/"
            f"iterations/{name or quickstart.publish_name}/{source}")


def post_image(quickstart, data: bytes, key: str | None = "", **parts) -> httpx.Response:
    headers = {"Content-Type": "application/octet-stream"}
    if key is not None:
        headers["Prediction-Key"] = key or quickstart.prediction_key
    return httpx.post(route(quickstart, **parts), content=data, headers=headers, timeout=60)


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"code", "message"} and body["message"], body
    return response.status_code, body["code"]


def test_make_run_prints_a_working_curl_line(quickstart):
    curl = next(block for block in quickstart.output.split("\n\n") if block.strip().startswith("curl"))
    result = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout)["predictions"][0]["tagName"] == "Hemlock", result.stdout + result.stderr


def test_the_official_sdk_classifies_the_quickstart_photo(quickstart):
    client = predictor(quickstart)
    stored = client.classify_image(quickstart.project_uid, quickstart.publish_name, TEST_IMAGE)
    unstored = client.classify_image_with_no_store(quickstart.project_uid, quickstart.publish_name, TEST_IMAGE)
    with serving({"hemlock.jpg": TEST_IMAGE}) as base:
        by_url = client.classify_image_url(quickstart.project_uid, quickstart.publish_name, f"{base}/hemlock.jpg")
        by_url_unstored = client.classify_image_url_with_no_store(quickstart.project_uid, quickstart.publish_name,
                                                                  f"{base}/hemlock.jpg")
    for result in (stored, unstored, by_url, by_url_unstored):
        assert result.project == quickstart.project_uid
        assert [p.tag_name for p in result.predictions] == ["Hemlock", "Japanese_Cherry"]
        assert result.predictions[0].probability > 0.5
        assert result.predictions[0].tag_id == dataset.tag_id(quickstart.project_uid, "Hemlock")
    assert stored.predictions[0].probability == pytest.approx(by_url.predictions[0].probability, abs=1e-6)
    cherry = client.classify_image(quickstart.project_uid, quickstart.publish_name, CHERRY)
    assert cherry.predictions[0].tag_name == "Japanese_Cherry"


def test_the_sdk_raises_custom_vision_errors(quickstart):
    with pytest.raises(CustomVisionErrorException) as error:
        predictor(quickstart).classify_image(quickstart.project_uid, "no-such-name", TEST_IMAGE)
    assert error.value.error.code == "NotFoundIteration"


def test_the_answer_has_custom_vision_shape_on_v3_0_and_v3_1_in_any_case(quickstart):
    for version, path in (("v3.1", route(quickstart)),
                          ("v3.0", route(quickstart, version="v3.0").replace("/Prediction/", "/PREDICTION/")
                           .replace("/classify/", "/Classify/").replace("/image", "/Image"))):
        files = {"imageData": ("test_image.jpg", TEST_IMAGE, "image/jpeg")}
        response = httpx.post(path, files=files, headers={"Prediction-Key": quickstart.prediction_key}, timeout=60)
        assert response.status_code == 200, (version, response.text)
        body = response.json()
        assert set(body) == {"id", "project", "iteration", "created", "predictions"}
        uuid.UUID(body["id"]), uuid.UUID(body["iteration"])
        assert body["project"] == quickstart.project_uid
        assert [set(p) for p in body["predictions"]] == [{"probability", "tagId", "tagName", "tagType"}] * 2
        assert all(p["tagType"] == "Regular" for p in body["predictions"])
        probabilities = [p["probability"] for p in body["predictions"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1, abs=1e-4)


def test_stored_predictions_keep_the_image_and_the_answer_nostore_keeps_nothing(quickstart, platform):
    store = ObjectStore(platform.s3_settings())
    unique = io.BytesIO()
    Image.open(io.BytesIO(TEST_IMAGE)).save(unique, format="PNG")  # bytes no other test sent
    kept = post_image(quickstart, unique.getvalue()).json()
    kept_key = TREES.prediction_key(datetime.fromisoformat(kept["created"]), kept["id"])
    skipped = post_image(quickstart, unique.getvalue() + b"\0", source="image/nostore").json()
    deadline = time.monotonic() + 10
    while not store.exists(TREES.bucket, kept_key) and time.monotonic() < deadline:
        time.sleep(0.2)  # written after the answer has left
    record = dataset.PredictionRecord.model_validate_json(store.get(TREES.bucket, kept_key))
    assert (record.project, record.iteration, record.published_name) == (
        quickstart.project_uid, kept["iteration"], quickstart.publish_name)
    assert [p.tag_name for p in record.predictions] == [p["tagName"] for p in kept["predictions"]]
    assert store.get(TREES.bucket, TREES.image_key(record.sha256)) == unique.getvalue()
    assert not [k for k in store.keys(TREES.bucket, TREES.prefix + "predictions/") if skipped["id"] in k]
    assert not store.exists(TREES.bucket, TREES.image_key(dataset.content_hash(unique.getvalue() + b"\0")))


def test_keys_open_only_their_own_namespace(quickstart, platform):
    kubevision = str(Path(sys.executable).parent / "kubevision")
    shown = subprocess.run([kubevision, "local", "keys", "-n", "team-b", "--data-dir", str(platform.data_dir)],
                           capture_output=True, text=True, check=True).stdout
    team_b = next(line.split()[-1] for line in shown.splitlines() if line.startswith("Prediction-Key"))
    missing_project = str(uuid.uuid4())
    deadline = time.monotonic() + 10
    while error_of(post_image(quickstart, TEST_IMAGE, key=team_b)) == (401, "Unauthorized"):
        assert time.monotonic() < deadline, "the gateway did not pick up the new namespace's key"
        time.sleep(0.2)
    foreign = post_image(quickstart, TEST_IMAGE, key=team_b)
    unknown = post_image(quickstart, TEST_IMAGE, key=team_b, project=missing_project)
    assert error_of(foreign) == error_of(unknown) == (404, "NotFoundProject")
    assert foreign.json()["message"].replace(quickstart.project_uid, "X") == \
        unknown.json()["message"].replace(missing_project, "X")
    assert error_of(post_image(quickstart, TEST_IMAGE, key=None)) == (401, "Unauthorized")
    assert error_of(post_image(quickstart, TEST_IMAGE, key="0" * 32)) == (401, "Unauthorized")


def test_bad_images_and_requests_get_custom_vision_errors(quickstart):
    bomb = io.BytesIO()
    Image.new("1", (10_000, 5_000)).save(bomb, format="PNG")
    assert error_of(post_image(quickstart, b"")) == (400, "BadRequestImageStream")
    assert error_of(post_image(quickstart, b"not an image")) == (400, "BadRequestImageFormat")
    assert error_of(post_image(quickstart, b"\xff" * (4 * 1024 * 1024 + 1))) == (400, "BadRequestImageSizeBytes")
    assert error_of(post_image(quickstart, bomb.getvalue())) == (400, "BadRequestImageDimensions")
    assert error_of(post_image(quickstart, TEST_IMAGE, kind="detect")) == (400, "BadRequestNotSupported")
    assert error_of(post_image(quickstart, TEST_IMAGE, project="not-a-uuid")) == (404, "NotFoundProject")
    wrong_type = httpx.post(route(quickstart), content=b"{}", timeout=30, headers={
        "Content-Type": "application/json", "Prediction-Key": quickstart.prediction_key})
    assert error_of(wrong_type) == (415, "UnsupportedMediaType")
    no_file = httpx.post(route(quickstart), data={"imageData": "text"}, files={"other": ("x", b"", "text/plain")},
                         headers={"Prediction-Key": quickstart.prediction_key}, timeout=30)
    assert error_of(no_file)[0] == 400


def test_bad_image_urls_get_custom_vision_errors(quickstart):
    headers = {"Prediction-Key": quickstart.prediction_key}

    def by_url(url) -> tuple[int, str]:
        return error_of(httpx.post(route(quickstart, "url"), json={"url": url}, headers=headers, timeout=60))

    with serving({"notes.txt": b"plain text", "hemlock.jpg": TEST_IMAGE}) as base:
        assert by_url(f"{base}/missing.jpg") == (400, "BadRequestImageUrl")
        assert by_url(f"{base}/notes.txt") == (400, "BadRequestImageFormat")
        assert by_url(f"{base}/huge") == (400, "BadRequestImageSizeBytes")
        assert by_url(f"{base}/redirect/redirect/redirect/redirect/hemlock.jpg") == (400, "BadRequestImageUrl")
        redirected = httpx.post(route(quickstart, "url"), json={"url": f"{base}/redirect/hemlock.jpg"},
                                headers=headers, timeout=60)
        assert redirected.json()["predictions"][0]["tagName"] == "Hemlock"
    assert by_url("ftp://127.0.0.1/hemlock.jpg") == (400, "BadRequestImageUrl")
    assert by_url("http://169.254.169.254/latest/meta-data/") == (400, "BadRequestImageUrl")  # cloud metadata
    assert by_url("http://no-such-host.invalid/x.jpg") == (400, "BadRequestImageUrl")
    for malformed in ("http://127.0.0.1:99999/x.jpg", "http://127.0.0.1:http/x.jpg", "http://a..b/x.jpg",
                      "http://[::1/x.jpg", "http://user@127.0.0.1/x.jpg", "http://" + "a" * 64 + ".com/x.jpg",
                      "http://exa mple.com/x.jpg", "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/"):
        assert by_url(malformed) == (400, "BadRequestImageUrl"), malformed
    assert error_of(httpx.post(route(quickstart, "url"), content=b"{", headers={
        **headers, "Content-Type": "application/json"}, timeout=30)) == (400, "BadRequest")


def test_image_urls_never_reach_the_platforms_own_services(quickstart, platform):
    """Local mode opens loopback image URLs, but not the platform's own ports: S3's filer would hand out any
    namespace's stored image without credentials, its admin and master ports take commands. Refused however the
    address is written; a user's own web server on another port is still fetched."""
    headers = {"Prediction-Key": quickstart.prediction_key}

    def by_url(url) -> httpx.Response:
        return httpx.post(route(quickstart, "url"), json={"url": url}, headers=headers, timeout=60)

    state = platform.load_state()
    stored = next(iter(ObjectStore(platform.s3_settings()).keys(TREES.bucket, TREES.prefix + "images/")))
    filer = state.services["s3"].ports["filer.port"]
    urls = [f"http://{host}:{filer}/buckets/{TREES.bucket}/{stored}"  # a stored image, no credentials asked
            for host in ("127.0.0.1", "localhost", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "127.0.0.2")]
    urls += [record.health_url for record in state.services.values()]  # each answers 200
    urls += [f"http://127.0.0.1:{port}/" for record in state.services.values() for port in record.ports.values()]
    assert {"admin.port", "filer.port", "master.port", "volume.port"} <= set(state.services["s3"].ports)
    assert {"s3", "mlflow", "triton", "controller", "gateway"} == set(state.services)
    for url in urls:
        refused = by_url(url)
        assert error_of(refused) == (400, "BadRequestImageUrl"), url
        assert "not reachable" in refused.json()["message"], url
    with serving({"hemlock.jpg": TEST_IMAGE}) as base:
        assert by_url(f"{base}/hemlock.jpg").json()["predictions"][0]["tagName"] == "Hemlock"


def gateway_endpoints(platform) -> dict[str, str]:
    (gateway,) = (s for s in platform.status() if s.name == "gateway")
    return gateway.endpoints


def test_health_readiness_and_metrics(platform, quickstart):
    assert httpx.get(f"{quickstart.gateway}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{quickstart.gateway}/readyz").status_code == 200
    post_image(quickstart, TEST_IMAGE, source="image/nostore")
    text = httpx.get(gateway_endpoints(platform)["metrics"]).text
    template = "/customvision/v3.1/prediction/{project_id}/classify/iterations/{published_name}/image/nostore"
    assert f'kubevision_gateway_requests_total{{route="{template}",status="200"}}' in text
    assert "kubevision_gateway_triton_seconds_count" in text


def test_metrics_have_a_port_of_their_own_and_the_api_docs_stay_public(platform):
    """The API's port is what callers reach; the metrics port is for the platform's Prometheus alone (a network
    policy keeps it in the cluster). The API's description is public, as Azure's is."""
    endpoints = gateway_endpoints(platform)
    api = endpoints["api"]
    assert httpx.get(f"{api}/healthz").status_code == 200
    assert httpx.get(f"{api}/metrics").status_code == 404
    assert urlsplit(endpoints["metrics"]).port != urlsplit(api).port
    assert 'kubevision_gateway_requests_total{route="/healthz",status="200"}' in httpx.get(endpoints["metrics"]).text
    assert httpx.get(f"{api}/openapi.json").json()["info"]["title"] == "KubeVision Custom Vision API"
    assert httpx.get(f"{api}/docs").status_code == 200
