"""docs/gateway.md's advice holds for the pinned SDK: by itself it does not retry a POST answered 503 with
Retry-After; with `allowed_methods = None` on its retry policy it waits and retries."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.prediction.models import CustomVisionErrorException
from msrest.authentication import ApiKeyCredentials

UID = "00000000-0000-4000-8000-000000000000"
PREDICTION = {"id": UID, "project": UID, "iteration": UID, "created": "2026-01-01T00:00:00Z", "predictions": []}


@pytest.fixture
def down_once():
    """A server whose first answer is the gateway's 503 while Triton restarts, and every later one a prediction."""
    calls = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the name http.server calls)
            self.rfile.read(int(self.headers["Content-Length"]))
            calls.append(self.path)
            status, body = (503, {"code": "ErrorPredictionServiceUnavailable", "message": "Triton is restarting"}
                            ) if len(calls) == 1 else (200, PREDICTION)
            data = json.dumps(body).encode()
            self.send_response(status)
            if status == 503:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", calls
    server.shutdown()


def predictor(endpoint: str) -> CustomVisionPredictionClient:
    return CustomVisionPredictionClient(endpoint, ApiKeyCredentials(in_headers={"Prediction-key": "key"}))


def test_the_sdk_retries_a_post_only_when_told_to(down_once):
    endpoint, calls = down_once
    with pytest.raises(CustomVisionErrorException):
        predictor(endpoint).classify_image_url(UID, "v1", "http://example.com/a.png")
    assert len(calls) == 1

    calls.clear()
    told = predictor(endpoint)
    told.config.retry_policy.policy.allowed_methods = None  # as docs/gateway.md says
    assert told.classify_image_url(UID, "v1", "http://example.com/a.png").predictions == []
    assert len(calls) == 2
