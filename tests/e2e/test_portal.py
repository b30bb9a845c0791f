"""The web portal in a real browser (Debian's Chromium, driven by Playwright): a new user signs in, creates a
project, uploads the quickstart photos with their tags, trains, reads the performance, publishes, runs a Quick
Test, and finds a prediction made through the API in the Predictions view; for detection, draws and tags a box,
trains, and sees the detector's boxes in Quick Test; a third reads its namespace's usage by project. Each screen
is saved as a screenshot (KUBEVISION_PORTAL_SCREENSHOTS names the folder; docs/portal.md shows them)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import httpx
import onnx
import pytest
from conftest import EXAMPLES, SAMPLES
from local_keys import wait_for_key
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from kubevision.gateway import portal
from kubevision.local import api_keys

# Debian's package (the Makefile installs it); Playwright's own browser download is not used.
CHROMIUM = Path(os.environ.get("KUBEVISION_CHROMIUM", "/usr/bin/chromium-headless-shell"))
NAMESPACE = "portal-user"  # a namespace of its own: the new user starts with no project
TRAINING_TIMEOUT_MS = 600_000
DETECTION = EXAMPLES / "detection"
PER_TAG = 15  # photos of each tag: enough to train a detector, and a little quicker than all 20
DETECTOR_TRAINING_TIMEOUT_MS = 2_400_000  # a minute on 2 quiet cores, but it shares them in a full test run


@pytest.fixture
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: make test installs Debian's chromium-headless-shell")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("KUBEVISION_PORTAL_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def percent(value: float) -> str:
    """A figure as the portal shows it (JavaScript's toFixed rounds the exact value, halves up)."""
    return f"{Decimal(value * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"


def save(page: Page, folder: Path, name: str) -> None:
    """The page as a small PNG (60% size, 64 colours: the docs' copies stay light), once its images are in."""
    deadline = time.monotonic() + 30  # wait_for_function would need the eval that the portal's CSP forbids
    while not page.evaluate("[...document.images].every((image) => image.complete)"):
        assert time.monotonic() < deadline, "images did not load"
        page.wait_for_timeout(100)
    image = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    image = image.resize((image.width * 3 // 5, image.height * 3 // 5), Image.Resampling.LANCZOS)
    image.quantize(64).save(folder / f"{name}.png", optimize=True)


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def photo(path: Path) -> dict:
    return {"name": path.name, "mimeType": "image/jpeg", "buffer": path.read_bytes()}


def upload(page: Page, files: list[dict], tags: str) -> None:
    page.get_by_label("Choose files").set_input_files(files)
    page.get_by_label("Tags for these images").fill(tags)
    page.get_by_role("button", name=re.compile(r"^Upload \d+ file")).click()


def tab(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Project").get_by_role("link", name=name).click()


def sign_in(page: Page, gateway: str, keys: dict[str, str]) -> None:
    page.goto(f"{gateway}/")
    page.get_by_label("Training key").fill(keys["trainingKey"])
    page.get_by_label("Prediction key (optional)").fill(keys["predictionKey"])
    wait_for_key(gateway, keys["trainingKey"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()


def test_a_new_user_goes_from_nothing_to_a_published_model(browser, shots, platform):
    gateway = next(s for s in platform.status() if s.name == "gateway").endpoints["api"]
    keys = api_keys.ensure(platform.data_dir, NAMESPACE)
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations of deletes
    failed = []
    page.on("pageerror", lambda error: failed.append(str(error)))

    # Sign in: a wrong key is refused on the sign-in form; the gateway reads the new namespace's key within a second.
    page.goto(f"{gateway}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Training key").fill("0" * 32)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Unauthorized")
    save(page, shots, "1-sign-in")
    page.get_by_label("Training key").fill(keys["trainingKey"])
    page.get_by_label("Prediction key (optional)").fill(keys["predictionKey"])
    wait_for_key(gateway, keys["trainingKey"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    assert keys["trainingKey"] not in page.url
    expect(page.get_by_text("No project yet")).to_be_visible()

    # Create a project.
    page.get_by_label("Name").fill("Trees in the portal")
    page.get_by_label("Description").fill("Hemlock or Japanese cherry")
    expect(page.get_by_label("Domain")).to_contain_text("General")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Add images")).to_be_visible()
    project_id = re.search(r"#/projects/([0-9a-f-]{36})/images", page.url)[1]

    # Training before any image is refused, next to the Train button.
    tab(page, "Train")
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_role("alert").first).to_contain_text("BadRequestTrainingValidationFailed")

    # Upload the quickstart photos with their tags, and one file that is not an image.
    tab(page, "Images")
    upload(page, [photo(p) for p in sorted((SAMPLES / "Hemlock").glob("*.jpg"))], "Hemlock")
    expect(page.get_by_text("10 of 10 file(s) uploaded.")).to_be_visible()
    cherries = [photo(p) for p in sorted((SAMPLES / "Japanese_Cherry").glob("*.jpg"))]
    upload(page, [*cherries, {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"not an image"}],
           "Japanese_Cherry")
    expect(page.get_by_text("10 of 11 file(s) uploaded.")).to_be_visible()
    expect(page.get_by_label("Upload results")).to_contain_text("broken.jpg: not a JPEG, PNG, BMP, GIF or WEBP image")
    expect(page.get_by_role("status").filter(has_text="of 20")).to_have_text("1–20 of 20")
    save(page, shots, "3-images")

    # An untagged image: filtered, tagged, untagged and deleted through the selection.
    upload(page, [{"name": "red.png", "mimeType": "image/png", "buffer": png((200, 20, 20))}], "")
    expect(page.get_by_text("1 of 1 file(s) uploaded.")).to_be_visible()
    page.get_by_label("Show").select_option("untagged")
    expect(page.get_by_role("status").filter(has_text="of 1")).to_have_text("1–1 of 1")
    page.get_by_label(re.compile(r"^Select image .*\(untagged\)")).check()
    page.get_by_label("Tag", exact=True).select_option(label="Hemlock")
    page.get_by_role("button", name="Add tag").click()
    expect(page.get_by_role("status").filter(has_text="images")).to_have_text("0 images")
    page.get_by_label("Show").select_option("tagged")
    page.get_by_label("With tag").select_option(label="Hemlock")
    expect(page.get_by_role("status").filter(has_text="of 11")).to_have_text("1–11 of 11")
    page.get_by_label(re.compile(r"^Select image ")).first.check()  # newest first: the red square
    page.get_by_role("button", name="Remove tag").click()
    expect(page.get_by_role("status").filter(has_text="of 10")).to_have_text("1–10 of 10")
    page.get_by_label("Show").select_option("untagged")
    expect(page.get_by_role("status").filter(has_text="of 1")).to_have_text("1–1 of 1")
    page.get_by_label(re.compile(r"^Select image ")).first.check()
    page.get_by_role("button", name="Delete images").click()
    expect(page.get_by_role("status").filter(has_text="images")).to_have_text("0 images")
    page.get_by_label("Show").select_option("all")
    expect(page.get_by_role("status").filter(has_text="of 20")).to_have_text("1–20 of 20")

    # Train (Quick); the iteration list follows the training without a reload.
    tab(page, "Train")
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text("Iteration 1 is training")).to_be_visible()
    expect(page.locator(".status").first).to_have_text("Completed", timeout=TRAINING_TIMEOUT_MS)
    save(page, shots, "4-train")

    # Performance: figures per tag, recomputed at the slider's threshold.
    tab(page, "Performance")
    per_tag = page.get_by_role("region", name="Performance per tag")
    expect(per_tag.get_by_role("row")).to_have_count(3)
    expect(per_tag).to_contain_text("Hemlock")
    expect(per_tag).to_contain_text("Japanese_Cherry")
    expect(page.locator(".figure").first).to_contain_text("%")
    with page.expect_request(lambda r: "/performance?threshold=0.8" in r.url):
        page.get_by_label("Probability threshold").fill("80")
    expect(page.locator("output")).to_have_text("80%")
    expect(page.get_by_role("region", name="Precision-recall curve").locator("svg, .note")).to_be_visible()
    save(page, shots, "5-performance")

    # Publish, with the Prediction URL panel and the ONNX export.
    tab(page, "Publish")
    page.get_by_label("Published name").fill("trees")
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_text("Published as trees")).to_be_visible(timeout=120_000)
    curl = page.get_by_label("Ready curl line").input_value()
    assert f"Prediction-Key: {keys['predictionKey']}" in curl
    assert f"/customvision/v3.1/Prediction/{project_id}/classify/iterations/trees/image" in curl
    page.get_by_role("button", name="Export ONNX").click()
    download_link = page.get_by_role("link", name="Download Iteration 1.onnx")
    expect(download_link).to_be_visible()
    model = httpx.get(download_link.get_attribute("href"), timeout=60)
    assert model.status_code == 200 and onnx.load_from_string(model.content).graph.input
    save(page, shots, "6-publish")

    # Quick Test: the quickstart's test photo is a hemlock.
    tab(page, "Quick Test")
    page.get_by_label("Image file").set_input_files(SAMPLES / "test" / "test_image.jpg")
    page.get_by_role("button", name="Test this file").click()
    first = page.get_by_role("table", name="Predictions").get_by_role("row").nth(1)
    expect(first).to_contain_text("Hemlock", timeout=60_000)
    save(page, shots, "7-quick-test")

    # A prediction through the API, as an application makes it, shows in the Predictions view; add it to the set.
    answer = httpx.post(curl.split()[-1], content=(SAMPLES / "test" / "test_image.jpg").read_bytes(), timeout=60,
                        headers={"Prediction-Key": keys["predictionKey"], "Content-Type": "application/octet-stream"})
    assert answer.status_code == 200, answer.text
    tab(page, "Predictions")
    stored = page.locator(f'[data-prediction="{answer.json()["id"]}"]')
    deadline = time.monotonic() + 30  # the gateway stores a prediction after its answer has left
    while not stored.is_visible() and time.monotonic() < deadline:
        page.get_by_role("button", name="Refresh").click()
        page.wait_for_timeout(500)
    expect(stored).to_contain_text("Hemlock")
    expect(stored.get_by_label("Hemlock")).to_be_checked()
    stored.get_by_role("button", name="Add to training set").click()
    expect(stored.get_by_role("alert")).to_have_text("Added to the training set.")
    save(page, shots, "8-predictions")

    # Back on the projects list: the project, its image count and its published iteration.
    page.get_by_role("link", name="Projects").first.click()
    card = page.get_by_role("listitem").filter(has_text="Trees in the portal")
    expect(card).to_contain_text("21 images")
    expect(card).to_contain_text("Iteration 1: Completed (published as trees)")
    save(page, shots, "2-projects")

    # A narrow window: nothing wider than the screen.
    page.set_viewport_size({"width": 380, "height": 760})
    for screen in ("images", "publish"):
        page.goto(f"{gateway}/portal/#/projects/{project_id}/{screen}")
        expect(page.get_by_role("link", name="Publish")).to_be_visible()
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.scrollWidth") <= 380, screen

    # Delete the project, after the confirmation: refused while an iteration is published, then unpublished.
    page.set_viewport_size({"width": 1100, "height": 760})
    page.get_by_role("link", name="Projects").first.click()
    delete = page.get_by_role("button", name="Delete project Trees in the portal")
    delete.click()
    expect(page.get_by_role("listitem").get_by_role("alert")).to_contain_text("BadRequestIterationIsPublished")
    page.get_by_role("link", name="Trees in the portal").click()
    tab(page, "Publish")
    page.get_by_role("button", name="Unpublish").click()
    expect(page.get_by_role("button", name="Publish", exact=True)).to_be_visible()
    page.get_by_role("link", name="Projects").first.click()
    delete.click()
    expect(page.get_by_text("No project yet")).to_be_visible()
    assert not failed, failed


def test_make_run_prints_the_portal_and_the_key_to_sign_in_with(quickstart, platform):
    portal = f"{quickstart.gateway}/portal/"
    training_key = api_keys.ensure(platform.data_dir, "default")["trainingKey"]
    assert f"Open the web portal at {portal} and sign in with the Training-Key {training_key}" in quickstart.output
    page = httpx.get(portal, timeout=30)
    assert page.status_code == 200 and "<title>KubeVision</title>" in page.text


def test_the_precision_recall_curve_follows_the_per_image_results(browser):
    """prcurve.js in the browser, on per-image results worked out by hand (the files come from the package)."""
    page = browser.new_page()
    page.route("http://portal.test/**", lambda route: route.fulfill(
        path=portal.ASSETS / route.request.url.removeprefix("http://portal.test/portal/")))
    page.goto("http://portal.test/portal/index.html")
    images = [{"tags": [{"tagId": tag}], "predictions": [{"tagId": "h", "probability": h},
                                                         {"tagId": "c", "probability": c}]}
              for tag, h, c in (("h", 0.9, 0.1), ("c", 0.6, 0.4), ("h", 0.3, 0.7))]
    points, chosen, hemlock = page.evaluate("""async (images) => {
        const curve = await import("./js/prcurve.js");
        const points = curve.precisionRecall(images);
        return [points, curve.at(points, 0.5), curve.precisionRecall(images, "h")];
    }""", images)
    assert [(p["threshold"], round(p["precision"], 3), round(p["recall"], 3)) for p in points] == [
        (0.9, 1, 0.333), (0.7, 0.5, 0.333), (0.6, 0.333, 0.333), (0.4, 0.5, 0.667), (0.3, 0.6, 1), (0.1, 0.5, 1)]
    assert chosen["threshold"] == 0.6
    assert [(p["precision"], p["recall"]) for p in hemlock] == [(1, 0.5), (0.5, 0.5), (2 / 3, 1)]


def test_a_detectors_precision_recall_curve_matches_boxes_at_the_overlap_threshold(browser):
    """prcurve.js on a detector's per-image results worked out by hand: boxes of halves and quarters of the image,
    so that each overlap (intersection over union) is exact."""
    page = browser.new_page()
    page.route("http://portal.test/**", lambda route: route.fulfill(
        path=portal.ASSETS / route.request.url.removeprefix("http://portal.test/portal/")))
    page.goto("http://portal.test/portal/index.html")

    def box(tag: str, left: float, top: float, width: float, height: float) -> dict:
        return {"tagId": tag, "left": left, "top": top, "width": width, "height": height}

    def predicted(tag: str, probability: float, *place: float) -> dict:
        return {"tagId": tag, "probability": probability, "boundingBox": box(tag, *place)}

    images = [
        {"regions": [box("f", 0, 0, 0.5, 0.5), box("s", 0.5, 0.5, 0.5, 0.5)],
         "predictions": [predicted("f", 0.9, 0, 0, 0.5, 0.5),            # the fork: overlap 1
                         predicted("f", 0.8, 0, 0, 0.5, 0.5),            # the same fork again: already matched
                         predicted("s", 0.6, 0.5, 0.5, 0.25, 0.5)]},     # half the scissors: overlap 0.5
        {"regions": [box("f", 0.25, 0.25, 0.5, 0.5)],
         "predictions": [predicted("s", 0.7, 0.25, 0.25, 0.5, 0.5),      # the fork's place, the wrong tag
                         predicted("f", 0.3, 0.25, 0.25, 0.5, 0.25)]},   # half the fork: overlap 0.5
    ]
    at_half, at_more, forks, chosen = page.evaluate("""async (images) => {
        const curve = await import("./js/prcurve.js");
        const points = curve.detectionPrecisionRecall(images, 0.5);
        return [points, curve.detectionPrecisionRecall(images, 0.6), curve.detectionPrecisionRecall(images, 0.5, "f"),
                curve.at(points, 0.5)];
    }""", images)

    def rounded(points: list[dict]) -> list[tuple]:
        return [(p["threshold"], round(p["precision"], 3), round(p["recall"], 3)) for p in points]

    # 3 true boxes; at an overlap of 0.5 the halves count as found, at 0.6 they do not.
    assert rounded(at_half) == [(0.9, 1, 0.333), (0.8, 0.5, 0.333), (0.7, 0.333, 0.333), (0.6, 0.5, 0.667),
                                (0.3, 0.6, 1)]
    assert rounded(at_more) == [(0.9, 1, 0.333), (0.8, 0.5, 0.333), (0.7, 0.333, 0.333), (0.6, 0.25, 0.333),
                                (0.3, 0.2, 0.333)]
    assert rounded(forks) == [(0.9, 1, 0.5), (0.8, 0.5, 0.5), (0.3, 0.667, 1)]
    assert chosen["threshold"] == 0.6


def drag(page: Page, frame: dict, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A mouse drag between two points given as fractions of the element's bounding box."""
    page.mouse.move(frame["x"] + start[0] * frame["width"], frame["y"] + start[1] * frame["height"])
    page.mouse.down()
    page.mouse.move(frame["x"] + end[0] * frame["width"], frame["y"] + end[1] * frame["height"], steps=8)
    page.mouse.up()


def eventually(check, what: str, seconds: float = 10) -> None:
    """The portal saves after the gesture: wait for the API to hold the result."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def free_corner(box: dict) -> tuple[float, float]:
    """The top-left point of a 0.3 by 0.2 corner of the image that does not meet the box."""
    for x, y in ((0.01, 0.01), (0.69, 0.01), (0.01, 0.79), (0.69, 0.79)):
        if (x + 0.3 < box["left"] or x > box["left"] + box["width"] or y + 0.2 < box["top"]
                or y > box["top"] + box["height"]):
            return x, y
    raise AssertionError(f"no free corner beside {box}")


@pytest.mark.timeout(3600)  # a detector's Quick training can take longer than the suite's 600 s a test on busy cores
def test_a_user_draws_boxes_trains_a_detector_and_sees_its_boxes(browser, shots, platform):
    gateway = next(s for s in platform.status() if s.name == "gateway").endpoints["api"]
    keys = api_keys.ensure(platform.data_dir, "portal-detector")
    training = f"{gateway}/customvision/v3.3/training"
    headers = {"Training-Key": keys["trainingKey"]}
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    failed = []
    page.on("pageerror", lambda error: failed.append(str(error)))
    sign_in(page, gateway, keys)

    # A detection project; its photos are uploaded without tags, and the Regions tab joins the project's tabs.
    page.get_by_label("Name").fill("Forks and scissors")
    page.get_by_label("Object detection").check()
    expect(page.get_by_label("Domain")).to_contain_text("General")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Add images")).to_be_visible()
    project_id = re.search(r"#/projects/([0-9a-f-]{36})/images", page.url)[1]
    expect(page.get_by_label("Tags for these images")).to_have_count(0)
    photos = json.loads((DETECTION / "regions.json").read_text())
    entries = [e for tag in ("fork", "scissors")
               for e in [p for p in photos if p["regions"][0]["tag"] == tag][:PER_TAG]]
    page.get_by_label("Choose files").set_input_files([photo(DETECTION / e["image"]) for e in entries])
    page.get_by_role("button", name=re.compile(r"^Upload \d+ file")).click()
    expect(page.get_by_text(f"{len(entries)} of {len(entries)} file(s) uploaded.")).to_be_visible()

    # Which stored image is which photo: by the bytes the gateway gives back.
    listed = httpx.get(f"{training}/projects/{project_id}/images", params={"take": 256}, headers=headers, timeout=30)
    by_hash = {hashlib.sha256((DETECTION / e["image"]).read_bytes()).hexdigest(): e for e in entries}
    entry_of = {image["id"]: by_hash[hashlib.sha256(httpx.get(image["originalImageUri"], timeout=30).content)
                                     .hexdigest()] for image in listed.json()}

    # Regions: draw the shown photo's box with the mouse under a new tag, then move, resize and delete a second one.
    tab(page, "Regions")
    expect(page.get_by_role("status").filter(has_text="Image 1 of")).to_have_text(f"Image 1 of {len(entries)}")
    image_id = re.search(r"/regions/([0-9a-f-]{36})$", page.url)[1]
    truth = entry_of[image_id]["regions"][0]
    page.get_by_label("Tag for new boxes").fill(truth["tag"])
    layer = page.locator(".box-layer")
    frame = layer.bounding_box()
    drag(page, frame, (truth["left"], truth["top"]), (truth["left"] + truth["width"], truth["top"] + truth["height"]))
    expect(page.get_by_role("button", name=f"Box 1: {truth['tag']}")).to_be_visible()

    def stored_regions() -> list[dict]:
        answer = httpx.get(f"{training}/projects/{project_id}/images/id", params={"imageIds": image_id},
                           headers=headers, timeout=30)
        return answer.json()[0].get("regions") or []

    [drawn] = stored_regions()
    assert drawn["tagName"] == truth["tag"]
    for side in ("left", "top", "width", "height"):
        assert abs(drawn[side] - truth[side]) < 0.02, (side, drawn, truth)
    x, y = free_corner(truth)  # a second box where the first is not: drawn, moved right, resized from its corner
    drag(page, frame, (x, y), (x + 0.1, y + 0.08))
    second = page.get_by_role("button", name=re.compile("^Box 2:"))
    expect(second).to_be_visible()
    drag(page, frame, (x + 0.05, y + 0.04), (x + 0.15, y + 0.04))
    eventually(lambda: any(abs(r["left"] - (x + 0.1)) < 0.02 for r in stored_regions()), "moved")
    expect(second).to_have_attribute("aria-pressed", "true")
    expect(second.locator(".handle.se")).to_be_visible()
    handle = second.locator(".handle.se").bounding_box()
    drag(page, {"x": handle["x"] + handle["width"] / 2, "y": handle["y"] + handle["height"] / 2,
                "width": frame["width"], "height": frame["height"]}, (0, 0), (0.08, 0.08))
    eventually(lambda: any(abs(r["width"] - 0.18) < 0.03 and abs(r["height"] - 0.16) < 0.03
                           for r in stored_regions()), "resized")
    save(page, shots, "9-regions")
    page.keyboard.press("Delete")
    expect(page.get_by_role("button", name=re.compile("^Box 2:"))).to_have_count(0)
    assert [r["regionId"] for r in stored_regions()] == [drawn["regionId"]]
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("status").filter(has_text="Image 2 of")).to_be_visible()

    # A narrow window: the image and its boxes fit.
    page.set_viewport_size({"width": 380, "height": 760})
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.scrollWidth") <= 380
    page.set_viewport_size({"width": 1100, "height": 760})

    # The other photos' boxes through the API, as a script would add them.
    tags = {t["name"]: t["id"] for t in httpx.get(f"{training}/projects/{project_id}/tags", headers=headers,
                                                   timeout=30).json()}
    for name in {"fork", "scissors"} - set(tags):
        tags[name] = httpx.post(f"{training}/projects/{project_id}/tags", params={"name": name}, headers=headers,
                                timeout=30).json()["id"]
    regions = [{"imageId": other, "tagId": tags[r["tag"]], **{k: r[k] for k in ("left", "top", "width", "height")}}
               for other, entry in entry_of.items() if other != image_id for r in entry["regions"]]
    created = httpx.post(f"{training}/projects/{project_id}/images/regions", json={"regions": regions},
                         headers=headers, timeout=30)
    assert len(created.json()["created"]) == len(regions), created.text

    # Train (Quick).
    tab(page, "Train")
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text("Iteration 1 is training")).to_be_visible()
    expect(page.locator(".status").first).to_have_text("Completed", timeout=DETECTOR_TRAINING_TIMEOUT_MS)

    # Performance: precision, recall and mAP, per tag, read again at the overlap threshold of the slider, and the
    # precision-recall curve of the held-out boxes matched at that overlap.
    tab(page, "Performance")
    expect(page.locator(".figure").nth(2)).to_contain_text("mAP")
    per_tag = page.get_by_role("region", name="Performance per tag")
    expect(per_tag.get_by_role("row")).to_have_count(3)
    with page.expect_response(lambda r: "/performance?" in r.url and "overlapThreshold=0.3" in r.url) as asked:
        page.get_by_label("Overlap threshold").fill("30")
    figures = asked.value.json()
    expect(page.locator(".figure .value").nth(2)).to_have_text(percent(figures["averagePrecision"]))
    for tag in figures["perTagPerformance"]:
        expect(per_tag.get_by_role("row", name=tag["name"]).get_by_role("cell")).to_have_text(
            [percent(tag[figure]) for figure in ("precision", "recall", "averagePrecision")])
    curve = page.get_by_role("region", name="Precision-recall curve")
    expect(curve.locator("svg .line")).to_be_visible()
    expect(curve).to_contain_text("a box is found at an overlap of 30% or more")
    save(page, shots, "10-detection-performance")

    # Quick Test of the unpublished iteration, run in the gateway: the detector's boxes.
    tab(page, "Quick Test")
    expect(page.get_by_label("Iteration")).to_contain_text("Iteration 1 (not published)")
    page.get_by_label("Image file").set_input_files(DETECTION / "test" / "test_image.jpg")
    page.get_by_role("button", name="Test this file").click()
    expect(page.locator(".preview .box").first).to_have_attribute(
        "aria-label", re.compile(r"^(fork|scissors) \d+\.\d%$"), timeout=60_000)

    # Publish, then the Quick Test draws the detector's boxes with their tags and probabilities.
    tab(page, "Publish")
    page.get_by_label("Published name").fill("tools")
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_text("Published as tools")).to_be_visible(timeout=120_000)
    assert f"/{project_id}/detect/iterations/tools/image" in page.get_by_label("Ready curl line").input_value()
    tab(page, "Quick Test")
    page.get_by_label("Image file").set_input_files(DETECTION / "test" / "test_image.jpg")
    page.get_by_role("button", name="Test this file").click()
    first_box = page.locator(".preview .box").first
    expect(first_box).to_be_visible(timeout=60_000)
    expect(first_box).to_have_attribute("aria-label", re.compile(r"^(fork|scissors) \d+\.\d%$"))
    save(page, shots, "11-detection-quick-test")

    # Predictions: the quick test's boxes, added to the training set.
    tab(page, "Predictions")
    stored = page.locator(".stored-item").first
    expect(stored.locator(".box").first).to_be_visible()
    stored.get_by_role("button", name="Add to training set").click()
    expect(stored.get_by_role("alert")).to_contain_text("Added to the training set.")
    save(page, shots, "12-detection-predictions")
    assert not failed, failed


def noise(seed: int) -> bytes:
    """A PNG of random pixels: its size is known, and no two seeds give the same content."""
    pixels = random.Random(seed).randbytes(64 * 64 * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 64), pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def add_project(training: str, key: str, name: str, images: list[bytes]) -> None:
    """A project made through the API, as a script would, with its images uploaded in one batch."""
    headers = {"Training-Key": key}
    project = httpx.post(f"{training}/projects", params={"name": name}, headers=headers, timeout=30)
    assert project.status_code == 200, project.text
    files = [("imageData", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    added = httpx.post(f"{training}/projects/{project.json()['id']}/images", files=files, headers=headers, timeout=60)
    assert added.status_code == 200, added.text


def test_the_usage_screen_shows_what_the_namespace_used_by_project(browser, shots, platform):
    gateway = next(s for s in platform.status() if s.name == "gateway").endpoints["api"]
    training = f"{gateway}/customvision/v3.3/training"
    keys = api_keys.ensure(platform.data_dir, "portal-usage")
    other = api_keys.ensure(platform.data_dir, "portal-usage-other")
    wait_for_key(gateway, other["trainingKey"])
    add_project(training, other["trainingKey"], "Elsewhere", [noise(9)])  # another team's: never shown
    page = browser.new_page(viewport={"width": 1100, "height": 760}, locale="en-US")  # 12,345 bytes
    failed = []
    page.on("pageerror", lambda error: failed.append(str(error)))
    sign_in(page, gateway, keys)

    # Nothing used yet by this namespace, whatever another one did.
    page.get_by_role("link", name="Usage").click()
    expect(page.get_by_role("heading", name="Usage")).to_be_visible()
    expect(page.get_by_text("Nothing used in the last 24 hours.")).to_be_visible()

    # Two projects through the API: 3 images (and one of them again, which stores nothing), then 1 image.
    first = [noise(1), noise(2), noise(3)]
    add_project(training, keys["trainingKey"], "Counted here", [*first, first[0]])
    add_project(training, keys["trainingKey"], "Second", [noise(4)])

    def human(size: int) -> str:
        """Bytes as the portal shows them: these are some KiB, to one decimal, halves up as toFixed rounds them."""
        return f"{(Decimal(size) / 1024).quantize(Decimal('0.1'), ROUND_HALF_UP)} KiB"

    def figures(images: int, size: int) -> list[str]:
        return ["0", "0", str(images), human(size), "0", "0", "0.00", "0.00"]

    # The window picker asks the route again; its figures are the calls just made, a row a project and the total.
    with page.expect_request(lambda r: r.url.endswith("/kubevision/v1/usage?since=7d")):
        page.get_by_label("Window").select_option(label="Last 7 days")
    table = page.get_by_role("table", name="Usage in the last 7 days")
    expect(table.get_by_role("row")).to_have_count(4)
    expect(table.get_by_role("row").nth(0).get_by_role("columnheader")).to_have_text(
        ["Project", "Predictions stored", "Predictions not stored", "Images stored", "Image bytes", "Exports",
         "Trainings", "Training hours", "GPU hours"])
    sizes = sum(map(len, first)), len(noise(4))
    for name, images, size in (("counted-here", 3, sizes[0]), ("second", 1, sizes[1]), ("Total", 4, sum(sizes))):
        row = table.get_by_role("row").filter(has=page.get_by_role("rowheader", name=name, exact=True))
        expect(row.get_by_role("cell")).to_have_text(figures(images, size))
        expect(row.get_by_role("cell").nth(3)).to_have_attribute("title", f"{size:,} bytes")
    expect(table).not_to_contain_text("elsewhere")
    save(page, shots, "13-usage")

    # A narrow window: the table scrolls in its own box.
    page.set_viewport_size({"width": 380, "height": 760})
    assert page.evaluate("document.documentElement.scrollWidth") <= 380
    assert not failed, failed
