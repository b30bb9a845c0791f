"""What a request may cost the gateway before it is answered: no body is read without a valid key, a body over its
route's limit is refused as soon as its Content-Length or its bytes say so (a batch at its 65th part, an image at
its limit's next byte), and a client that sends its headers or body too slowly gets 408 and loses its connection.
Each test speaks raw HTTP to a real server, so that it sees when the answer comes: before the body it never sent."""

from __future__ import annotations

import asyncio
import json

import pytest
from gateway_harness import running_gateway

from kubevision.core.settings import GatewaySettings, S3Settings
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.catalog import Catalog, NamespaceKeys, Project
from kubevision.gateway.http import server
from kubevision.gateway.main import create_app

PROJECT = Project("5a0c6f0e-0000-4000-8000-000000000002", "team-a", "trees", "Classification", "limits", "trees/")
PREDICTION_KEY, TRAINING_KEY = "p" * 32, "t" * 32
TRAINING = "/customvision/v3.3/training"
IMAGE_ROUTE = f"/customvision/v3.1/prediction/{PROJECT.uid}/classify/iterations/v1/image"
ANSWER_SECONDS = 5  # far below any body a test leaves unsent: an answer within it came before the body


class FixedSource(CatalogSource):
    def __init__(self):
        super().__init__()
        self.catalog = Catalog({PROJECT.uid: PROJECT}, {}, {"team-a": NamespaceKeys(PREDICTION_KEY, TRAINING_KEY)})

    async def _run(self) -> None:
        self.ready = True


@pytest.fixture
def gateway(tmp_path):
    """Starts a gateway with these settings; yields (host, port)."""

    def start(**settings):
        options = GatewaySettings(mode="kubernetes", data_dir=tmp_path, max_image_bytes=100_000, **settings)
        return running_gateway(create_app(options, FixedSource(), S3Settings()), options)

    return start


