"""schemathesis fuzzes the gateway's own OpenAPI document with a valid key: whatever it sends, the gateway answers
as its document says, and never with a server error; a refused training request changes nothing."""

from __future__ import annotations

import httpx
import schemathesis
from conftest import EXAMPLES
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from kubevision.local import api_keys

IMAGE_ROUTES = ("/image", "/image/nostore")
CHERRY = next((EXAMPLES / "samples" / "Japanese_Cherry").glob("*.jpg")).read_bytes()


def test_the_gateway_answers_every_request_as_documented(quickstart):
    schema = schemathesis.openapi.from_url(f"{quickstart.gateway}/openapi.json")
    operations = [op for op in (result.ok() for result in schema.get_all_operations()) if "/prediction/" in op.path]
    assert len(operations) == 16  # {v3.0, v3.1} x {classify, detect} x {image, url} x {stored, nostore}
    for operation in operations:
        fuzz(operation, quickstart)


def fuzz(operation, quickstart) -> None:
    # Image routes get the published project, so that fuzzed bodies reach decoding and Triton. URL routes keep fuzzed
    # ids: with a real project the gateway would look up fuzzed host names, and no test sends traffic off this machine.
    known = operation.path.endswith(IMAGE_ROUTES)

    @given(case=operation.as_strategy())
    @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def call(case):
        if known:
            case.path_parameters = {"project_id": quickstart.project_uid, "published_name": quickstart.publish_name}
        # Every other check runs. A body the schema allows (any bytes) may still be no image: 400 is right.
        case.call_and_validate(headers={"Prediction-Key": quickstart.prediction_key}, timeout=30,
                               excluded_checks=[positive_data_acceptance])

    call()


def test_the_training_routes_answer_as_documented_and_refusals_change_nothing(quickstart, platform):
    """Every v3.3 training route but the deletes, training and publishing, fuzzed on a real project: no server
    error, every answer as documented, and a refused request leaves the project's labels as they were."""
    headers = {"Training-Key": api_keys.ensure(platform.data_dir, "default")["trainingKey"]}
    base = f"{quickstart.gateway}/customvision/v3.3/training"
    project = httpx.post(f"{base}/projects", params={"name": "Fuzzed"}, headers=headers, timeout=60).json()["id"]
    tag = httpx.post(f"{base}/projects/{project}/tags", params={"name": "fuzz"}, headers=headers, timeout=60).json()
    httpx.post(f"{base}/projects/{project}/images", params={"tagIds": tag["id"]}, headers=headers, timeout=60,
               files={"imageData": ("a.jpg", CHERRY, "image/jpeg")}).raise_for_status()

    def labels() -> tuple:
        return tuple(httpx.get(f"{base}/projects/{project}/{path}", headers=headers, timeout=60).json()
                     for path in ("images/count", "images/tagged/count", "tags"))

    schema = schemathesis.openapi.from_url(f"{quickstart.gateway}/openapi.json")
    operations = [op for op in (result.ok() for result in schema.get_all_operations())
                  if op.path.startswith("/customvision/v3.3/training/") and op.method.upper() != "DELETE"
                  and not op.path.endswith(("/train", "/publish"))]
    assert len(operations) > 25
    for operation in operations:
        # URL routes keep fuzzed project ids, refused before any fetch: no test sends traffic off this machine.
        real = "{project_id}" in operation.path and not operation.path.endswith(("/images/urls", "/quicktest/url"))
        fuzz_training(operation, project if real else None, headers, labels)


def fuzz_training(operation, project: str | None, headers: dict[str, str], labels) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def call(case):
        if project:
            case.path_parameters = {**(case.path_parameters or {}), "project_id": project}
        before = labels()
        response = case.call(headers=headers, timeout=60)
        case.validate_response(response, excluded_checks=[positive_data_acceptance])
        if response.status_code >= 400:
            assert labels() == before, (case.method, case.formatted_path, response.text)

    call()
