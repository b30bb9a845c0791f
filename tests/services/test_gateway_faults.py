"""Faults between the gateway and what it calls: Triton refusing, stalling or not holding the model answers 503 with
Retry-After; an image URL into a private network is refused unless the setting opens it."""

from __future__ import annotations

import io
import socket
import threading

import httpx
import pytest
from gateway_harness import running_gateway
from image_server import serving
from PIL import Image

from kubevision.core.settings import GatewaySettings
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.catalog import Catalog, NamespaceKeys, Project, PublishedModel
from kubevision.gateway.main import create_app
from kubevision.local.process import free_port

PROJECT = Project("5a0c6f0e-0000-4000-8000-000000000001", "team-a", "trees", "Classification", "faults",
                  "team-a/trees/")
KEY = "k" * 32


class FixedSource(CatalogSource):
    """A catalog given by the test: what a watch would have built."""

    def __init__(self, endpoint: str):
        super().__init__()
        model = PublishedModel("v1", "iteration-uid", "trees-1", endpoint, "s3://kubevision-models/none/trees-1/")
        self.catalog = Catalog({PROJECT.uid: PROJECT}, {(PROJECT.uid, "v1"): model}, {"team-a": NamespaceKeys(KEY)})

    async def _run(self) -> None:
        self.ready = True


def photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


async def predict(base: str, source: str = "image", **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60, headers={"Prediction-Key": KEY}) as http:
        return await http.post(f"{base}/customvision/v3.1/prediction/{PROJECT.uid}/classify/iterations/v1/{source}",
                               **kwargs)


@pytest.fixture
def stalled_server():
    """Accepts connections and never answers, as a hung Triton would."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.mark.parametrize("triton", ["refused", "stalled", "without the model"])
async def test_triton_unavailable_is_503_with_retry_after(platform, stalled_server, triton, tmp_path):
    endpoint = {"refused": f"http://127.0.0.1:{free_port()}", "stalled": stalled_server,
                "without the model": f"http://{platform.triton_settings().http_url}"}[triton]
    settings = GatewaySettings(mode="kubernetes", triton_timeout_seconds=1, retry_after_seconds=7, data_dir=tmp_path)
    async with running_gateway(create_app(settings, FixedSource(endpoint), platform.s3_settings())) as base:
        response = await predict(base, content=photo(), headers={"Content-Type": "application/octet-stream"})
        async with httpx.AsyncClient() as http:
            health = await http.get(f"{base}/healthz")
    assert response.status_code == 503 and response.headers["Retry-After"] == "7"
    expected = "ErrorPredictionModelNotCached" if triton == "without the model" else "ErrorPredictionServiceUnavailable"
    assert response.json()["code"] == expected
    assert health.status_code == 200  # liveness never depends on Triton


async def test_image_urls_into_private_networks_are_refused_by_default(platform, tmp_path):
    with serving({"photo.jpg": photo()}) as base_url:
        url = {"json": {"url": f"{base_url}/photo.jpg"}}
        cluster = GatewaySettings(mode="kubernetes", triton_timeout_seconds=1, data_dir=tmp_path)
        async with running_gateway(create_app(cluster, FixedSource(f"http://127.0.0.1:{free_port()}"),
                                              platform.s3_settings())) as base:
            refused = await predict(base, "url", **url)
        opened = cluster.model_copy(update={"allow_loopback_urls": True})
        async with running_gateway(create_app(opened, FixedSource(f"http://127.0.0.1:{free_port()}"),
                                              platform.s3_settings())) as base:
            fetched = await predict(base, "url", **url)
    assert (refused.status_code, refused.json()["code"]) == (400, "BadRequestImageUrl")
    assert "not reachable from this service" in refused.json()["message"]
    assert fetched.status_code == 503  # fetched and decoded; only the (absent) Triton stopped it
