"""`kubevision migrate` between two gateways of the run's local platform: one, a process of its own, plays the
source account in its namespace (it speaks the Custom Vision training API v3.3, as Azure does), the platform's own
serves the target namespace. Projects move whole, an interrupted migration resumes without duplicates, a change at
the source moves on the next run (downloading only what is new), and bad credentials, a missing project and a source
that answers garbage are each one clear error that changes nothing."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from image_server import serving
from limits_files import write_limits_text
from local_keys import wait_for_key
from PIL import Image

from kubevision.core.migration import copy, source
from kubevision.core.migration.client import TrainingApi
from kubevision.local import api_keys
from kubevision.local.process import free_port

DETECTION_DOMAIN = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"  # General, ObjectDetection
FOOD_COMPACT = "8882951b-82cd-4c32-970b-d5f8cb8bf6d7"


def photo(number: int) -> bytes:
    image = Image.new("RGB", (40, 30), (number * 53 % 256, 90, 200))
    image.paste((250, 250, number * 31 % 256), (number % 17, number % 11, number % 17 + 9, number % 11 + 9))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class Account:
    """One namespace of the platform, through its training API."""

    def __init__(self, platform, namespace: str, endpoint: str | None = None):
        self.endpoint = endpoint or next(s for s in platform.status() if s.name == "gateway").endpoints["api"]
        self.key = api_keys.ensure(platform.data_dir, namespace)["trainingKey"]
        self.http = httpx.Client(base_url=f"{self.endpoint}/customvision/v3.3/training", timeout=60,
                                 headers={"Training-Key": self.key})
        wait_for_key(self.endpoint, self.key)

    def call(self, method: str, path: str, **kwargs):
        response = self.http.request(method, path, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def upload(self, project: str, images: list[dict], metadata: dict | None = None) -> None:
        for entry in images:
            entry["contents"] = base64.b64encode(entry["contents"]).decode()
        summary = self.call("POST", f"/projects/{project}/images/files",
                            json={"images": images, **({"metadata": metadata} if metadata else {})})
        assert summary["isBatchSuccessful"], summary

    def every(self, path: str) -> list[dict]:
        """Every image of a listing, a page of 256 at a time."""
        found: list[dict] = []
        while page := self.call("GET", path, params={"take": 256, "skip": len(found)}):
            found += page
        return found

    def project_named(self, name: str) -> str:
        return next(p["id"] for p in self.call("GET", "/projects") if p["name"] == name)

    def state(self, project: str) -> dict:
        """What must match after a migration: settings, tags, and each image by its bytes' hash with its labels."""
        body = self.call("GET", f"/projects/{project}")
        tags = sorted((t["name"], t["type"], t.get("description") or "", t["imageCount"])
                      for t in self.call("GET", f"/projects/{project}/tags"))
        images = {}
        for status in ("tagged", "untagged"):
            for image in self.every(f"/projects/{project}/images/{status}"):
                digest = hashlib.sha256(httpx.get(image["originalImageUri"], timeout=60).content).hexdigest()
                assert digest not in images
                images[digest] = (sorted(t["tagName"] for t in image.get("tags") or []),
                                  sorted((r["tagName"], round(r["left"], 4), round(r["top"], 4),
                                          round(r["width"], 4), round(r["height"], 4))
                                         for r in image.get("regions") or []),
                                  image.get("metadata") or {})
        return {"name": body["name"], "description": body["description"], "settings": (
            body["settings"]["domainId"], body["settings"].get("classificationType")), "tags": tags,
            "images": images}


@pytest.fixture(scope="module")
def source_gateway(platform):
    """A gateway process of its own for the source account, beside the platform's (the target's): its API and
    its metrics endpoint."""
    api, metrics = free_port(), free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "kubevision"), "gateway", "--local", "--data-dir", str(platform.data_dir),
         "--host", "127.0.0.1", "--port", str(api), "--metrics-port", str(metrics)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{api}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(endpoint):
            assert process.poll() is None and time.monotonic() < deadline, "the source gateway did not start"
            time.sleep(0.2)
        yield endpoint, f"http://127.0.0.1:{metrics}/metrics"
    finally:
        process.terminate()
        process.wait(30)


