"""The gateway under a bounded mix of hostile requests, as `kubevision local up` runs it (its own process): oversized
and slow bodies with and without keys, malformed image URLs, hostile names and another namespace's ids, from a few
clients at once. Its peak resident memory stays well under the chart's gateway limit, every hostile request gets a
4xx (never a 5xx), and a legitimate team in another namespace keeps uploading and predicting throughout, every image
it stored readable after."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import yaml
from conftest import EXAMPLES
from PIL import Image

from kubevision.core.images import MAX_IMAGE_BYTES
from kubevision.core.labelstore.store import MAX_BATCH
from kubevision.local import api_keys

CHART_VALUES = Path(__file__).resolve().parents[2] / "charts" / "kubevision" / "values.yaml"
TEST_IMAGE = (EXAMPLES / "samples" / "test" / "test_image.jpg").read_bytes()
HOSTILE_SECONDS = 25  # the mix repeats for this long (slow bodies wait out the gateway's 10 s body timeout)
HEADROOM = 0.75  # the peak stays under three quarters of the limit
BATCH_GROWTH = 128 * 2**20  # what the largest batch may add to the gateway's resident set (a tenth of the batch)
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def memory_limit() -> int:
    """The chart's memory limit of the gateway's container, in bytes."""
    limit = str(yaml.safe_load(CHART_VALUES.read_text())["gateway"]["resources"]["limits"]["memory"])
    unit = next((u for u in UNITS if limit.endswith(u)), "")
    return int(limit.removesuffix(unit)) * UNITS.get(unit, 1)


class PeakMemory:
    """The kernel's peak resident set (VmHWM) of a process, from a reset on: no spike between samples is missed."""

    def __init__(self, pid: int):
        self.status = Path(f"/proc/{pid}/status")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current resident set

    def read(self, field: str = "VmHWM") -> int:
        line = next(line for line in self.status.read_text().splitlines() if line.startswith(field + ":"))
        return int(line.split()[1]) * 1024


