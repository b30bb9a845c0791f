"""Rate limits per key, with Azure's S0 tier as the defaults, on real gateways: 20 /nostore predictions a second, 10
that store their image, 10 train_project calls and 10 other training calls; the next call of the second gets 429
with Retry-After and Azure's error, before its body is read and without changing anything. One namespace's calls
never count against another's, a namespace's override applies to it alone, two replicas on one PostgreSQL database
share one limit, and Microsoft's SDK, told to retry every method, waits and succeeds.

Fixed windows of a wall-clock second count the calls, so each test sends its calls at the start of a second."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorException
from gateway_harness import running_gateway
from limits_files import write_limits
from msrest.authentication import ApiKeyCredentials
from playwright.async_api import async_playwright
from test_gateway_limits import exchange, post

from kubevision.core.limits import LimitsSource
from kubevision.core.settings import GatewaySettings, S3Settings
from kubevision.core.storage import ObjectStore
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.catalog import Catalog, NamespaceKeys, Project
from kubevision.gateway.main import create_app

BUCKET = "rate-limits"
PROJECTS = {ns: Project(str(uuid.uuid4()), ns, "trees", "Classification", BUCKET, f"{ns}/trees-{uuid.uuid4().hex}/")
            for ns in ("team-a", "team-b")}
KEYS = {ns: NamespaceKeys(f"p-{ns}".ljust(32, "0"), f"t-{ns}".ljust(32, "0")) for ns in PROJECTS}
UNKNOWN = "00000000-0000-4000-8000-000000000000"
IMAGE_URL = {"url": "http://example.com/photo.jpg"}
CHROMIUM = Path("/usr/bin/chromium-headless-shell")  # Debian's package, as tests/e2e/test_portal.py uses it


class FixedSource(CatalogSource):
    def __init__(self):
        super().__init__()
        self.catalog = Catalog({p.uid: p for p in PROJECTS.values()}, {}, KEYS)

    async def _run(self) -> None:
        self.ready = True


@pytest.fixture
def gateway(tmp_path):
    """Starts a gateway (a replica: several may share `database_url`) with the limits file written from `limits`
    (none: Azure's defaults); yields its base URL."""

    def start(limits: dict | None = None, database_url: str = "", s3: S3Settings | None = None):
        folder = tmp_path / uuid.uuid4().hex
        folder.mkdir()
        settings = GatewaySettings(mode="kubernetes", data_dir=folder, database_url=database_url)
        source = LimitsSource(write_limits(folder / "limits.yaml", **limits) if limits else None)
        return running_gateway(create_app(settings, FixedSource(), s3 or S3Settings(), limits=source), settings)

    return start


def api(base: str, namespace: str = "team-a") -> httpx.AsyncClient:
    keys = KEYS[namespace]
    return httpx.AsyncClient(base_url=f"{base}/customvision", timeout=30,
                             headers={"Prediction-Key": keys.prediction, "Training-Key": keys.training})


def predict(http: httpx.AsyncClient, nostore: bool = True, namespace: str = "team-a") -> Awaitable[httpx.Response]:
    """A prediction for a name nothing is published under: the route answers 404 once the call is let in."""
    suffix = "/nostore" if nostore else ""
    return http.post(f"/v3.1/prediction/{PROJECTS[namespace].uid}/classify/iterations/v1/url{suffix}",
                     json=IMAGE_URL)


async def window_start(seconds: int = 1) -> float:
    """Waits for the start of the next window of `seconds`; returns when that window ends."""
    await asyncio.sleep(seconds - time.time() % seconds)
    return (int(time.time()) // seconds + 1) * seconds


async def in_one_second(*calls: Callable[[], Awaitable[httpx.Response]]) -> list[httpx.Response]:
    """The calls, one after another, from the start of a second: one window counts them all. Tried again in a later
    second when a slow machine lets them spill into the next one."""
    for _ in range(3):
        await window_start()
        second = int(time.time())
        answers = [await call() for call in calls]
        if int(time.time()) == second:
            return answers
    pytest.fail("the calls never fitted in one second")


def statuses(answers: list[httpx.Response]) -> list[int]:
    return [a.status_code for a in answers]


def assert_refused(answer: httpx.Response) -> None:
    """Azure's answer to a key over its rate limit, with the seconds to wait."""
    assert answer.status_code == 429, answer.text
    wait = answer.headers["Retry-After"]
    assert wait.isdigit() and int(wait) >= 1
    assert answer.json() == {"code": "429", "message": f"Rate limit is exceeded. Try again in {wait} seconds."}


async def test_twenty_nostore_predictions_a_second_pass_and_the_next_wait_for_retry_after(gateway):
    async with gateway() as base, api(base) as http:
        answers = await in_one_second(*[lambda: predict(http)] * 23)
        assert statuses(answers[:20]) == [404] * 20  # let in: nothing is published as v1
        assert answers[0].json()["code"] == "NotFoundIteration"
        for refused in answers[20:]:
            assert_refused(refused)
        await asyncio.sleep(int(answers[-1].headers["Retry-After"]))
        assert (await predict(http)).status_code == 404


async def test_stored_predictions_train_project_and_other_training_calls_have_limits_of_their_own(gateway):
    async with gateway() as base, api(base) as http:
        train = f"/v3.3/training/projects/{UNKNOWN}/train"
        answers = await in_one_second(
            *[lambda: predict(http, nostore=False)] * 11,
            *[lambda: http.post(train)] * 11,
            *[lambda: http.get("/v3.3/training/domains")] * 11,
            lambda: predict(http),  # the /nostore routes count apart
        )
        assert statuses(answers[:10]) == [404] * 10
        assert statuses(answers[11:21]) == [404] * 10 and answers[11].json()["code"] == "NotFoundProject"
        assert statuses(answers[22:32]) == [200] * 10
        for refused in (answers[10], answers[21], answers[32]):
            assert_refused(refused)
        assert answers[33].status_code == 404


async def test_a_call_over_the_limit_is_refused_before_its_body_is_read(gateway):
    key = KEYS["team-a"].training
    async with gateway({"defaults": {"training_calls_per_second": 0.2}}) as base, api(base) as http:
        await window_start(5)  # one call in 5 s: the first is let in, and the second, sent at once, is over
        assert (await http.get("/v3.3/training/domains")).status_code == 200
        # 300 MB announced, none sent: the answer comes anyway, and at once.
        status, error, _ = await exchange(base, post("/customvision/v3.3/training/projects?name=x", 300_000_000,
                                                     Training_Key=key))
        assert status == 429 and error["code"] == "429"


async def test_one_namespace_over_its_limit_never_slows_another(gateway):
    async with gateway() as base, api(base, "team-a") as team_a, api(base, "team-b") as team_b:
        answers = await in_one_second(*[lambda: predict(team_a)] * 21,
                                      *[lambda: predict(team_b, namespace="team-b")] * 20)
        assert statuses(answers[:20]) == [404] * 20
        assert_refused(answers[20])
        assert statuses(answers[21:]) == [404] * 20


async def test_an_override_applies_to_its_namespace_alone_and_a_new_file_applies_without_a_restart(gateway,
                                                                                                 tmp_path):
    async with gateway({"namespaces": {"team-b": {"predictions_per_second": 2}}}) as base, \
            api(base, "team-a") as team_a, api(base, "team-b") as team_b:
        answers = await in_one_second(*[lambda: predict(team_b, namespace="team-b")] * 3,
                                      *[lambda: predict(team_a)] * 3)
        assert statuses(answers[:2]) == [404] * 2
        assert_refused(answers[2])
        assert statuses(answers[3:]) == [404] * 3

        (limits_file,) = tmp_path.glob("*/limits.yaml")
        write_limits(limits_file, namespaces={"team-b": {"predictions_per_second": 4}})
        answers = await in_one_second(*[lambda: predict(team_b, namespace="team-b")] * 5)
        assert statuses(answers[:4]) == [404] * 4
        assert_refused(answers[4])


async def test_two_replicas_on_one_postgresql_database_share_one_limit(gateway, postgres):
    database_url = postgres.new_database()
    async with gateway(database_url=database_url) as first, gateway(database_url=database_url) as second, \
            api(first) as one, api(second) as other:
        answers = await in_one_second(*[lambda: predict(one), lambda: predict(other)] * 10,
                                      lambda: predict(one), lambda: predict(other))
        assert statuses(answers[:20]) == [404] * 20
        assert_refused(answers[20])
        assert_refused(answers[21])


async def test_the_sdk_told_to_retry_every_method_waits_out_a_429_and_succeeds(gateway, platform):
    """A training call over the limit changes nothing; the SDK retries a GET by itself, a POST once told to
    (docs/gateway.md, What a client should retry)."""
    ObjectStore(platform.s3_settings()).ensure_bucket(BUCKET)
    project = PROJECTS["team-a"].uid
    tags = f"/v3.3/training/projects/{project}/tags"
    async with gateway({"defaults": {"training_calls_per_second": 0.2}}, s3=platform.s3_settings()) as base, \
            api(base) as http:
        credentials = ApiKeyCredentials(in_headers={"Training-key": KEYS["team-a"].training})
        plain = CustomVisionTrainingClient(base, credentials)
        told = CustomVisionTrainingClient(base, credentials)
        told.config.retry_policy.policy.allowed_methods = None  # as docs/gateway.md says

        ends = await window_start(5)  # one call in 5 s: the first is let in, the others wait for the next window
        assert (await http.post(tags, params={"name": "first"})).status_code == 200
        assert_refused(await http.post(tags, params={"name": "refused"}))
        with pytest.raises(CustomVisionErrorException) as error:
            await asyncio.to_thread(plain.create_tag, project, "plain")  # a POST: not retried unless told
        assert error.value.response.status_code == 429
        assert time.time() < ends, "a slow machine: the window ended before the told client's first try"
        second = await asyncio.to_thread(told.create_tag, project, "second")  # refused, then let in
        names = {tag.name for tag in await asyncio.to_thread(plain.get_tags, project)}  # a GET: retried by itself
        assert second.name == "second" and names == {"first", "second"}


async def test_the_portal_waits_out_a_429_when_a_screen_asks_for_more_than_the_limit(gateway):
    """A screen loads many things at once (the projects list asks two calls a project): the portal's API client
    waits out the 429s in a real browser, and every call is answered."""
    async with gateway() as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/portal/")
            await window_start()
            answered = await page.evaluate("""async (key) => {
                const {Api} = await import(new URL("js/api.js", document.baseURI).href);
                const api = new Api(key);
                const answers = await Promise.all(Array.from({length: 15}, () => api.domains()));
                return answers.filter((domains) => domains.length > 0).length;
            }""", KEYS["team-a"].training)
            assert answered == 15
        finally:
            await browser.close()