def _ready(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def image_downloads(metrics: str) -> float:
    """Original images the source gateway has served through their signed links."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in httpx.get(metrics).text.splitlines()
               if line.startswith('kubevision_gateway_requests_total{route="/customvision/files/')
               and "/images/" in line and 'status="200"' in line)


@pytest.fixture(scope="module")
def accounts(platform, source_gateway):
    """The source (its own gateway) seeded with a multiclass project (a negative tag, metadata, an untagged image)
    and a detection project; the target namespace empty."""
    src = Account(platform, "migrate-source", source_gateway[0])
    dst = Account(platform, "migrate-target")
    classes = src.call("POST", "/projects", params={"name": "Flowers", "description": "what grows",
                                                   "domainId": FOOD_COMPACT, "classificationType": "Multiclass"})
    rose = src.call("POST", f"/projects/{classes['id']}/tags", params={"name": "rose", "description": "red"})["id"]
    tulip = src.call("POST", f"/projects/{classes['id']}/tags", params={"name": "tulip"})["id"]
    nothing = src.call("POST", f"/projects/{classes['id']}/tags", params={"name": "none", "type": "Negative"})["id"]
    src.upload(classes["id"], [{"name": f"{n}.png", "contents": photo(n), "tagIds": [rose]} for n in range(3)],
               metadata={"garden": "north"})
    src.upload(classes["id"], [{"name": f"{n}.png", "contents": photo(n), "tagIds": [tulip]} for n in (3, 4)])
    src.upload(classes["id"], [{"name": "5.png", "contents": photo(5), "tagIds": [nothing]},
                               {"name": "6.png", "contents": photo(6)}])
    boxes = src.call("POST", "/projects", params={"name": "Cutlery", "domainId": DETECTION_DOMAIN})
    fork = src.call("POST", f"/projects/{boxes['id']}/tags", params={"name": "fork"})["id"]
    knife = src.call("POST", f"/projects/{boxes['id']}/tags", params={"name": "knife"})["id"]
    src.upload(boxes["id"], [{"name": f"{n}.png", "contents": photo(n), "regions": [
        {"tagId": fork, "left": 0.1 + n / 100, "top": 0.2, "width": 0.3333333, "height": 0.4},
        {"tagId": knife, "left": 0.5, "top": 0.1, "width": 0.25, "height": 0.7}]} for n in range(10, 13)])
    return src, dst, {"Flowers": classes["id"], "Cutlery": boxes["id"]}


def migrate(kubevision_cli, src: Account, dst: Account, *args: str):
    return kubevision_cli("migrate", "--source-endpoint", src.endpoint, "--source-key", src.key,
                          "--target-endpoint", dst.endpoint, "--target-key", dst.key, *args)


def test_projects_move_whole_resume_after_an_interruption_and_pick_up_changes(accounts, source_gateway, platform,
                                                                            kubevision_cli, monkeypatch, tmp_path):
    src, dst, ids = accounts
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # where the command keeps its resume records
    listed = kubevision_cli("migrate", "--source-endpoint", src.endpoint, "--source-key", src.key, "--all", "--list")
    assert listed.returncode == 0, listed.stderr
    assert "type Classification (Multiclass), domain Food (compact) -> FoodCompact" in listed.stdout
    assert "images 7 (6 tagged, 1 untagged), tags 3, regions 0" in listed.stdout
    assert "images 3 (3 tagged, 0 untagged), tags 2, regions 6" in listed.stdout
    assert dst.call("GET", "/projects") == []  # --list moves nothing

    # Interrupted after a first batch of the classification project was stored.
    monkeypatch.setattr(copy, "BATCH_IMAGES", 2)
    done = 0

    def stop_after_three(n: int) -> None:
        nonlocal done
        done += n
        if done >= 3:
            raise KeyboardInterrupt

    with TrainingApi(src.endpoint, src.key, "source") as s, TrainingApi(dst.endpoint, dst.key, "target") as t, \
            pytest.raises(KeyboardInterrupt):
        copy.migrate_project(s, t, source.read_project(s, ids["Flowers"]), stop_after_three)
    partial = dst.call("GET", f"/projects/{dst.project_named('Flowers')}/images/tagged/count")
    assert 0 < partial < 6

    git = tmp_path / "platform-repo"
    result = migrate(kubevision_cli, src, dst, "--all", "--manifests", str(git))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Flowers: domain Food (compact) -> FoodCompact; project" in result.stdout
    assert f"found again; 0 tags added; images: {7 - partial} added, {partial} already there" in result.stdout
    assert "Cutlery: domain General -> General" in result.stdout and "images: 3 added" in result.stdout
    assert src.key not in result.stdout + result.stderr and dst.key not in result.stdout + result.stderr
    for name, project in ids.items():
        assert dst.state(dst.project_named(name)) == src.state(project), name
    assert len(dst.call("GET", "/projects")) == 2
    assert_manifests_adopt_the_projects(git, platform, kubevision_cli)
    flowers_manifest = f"{dst.endpoint}/kubevision/v1/projects/{dst.project_named('Flowers')}/manifest"
    foreign = httpx.get(flowers_manifest, headers={"Training-Key": src.key})  # another namespace's key
    assert foreign.status_code == 404 and '"NotFoundProject"' in foreign.text

    # A change at the source: a new image, a tag on the untagged one, new metadata; the next run moves just that.
    flowers = ids["Flowers"]
    tulip = next(t["id"] for t in src.call("GET", f"/projects/{flowers}/tags") if t["name"] == "tulip")
    src.upload(flowers, [{"name": "7.png", "contents": photo(7), "tagIds": [tulip]}])
    untagged = src.call("GET", f"/projects/{flowers}/images/untagged")[0]["id"]
    src.call("POST", f"/projects/{flowers}/images/tags", json={"tags": [{"imageId": untagged, "tagId": tulip}]})
    src.call("POST", f"/projects/{flowers}/images/metadata", params={"imageIds": untagged}, json={"garden": "south"})
    downloads = image_downloads(source_gateway[1])
    again = migrate(kubevision_cli, src, dst, "--project", flowers)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "images: 1 added, 6 already there, 1 relabelled, 0 failed" in again.stdout
    assert image_downloads(source_gateway[1]) - downloads == 1  # the new image: the record placed the others
    assert dst.state(dst.project_named("Flowers")) == src.state(flowers)


def assert_manifests_adopt_the_projects(folder: Path, platform, kubevision_cli) -> None:
    """Each migrated project's manifest is valid and describes the resource the migration made: applied, it changes
    nothing and makes no second project."""
    written = {path.name: yaml.safe_load(path.read_text()) for path in folder.iterdir()}
    assert sorted(written) == ["cutlery.yaml", "flowers.yaml"]
    for name, manifest in written.items():
        assert manifest["kind"] == "CustomVisionProject" and manifest["metadata"]["namespace"] == "migrate-target"
        assert set(manifest) == {"apiVersion", "kind", "metadata", "spec"}
        assert not {"uid", "resourceVersion", "generation", "creationTimestamp"} & set(manifest["metadata"]), name
        applied = kubevision_cli("apply", "-f", str(folder / name), "--data-dir", str(platform.data_dir))
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.strip() == f"customvisionproject.kubevision.io/{name.removesuffix('.yaml')} unchanged"
    assert written["flowers.yaml"]["spec"]["displayName"] == "Flowers"
    assert written["flowers.yaml"]["spec"]["classificationType"] == "Multiclass"


def test_bad_credentials_a_missing_project_and_a_garbage_source_are_clear_errors(accounts, kubevision_cli):
    src, dst, ids = accounts
    before = dst.call("GET", "/projects")
    wrong = kubevision_cli("migrate", "--source-endpoint", src.endpoint, "--source-key", "0" * 32,
                           "--target-endpoint", dst.endpoint, "--target-key", dst.key, "--all")
    assert wrong.returncode == 1
    assert f"error: the source at {src.endpoint} refused its training key (401" in wrong.stderr
    missing = migrate(kubevision_cli, src, dst, "--project", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 1
    assert "error: the source has no project 00000000-0000-0000-0000-000000000000" in missing.stderr
    with serving({"customvision/v3.3/training/projects": b"<html>maintenance</html>"}) as garbage:
        answer = kubevision_cli("migrate", "--source-endpoint", garbage, "--source-key", src.key,
                                "--target-endpoint", dst.endpoint, "--target-key", dst.key, "--all")
    assert answer.returncode == 1
    assert "did not answer GET /projects as a Custom Vision training API does" in answer.stderr
    assert src.key not in wrong.stderr + missing.stderr + answer.stderr
    assert dst.call("GET", "/projects") == before


def test_a_throttling_source_is_waited_for_and_a_project_of_many_pages_moves_whole(accounts, source_gateway, platform,
                                                                                 kubevision_cli, monkeypatch,
                                                                                 tmp_path):
    """The source allows 2 training calls a second (429 with Retry-After past that) and its project has more images
    than a listing's page (256)."""
    src, dst, _ = accounts
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    pebbles = src.call("POST", "/projects", params={"name": "Pebbles"})["id"]
    grey = src.call("POST", f"/projects/{pebbles}/tags", params={"name": "grey"})["id"]
    for start in range(0, 300, 64):
        src.upload(pebbles, [{"name": f"{n}.png", "contents": photo(1000 + n), "tagIds": [grey]}
                             for n in range(start, min(start + 64, 300))])
    assert src.call("GET", f"/projects/{pebbles}/images/tagged/count") == 300

    limits = platform.data_dir / "limits.yaml"
    before = limits.read_text()
    ours = yaml.safe_load(before)
    ours.setdefault("namespaces", {})["migrate-source"] = {"training_calls_per_second": 2}
    throttled = throttled_calls(source_gateway[1])
    write_limits_text(limits, yaml.safe_dump(ours))
    try:
        result = migrate(kubevision_cli, src, dst, "--project", pebbles)
    finally:
        write_limits_text(limits, before)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Pebbles: domain General -> General" in result.stdout and "images: 300 added" in result.stdout
    assert throttled_calls(source_gateway[1]) > throttled  # the source did throttle, and was waited for
    assert dst.state(dst.project_named("Pebbles")) == src.state(pebbles)


def throttled_calls(metrics: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in httpx.get(metrics).text.splitlines()
               if line.startswith("kubevision_gateway_requests_total{") and 'status="429"' in line)


def test_a_source_answering_as_azure_does_with_its_nulls_migrates(accounts, kubevision_cli, monkeypatch, tmp_path):
    """Azure leaves fields null that KubeVision fills in (a description, a detector's classification type, an
    image's tags, regions and metadata, an unpublished iteration's publish name): answers of that shape, as
    Microsoft's SDK models them, served from a recording, move as they should."""
    _, dst, _ = accounts
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    project, fork = "11111111-2222-3333-4444-555555555555", "aaaaaaaa-0000-0000-0000-000000000001"
    answers: dict[str, bytes] = {}
    with serving(answers) as azure:
        api = f"customvision/v3.3/training/projects/{project}"

        def image(number: int, regions: list | None) -> dict:
            return {"id": f"bbbbbbbb-0000-0000-0000-00000000000{number}", "created": "2024-05-01T10:00:00Z",
                    "width": 40, "height": 30, "resizedImageUri": None, "thumbnailUri": None,
                    "originalImageUri": f"{azure}/blob/{number}.png?sv=2020&sig=x", "tags": None,
                    "regions": regions, "metadata": None}

        boxed = image(1, [{"regionId": "cccccccc-0000-0000-0000-000000000001", "tagName": "fork", "tagId": fork,
                           "created": "2024-05-01T10:00:00Z", "left": 0.125, "top": 0.25, "width": 0.5,
                           "height": 0.375}])
        answers.update({f"blob/{n}.png?sv=2020&sig=x": photo(2000 + n) for n in (1, 2)})
        answers.update({key: json.dumps(value).encode() for key, value in {
            "customvision/v3.3/training/projects": [{"id": project, "name": "Azure Cutlery", "description": None}],
            api: {"id": project, "name": "Azure Cutlery", "description": None, "settings": {
                "domainId": DETECTION_DOMAIN, "classificationType": None, "targetExportPlatforms": [],
                "useNegativeSet": None, "detectionParameters": None, "imageProcessingSettings": None},
                "created": "2024-05-01T10:00:00Z", "lastModified": "2024-05-01T10:00:00Z", "thumbnailUri": None,
                "drModeEnabled": False, "status": "Succeeded"},
            f"{api}/tags": [{"id": fork, "name": "fork", "description": None, "type": "Regular", "imageCount": 1}],
            f"{api}/iterations": [{"id": "dddddddd-0000-0000-0000-000000000001", "name": "Iteration 1",
                                   "status": "Completed", "publishName": None, "projectId": project}],
            f"{api}/images/tagged/count": 1, f"{api}/images/untagged/count": 1,
            f"{api}/images/tagged?take=256&skip=0": [boxed],
            f"{api}/images/untagged?take=256&skip=0": [image(2, None)],
        }.items()})
        listed = kubevision_cli("migrate", "--source-endpoint", azure, "--source-key", "k" * 32, "--all", "--list")
        assert listed.returncode == 0, listed.stderr
        assert "images 2 (1 tagged, 1 untagged), tags 1, regions 1" in listed.stdout
        assert "iterations 1, published: none" in listed.stdout
        moved = kubevision_cli("migrate", "--source-endpoint", azure, "--source-key", "k" * 32,
                               "--target-endpoint", dst.endpoint, "--target-key", dst.key, "--all")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "images: 2 added, 0 already there, 0 relabelled, 0 failed" in moved.stdout
    state = dst.state(dst.project_named("Azure Cutlery"))
    assert state["description"] == "" and state["tags"] == [("fork", "Regular", "", 1)]
    assert sorted(state["images"].values(), key=lambda labels: len(labels[1])) == [
        ([], [], {}), ([], [("fork", 0.125, 0.25, 0.5, 0.375)], {})]