async def exchange(base: str, head: str, body: bytes = b"", then=None) -> tuple[int, dict, bytes]:
    """Sends a request head and the start of its body, optionally runs `then(writer)`, and reads the answer:
    (status, error body, what followed it: b"" when the server closed the connection)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        sending = asyncio.create_task(then(writer)) if then else None
        status_line = await asyncio.wait_for(reader.readline(), ANSWER_SECONDS)
        assert status_line, "the server closed the connection without an answer"
        headers = {}
        while (line := await asyncio.wait_for(reader.readline(), ANSWER_SECONDS)) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        answer = json.loads(await reader.readexactly(int(headers["content-length"])))
        after = b""
        if headers.get("connection") == "close":
            after = await asyncio.wait_for(reader.read(1), ANSWER_SECONDS)
        if sending:
            sending.cancel()
        return int(status_line.split()[1]), answer, after
    finally:
        writer.close()


def post(path: str, length: int, content_type: str = "application/json", **headers) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", f"Content-Type: {content_type}", f"Content-Length: {length}"]
    return "\n".join(lines + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]) + "\n"


async def test_no_body_is_read_before_the_key_is_checked(gateway):
    async with gateway() as base:
        # 300 MB announced, none sent: the answer comes anyway, and from the key alone.
        assert await exchange(base, post(f"{TRAINING}/projects?name=x", 300_000_000)) == (
            401, {"code": "Unauthorized", "message": "Access denied: the Training-Key header is missing."}, b"")
        status, error, _ = await exchange(base, post(f"{TRAINING}/projects?name=x", 300_000_000,
                                                     Training_Key="x" * 32))
        assert (status, error["code"]) == (401, "Unauthorized")
        url_route = IMAGE_ROUTE.replace("/image", "/url")
        status, error, _ = await exchange(base, post(url_route, 300_000_000, Prediction_Key=TRAINING_KEY))
        assert (status, error["message"]) == (401, "Access denied: the Prediction-Key is not valid.")


async def test_a_json_body_over_its_limit_is_refused_as_soon_as_it_is_known(gateway):
    async with gateway() as base:
        status, error, _ = await exchange(base, post(f"{TRAINING}/projects?name=x", 2**20 + 1,
                                                     Training_Key=TRAINING_KEY))
        assert (status, error["code"]) == (413, "BadRequest") and f"{2**20} bytes" in error["message"]
        # No length announced: refused at the first byte past the limit, and the connection closed.
        chunked = (f"POST {TRAINING}/projects?name=x HTTP/1.1\nHost: gateway\nContent-Type: application/json\n"
                   f"Training-Key: {TRAINING_KEY}\nTransfer-Encoding: chunked\n")
        assert await exchange(base, chunked, f"{2**20 + 1:x}\r\n".encode() + b" " * (2**20 + 1) + b"\r\n") == (
            413, {"code": "BadRequest", "message": f"The body is over the limit of {2**20} bytes."}, b"")


def multipart(parts: int, size: int) -> tuple[str, bytes]:
    boundary = "limits-boundary"
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"imageData\"\r\n\r\n".encode()
                    + b"\xff" * size + b"\r\n" for _ in range(parts))
    return f"multipart/form-data; boundary={boundary}", body


async def test_a_multipart_body_is_refused_at_its_first_part_too_many_or_too_large(gateway):
    async with gateway() as base:
        content_type, body = multipart(65, 10)
        head = post(f"{TRAINING}/projects/{PROJECT.uid}/images", len(body) + 1_000_000, content_type,
                    Training_Key=TRAINING_KEY)
        status, error, _ = await exchange(base, head, body)  # a megabyte announced is never sent
        assert (status, error["code"]) == (400, "BadRequestImageBatch")
        content_type, body = multipart(1, 100_001)
        head = post(IMAGE_ROUTE, len(body) + 10_000, content_type, Prediction_Key=PREDICTION_KEY)
        status, error, _ = await exchange(base, head, body)
        assert (status, error["code"]) == (400, "BadRequestImageSizeBytes")


async def test_a_stalled_or_trickling_body_gets_408_and_its_connection_closed(gateway):
    async with gateway(body_idle_seconds=0.5, body_timeout_seconds=2) as base:
        head = post(f"{TRAINING}/projects?name=x", 100, Training_Key=TRAINING_KEY)
        status, error, after = await exchange(base, head, b"{")
        assert (status, error["code"], after) == (408, "BadRequest", b"")

        async def trickle(writer):
            for _ in range(99):
                await asyncio.sleep(0.2)
                writer.write(b" ")

        started = asyncio.get_running_loop().time()
        status, error, after = await exchange(base, head, b"{", then=trickle)
        assert (status, after) == (408, b"") and asyncio.get_running_loop().time() - started < 4


async def test_headers_sent_too_slowly_get_408_and_the_connection_closed(gateway):
    async with gateway(header_timeout_seconds=0.5) as base:

        async def trickle(writer):
            for _ in range(50):
                await asyncio.sleep(0.2)
                writer.write(b"X-Slow: 1\r\n")

        started = asyncio.get_running_loop().time()
        status, error, after = await exchange(base, "GET /healthz HTTP/1.1\nHost: gateway", then=trickle)
        assert (status, error["code"], after) == (408, "BadRequest", b"")
        assert asyncio.get_running_loop().time() - started < 3
        # A prompt client is served as before, on a connection of its own.
        status, _, _ = await exchange(base, post(f"{TRAINING}/projects/{PROJECT.uid}/images", 0,
                                                 Training_Key="wrong"))
        assert status == 401


async def test_an_idle_keep_alive_connection_gets_no_stray_answer_and_serves_the_next_request(gateway):
    """Between requests a connection is idle, not slow: nothing is written to it (a 408 would be read as the answer
    to the client's next request), and the next request on it is served. The keep-alive outlasts common clients'
    pools, so that the client closes an idle connection before the server does."""
    async with gateway(header_timeout_seconds=0.5) as base:
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for _ in range(2):
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
                await writer.drain()
                assert (await asyncio.wait_for(reader.readline(), ANSWER_SECONDS)).split()[1] == b"200"
                headers = {}
                while (line := await asyncio.wait_for(reader.readline(), ANSWER_SECONDS)) != b"\r\n":
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers["content-length"]))
                with pytest.raises(TimeoutError):  # idle for three head deadlines: nothing comes, nothing closes
                    await asyncio.wait_for(reader.read(1), 1.5)
        finally:
            writer.close()
    assert server.KEEP_ALIVE_SECONDS > 90  # Go's pools keep an idle connection 90 s, .NET's 60 s, httpx's 5 s