def unique_png(number: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), (number % 256, number // 256 % 256, 99)).save(buffer, format="PNG")
    return buffer.getvalue()


class Raw:
    """HTTP spoken by hand, for what no client library sends: bodies announced and never sent, or sent slowly."""

    def __init__(self, base: str):
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)

    async def status(self, head: str, body: bytes = b"", trickle: float | None = None) -> int:
        """The status answered to `head` and the start of a body; with `trickle`, one more byte every `trickle`
        seconds until the answer comes."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body)
            await writer.drain()

            async def dribble():
                while True:
                    await asyncio.sleep(trickle)
                    writer.write(b"x")

            dribbling = asyncio.create_task(dribble()) if trickle else None
            try:
                line = await asyncio.wait_for(reader.readline(), 60)
            finally:
                if dribbling:
                    dribbling.cancel()
            return int(line.split()[1]) if line else 0  # 0: closed without an answer, which fails the test too
        finally:
            writer.close()


def head(path: str, length: int | None, content_type: str = "application/json", key: tuple[str, str] | None = None,
         chunked: bool = False) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", f"Content-Type: {content_type}"]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    if key:
        lines.append(f"{key[0]}: {key[1]}")
    return "\n".join(lines)


def batch_refused(response: httpx.Response) -> bool:
    """A batch route answers each image: a batch whose every image was refused is a refusal too."""
    if response.status_code != 200 or not isinstance(body := response.json(), dict) or "images" not in body:
        return False
    return not body["isBatchSuccessful"] and not any(i["status"].startswith("OK") for i in body["images"])


async def wait_for_key(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 15  # local mode's gateway reads new keys within a second
    while (await http.get(url, headers=headers)).status_code == 401:
        assert time.monotonic() < deadline, "the gateway never read the new namespace's keys"
        await asyncio.sleep(0.2)


async def test_hostile_requests_get_4xx_in_bounded_memory_while_another_team_works(quickstart, platform):
    gateway_pid = next(s.pid for s in platform.status() if s.name == "gateway")
    team = api_keys.ensure(platform.data_dir, "default")  # the quickstart's namespace: the legitimate team
    intruder = api_keys.ensure(platform.data_dir, "intruder")
    training = f"{quickstart.gateway}/customvision/v3.3/training"
    prediction = (f"{quickstart.gateway}/customvision/v3.1/prediction/{quickstart.project_uid}/classify/iterations/"
                  f"{quickstart.publish_name}/image")
    team_key, intruder_key = {"Training-Key": team["trainingKey"]}, {"Training-Key": intruder["trainingKey"]}
    raw = Raw(quickstart.gateway)
    answers: list[tuple[str, int | str]] = []  # (hostile request, status or what went wrong)

    async with httpx.AsyncClient(timeout=60) as http:
        await wait_for_key(http, f"{training}/projects", intruder_key)
        legit = (await http.post(f"{training}/projects", params={"name": f"Legit {uuid.uuid4().hex[:6]}"},
                                 headers=team_key)).json()["id"]
        own = (await http.post(f"{training}/projects", params={"name": f"Intruder {uuid.uuid4().hex[:6]}"},
                               headers=intruder_key)).json()["id"]
        team_iteration = next(iter((await http.get(f"{training}/projects/{quickstart.project_uid}/iterations",
                                                   headers=team_key)).json()))["id"]

        async def call(label: str, method: str, url: str, **options) -> None:
            try:  # a connection of its own: a hostile client shares none with the legitimate one
                async with httpx.AsyncClient(timeout=60) as own_connection:
                    response = await own_connection.request(method, url, **options)
            except httpx.TransportError as error:  # no answer at all: listed with the failures
                answers.append((label, repr(error)))
                return
            answers.append((label, 400 if batch_refused(response) else response.status_code))

        async def by_hand(label: str, *args, **options) -> None:
            try:
                answers.append((label, await raw.status(*args, **options)))
            except OSError as error:
                answers.append((label, repr(error)))

        # One round of the mix: each entry a hostile request; the rounds repeat until HOSTILE_SECONDS have passed.
        training_path, prediction_path = training.removeprefix(quickstart.gateway), prediction.removeprefix(
            quickstart.gateway)
        images_path = f"{training_path}/projects/{own}/images"
        part = b'--b\r\nContent-Disposition: form-data; name="imageData"\r\n\r\nx\r\n'
        too_many = part * 65
        rounds = [
            # Oversized bodies, without a key and with one.
            lambda: by_hand("300 MB JSON, no key", head(f"{training_path}/projects?name=x", 300_000_000)),
            lambda: by_hand("300 MB image, no key", head(prediction_path, 300_000_000, "application/octet-stream"),
                            b"\xff" * 65536),
            lambda: by_hand("300 MB JSON, a key", head(f"{training_path}/projects?name=x", 300_000_000,
                                                        key=("Training-Key", intruder["trainingKey"]))),
            lambda: by_hand("endless chunked JSON", head(f"{training_path}/projects/{own}/images/urls", None,
                                                          key=("Training-Key", intruder["trainingKey"]),
                                                          chunked=True),
                            b"200001\r\n" + b" " * (2**20 + 1)),  # a 2 MiB chunk, cut off past the limit
            lambda: by_hand("a batch past 385 MB", head(images_path, 500_000_000, "multipart/form-data; boundary=b",
                                                        key=("Training-Key", intruder["trainingKey"]))),
            lambda: by_hand("65 parts", head(images_path, len(too_many) + 10**6, "multipart/form-data; boundary=b",
                                             key=("Training-Key", intruder["trainingKey"])), too_many),
            lambda: by_hand("5 MB prediction", head(prediction_path, 5 * 2**20, "application/octet-stream",
                                                    key=("Prediction-Key", intruder["predictionKey"]))),
            lambda: call("50 MB of base64 files", "POST", f"{training}/projects/{own}/images/files",
                         headers=intruder_key, content=b'{"images": [{"contents": "' + b"A" * 50_000_000 + b'"}]}'),
            # Slow bodies, without a key and with one.
            lambda: by_hand("slow body, no key", head(f"{training_path}/projects?name=x", 1000), b"{", trickle=1),
            lambda: by_hand("stalled body, a key", head(f"{training_path}/projects?name=x", 1000,
                                                        key=("Training-Key", intruder["trainingKey"])), b"{"),
            # Malformed image URLs.
            lambda: call("malformed URLs", "POST", f"{training}/projects/{own}/images/urls", headers=intruder_key,
                         json={"images": [{"url": "http://[::1"}, {"url": "http://a:99999/"}]}),
            lambda: call("malformed prediction URL", "POST", prediction.removesuffix("/image") + "/url",
                         headers={"Prediction-Key": intruder["predictionKey"]}, json={"url": "http://[::1"}),
            # Hostile names.
            lambda: call("project name with control characters", "POST", f"{training}/projects",
                         headers=intruder_key, params={"name": "evil\x00\x1b[2J\r\nname"}),
            lambda: call("tag name with a line separator", "POST", f"{training}/projects/{own}/tags",
                         headers=intruder_key, params={"name": "tag\u2028\u2029\x85name"}),
            # The other namespace's ids.
            lambda: call("their project", "GET", f"{training}/projects/{quickstart.project_uid}",
                         headers=intruder_key),
            lambda: call("their iteration", "GET",
                         f"{training}/projects/{quickstart.project_uid}/iterations/{team_iteration}",
                         headers=intruder_key),
            lambda: call("their images", "GET", f"{training}/projects/{legit}/images", headers=intruder_key),
            lambda: call("delete their project", "DELETE", f"{training}/projects/{legit}", headers=intruder_key),
            lambda: call("their published model", "POST", prediction,
                         headers={"Prediction-Key": intruder["predictionKey"]}, content=TEST_IMAGE),
            lambda: call("their stored predictions", "POST",
                         f"{training}/projects/{quickstart.project_uid}/predictions/query", headers=intruder_key,
                         json={"maxCount": 10}),
        ]

        async def hostile(worker: int, stop: float) -> None:
            index = worker
            while time.monotonic() < stop:
                await rounds[index % len(rounds)]()
                index += 3

        async def legitimate(stop: float) -> list[tuple[str, bytes]]:
            stored, number = [], 0
            while time.monotonic() < stop or number < 3:
                data = unique_png(number + 1000 * (uuid.uuid4().int % 1000))
                upload = await http.post(f"{training}/projects/{legit}/images", headers=team_key,
                                         files={"imageData": ("a.png", data, "image/png")})
                assert upload.status_code == 200 and upload.json()["isBatchSuccessful"], upload.text
                stored.append((upload.json()["images"][0]["image"]["id"], data))
                predicted = await http.post(prediction, headers={"Prediction-Key": team["predictionKey"]},
                                            content=TEST_IMAGE)
                assert predicted.status_code == 200 and predicted.json()["predictions"][0]["tagName"] == "Hemlock"
                number += 1
            return stored

        peak = PeakMemory(gateway_pid)
        stop = time.monotonic() + HOSTILE_SECONDS
        *_, stored = await asyncio.gather(*(hostile(worker, stop) for worker in range(3)), legitimate(stop))
        highest = peak.read()

        uris = {}
        for first in range(0, len(stored), 50):
            ids = ",".join(image_id for image_id, _ in stored[first:first + 50])
            images = await http.get(f"{training}/projects/{legit}/images/id", headers=team_key,
                                    params={"imageIds": ids})
            uris.update({image["id"]: image["originalImageUri"] for image in images.json()})
        for image_id, data in stored:
            assert (await http.get(uris[image_id])).content == data
        await http.delete(f"{training}/projects/{legit}", headers=team_key)
        await http.delete(f"{training}/projects/{own}", headers=intruder_key)

    limit = memory_limit()
    print(f"peak resident memory {highest / 2**20:.0f} MiB; {len(answers)} hostile requests, {len(stored)} uploads")
    assert highest < HEADROOM * limit, f"peak {highest / 2**20:.0f} MiB of a {limit / 2**20:.0f} MiB limit"
    assert len({label for label, _ in answers}) == len(rounds)  # every kind of hostile request was sent
    not_refused = sorted({(label, str(status)) for label, status in answers
                          if not isinstance(status, int) or not 400 <= status < 500})
    print("\n".join(f"not refused: {label}: {status}" for label, status in not_refused))
    assert not not_refused, not_refused


def largest_png() -> bytes:
    """Random pixels stored uncompressed: a real image just under the 6 MiB limit."""
    side = 1446
    pixels = np.random.default_rng(1446).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=0)
    assert MAX_IMAGE_BYTES - 32 * 1024 < len(buffer.getvalue()) <= MAX_IMAGE_BYTES
    return buffer.getvalue()


def test_the_largest_legal_batch_stays_in_bounded_memory(quickstart, platform):
    """64 images of 6 MiB (383 MiB of multipart) in one create_images_from_data: each part is parsed as it arrives
    and waits on disk, and the batch is stored a few images at a time."""
    gateway_pid = next(s.pid for s in platform.status() if s.name == "gateway")
    key = {"Training-Key": api_keys.ensure(platform.data_dir, "default")["trainingKey"]}
    training = f"{quickstart.gateway}/customvision/v3.3/training"
    image = largest_png()
    part = b'--batch\r\nContent-Disposition: form-data; name="imageData"\r\nContent-Type: image/png\r\n\r\n'
    body = (part + image + b"\r\n") * MAX_BATCH + b"--batch--\r\n"
    with httpx.Client(timeout=300) as http:
        project = http.post(f"{training}/projects", params={"name": f"Largest {uuid.uuid4().hex[:6]}"},
                            headers=key).json()["id"]
        peak = PeakMemory(gateway_pid)
        before = peak.read("VmRSS")
        answer = http.post(f"{training}/projects/{project}/images", content=body,
                           headers={**key, "Content-Type": "multipart/form-data; boundary=batch"})
        highest = peak.read()
        assert answer.status_code == 200, answer.text
        statuses = [i["status"] for i in answer.json()["images"]]
        assert statuses == ["OK"] + ["OKDuplicate"] * (MAX_BATCH - 1)  # one image, sent 64 times
        stored = http.get(answer.json()["images"][0]["image"]["originalImageUri"]).content
        http.delete(f"{training}/projects/{project}", headers=key)
    assert stored == image
    limit = memory_limit()
    print(f"resident memory {before / 2**20:.0f} MiB, peak {highest / 2**20:.0f} MiB for {len(body) / 2**20:.0f} MiB "
          "of images")
    assert highest < HEADROOM * limit, f"peak {highest / 2**20:.0f} MiB of a {limit / 2**20:.0f} MiB limit"
    assert highest - before < BATCH_GROWTH, f"the batch took {(highest - before) / 2**20:.0f} MiB"
