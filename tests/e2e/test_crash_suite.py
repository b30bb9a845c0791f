"""The crash suite: each service of the local platform killed with SIGKILL while clients use it, and brought back
with `kubevision local up`, as its operator would. Under the load of an uploader (batches of new images) and a
prediction stream against the published demo model, a kill may cost a client a retry and nothing else: no answer is
a 500, a published model is never "not found", every image the API acknowledged is listed and reads back with its
bytes, no image is listed without them, and predictions succeed again within RECOVERY_SECONDS of `up`.

It runs on the test run's own platform (the demo's) and leaves it as it found it: every service healthy. A killed
trainer, last, fails its Iteration saying how, ends its MLflow run, and leaves nothing in the way of the next; and
a gateway killed during an export holds up the next training only until its lease lapses."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from conftest import EXAMPLES
from mlflow.tracking import MlflowClient
from PIL import Image

from kubevision.core import tracking
from kubevision.core.labelstore import tables
from kubevision.core.labelstore.database import open_database
from kubevision.core.labelstore.export import LEASE_SECONDS
from kubevision.core.labelstore.upload import local_database_url
from kubevision.local import api_keys
from kubevision.local.store import LocalStore

KILLS = ("gateway", "s3", "triton", "mlflow", "controller")
DOWN_SECONDS = 3  # how long each service stays dead before `up`
RECOVERY_SECONDS = 60  # from `up` to the first successful prediction (docs/operator.md)
ANY_PORT = ["--s3-port", "0", "--mlflow-port", "0", "--triton-http-port", "0", "--triton-grpc-port", "0",
            "--triton-metrics-port", "0", "--gateway-port", "0"]
TEST_IMAGE = (EXAMPLES / "samples" / "test" / "test_image.jpg").read_bytes()
BATCH = 4


def png(number: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (number % 256, number // 256 % 256, 77)).save(buffer, format="PNG")
    return buffer.getvalue()


class Load:
    """An uploader and a prediction stream, each on its own thread, recording every answer by the service that was
    down when it came (None: all up)."""

    def __init__(self, training: str, training_key: str, prediction_url: str, prediction_key: str, project: str):
        self.training, self.project = training, project
        self.training_headers = {"Training-Key": training_key}
        self.prediction_url, self.prediction_headers = prediction_url, {"Prediction-Key": prediction_key}
        self.down: str | None = None
        self.answers: dict[str, Counter] = {"upload": Counter(), "image": Counter(), "prediction": Counter()}
        self.acknowledged: dict[str, bytes] = {}  # image id: bytes, for each image answered OK or OKDuplicate
        self.last_prediction_ok = 0.0
        self.slowest_prediction: Counter = Counter()  # seconds, by the service that was down
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._upload, daemon=True),
                        threading.Thread(target=self._predict, daemon=True)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        alive = all(thread.is_alive() for thread in self.threads)
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=120)
        assert alive, "a client thread failed (its traceback is above)"

    def _record(self, kind: str, answer: str) -> None:
        self.answers[kind][(self.down, answer)] += 1

    def _upload(self) -> None:
        number = 50_000
        with httpx.Client(timeout=60) as http:
            while not self.stopping.is_set():
                images = {number + i: png(number + i) for i in range(BATCH)}
                number += BATCH
                files = [("imageData", (f"{n}.png", data, "image/png")) for n, data in images.items()]
                try:
                    answer = http.post(f"{self.training}/projects/{self.project}/images", files=files,
                                       headers=self.training_headers)
                except httpx.TransportError as error:
                    self._record("upload", type(error).__name__)
                    time.sleep(0.2)
                    continue
                self._record("upload", str(answer.status_code))
                if answer.status_code == 200:
                    for entry, data in zip(answer.json()["images"], images.values(), strict=True):
                        self._record("image", entry["status"])
                        if entry["status"] in ("OK", "OKDuplicate"):
                            self.acknowledged[entry["image"]["id"]] = data
                time.sleep(0.1 if answer.status_code == 200 else 0.2)

    def _predict(self) -> None:
        with httpx.Client(timeout=60) as http:
            while not self.stopping.wait(0.5):
                down, sent = self.down, time.monotonic()
                try:
                    answer = http.post(self.prediction_url, content=TEST_IMAGE, headers=self.prediction_headers)
                except httpx.TransportError as error:
                    self._record("prediction", type(error).__name__)
                    continue
                self.slowest_prediction[down] = max(self.slowest_prediction[down], time.monotonic() - sent)
                retry_after = answer.status_code != 503 or "retry-after" in answer.headers
                self._record("prediction", str(answer.status_code) if retry_after else "503 without Retry-After")
                if answer.status_code == 200:
                    self.last_prediction_ok = time.monotonic()


@pytest.mark.timeout(900)
def test_every_kill_costs_a_retry_and_nothing_else(quickstart, platform, kubevision_cli):
    keys = api_keys.ensure(Path(platform.data_dir), "default")
    training = f"{quickstart.gateway}/customvision/v3.3/training"
    project = httpx.post(f"{training}/projects", params={"name": "Crash suite"},
                         headers={"Training-Key": keys["trainingKey"]}, timeout=60).json()["id"]
    prediction = (f"{quickstart.gateway}/customvision/v3.0/Prediction/{quickstart.project_uid}/classify/iterations/"
                  f"{quickstart.publish_name}/image/nostore")
    recovery: dict[str, float] = {}
    with Load(training, keys["trainingKey"], prediction, quickstart.prediction_key, project) as load:
        time.sleep(3)
        for name in KILLS:
            record = platform.load_state().services[name]
            load.down = name
            os.killpg(record.pid, signal.SIGKILL)
            time.sleep(DOWN_SECONDS)
            started = time.monotonic()
            up = kubevision_cli("local", "up", "--data-dir", str(platform.data_dir), *ANY_PORT)
            assert up.returncode == 0, up.stdout + up.stderr
            while load.last_prediction_ok < started:
                assert time.monotonic() - started < RECOVERY_SECONDS, f"no prediction since {name} came back"
                time.sleep(0.2)
            recovery[name] = time.monotonic() - started
            load.down = None
            time.sleep(2)  # a few answers with everything up before the next kill
    print("seconds from `up` to a prediction:", {name: round(seconds, 1) for name, seconds in recovery.items()})
    print("answers:", {kind: dict(counts) for kind, counts in load.answers.items()})
    print("slowest prediction (s), by the service that was down:", dict(load.slowest_prediction))

    every = [(kind, down, answer) for kind, counts in load.answers.items() for (down, answer) in counts]
    assert not [a for a in every if a[2].startswith("5") and a[2] != "503"], every  # never a server error
    assert not [a for a in every if a[0] == "prediction" and a[2] == "404"], every  # never "not published"
    assert load.answers["upload"][(None, "200")] and load.answers["prediction"][(None, "200")]
    # A prediction needs no storage: sent while S3 is dead, it is answered, not held until S3 is back.
    assert load.slowest_prediction["s3"] < DOWN_SECONDS, load.slowest_prediction

    headers = {"Training-Key": keys["trainingKey"]}
    with httpx.Client(timeout=60) as http:
        listed = {}
        for skip in range(0, 100_000, 256):
            page = http.get(f"{training}/projects/{project}/images", headers=headers,
                            params={"take": 256, "skip": skip}).json()
            listed.update({image["id"]: image["originalImageUri"] for image in page})
            if len(page) < 256:
                break
        assert set(load.acknowledged) <= set(listed)  # nothing acknowledged is lost
        for image_id, uri in listed.items():  # nothing is listed without its bytes
            data = http.get(uri).content
            assert image_id not in load.acknowledged or data == load.acknowledged[image_id]
            Image.open(io.BytesIO(data)).verify()
        http.delete(f"{training}/projects/{project}", headers=headers)
    assert all(s.state == "healthy" for s in platform.status())


def eventually(check, what: str, seconds: float = 300):
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.5)
    return found


@pytest.mark.timeout(900)
def kill_gateway_while_it_exports(platform, project: str, kubevision_cli) -> None:
    """Kills the gateway while its exporter holds the project's export lease, and brings it back with `up`. S3 is
    paused meanwhile (SIGSTOP), so the export that the last upload started is caught mid-way, lease held."""
    services = platform.load_state().services
    database = open_database(local_database_url(Path(platform.data_dir)))
    os.killpg(services["s3"].pid, signal.SIGSTOP)
    try:
        def lease_holder() -> str | None:
            with database.reading() as session:
                return session.get(tables.Project, project).export_holder

        eventually(lease_holder, "the gateway's exporter took the lease", 30)
        os.killpg(services["gateway"].pid, signal.SIGKILL)
    finally:
        os.killpg(services["s3"].pid, signal.SIGCONT)
        database.dispose()
    up = kubevision_cli("local", "up", "--data-dir", str(platform.data_dir), *ANY_PORT)
    assert up.returncode == 0, up.stdout + up.stderr


def test_a_killed_trainer_fails_its_iteration_saying_how_and_a_new_one_trains(quickstart, platform,
                                                                                kubevision_cli):
    keys = api_keys.ensure(Path(platform.data_dir), "default")
    headers = {"Training-Key": keys["trainingKey"]}
    training = f"{quickstart.gateway}/customvision/v3.3/training"
    store = LocalStore(platform.data_dir / "resources.db")
    with httpx.Client(base_url=training, headers=headers, timeout=60) as http:
        project = http.post("/projects", params={"name": "Crash trainer"}).json()["id"]
        for tag_name in ("Hemlock", "Japanese_Cherry"):
            tag = http.post(f"/projects/{project}/tags", params={"name": tag_name}).json()["id"]
            photos = sorted((EXAMPLES / "samples" / tag_name).glob("*.jpg"))[:5]
            files = [("imageData", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
            assert http.post(f"/projects/{project}/images", params={"tagIds": tag}, files=files).status_code == 200
        before = {body["metadata"]["name"] for body in store.list("Iteration", "default")}
        kill_gateway_while_it_exports(platform, project, kubevision_cli)
        started = time.monotonic()
        assert http.post(f"/projects/{project}/train").status_code == 200  # once the lease lapses, not a 500
        assert time.monotonic() - started < LEASE_SECONDS + 10

        def iteration() -> dict | None:
            return next((body for body in store.list("Iteration", "default")
                         if body["metadata"]["name"] not in before), None)

        job = eventually(lambda: (iteration() or {}).get("status", {}).get("trainingJob"), "a training started")
        folder = platform.trainings_dir / job
        eventually(lambda: "MLflow run" in (folder / "trainer.log").read_text(errors="replace"),
                   "the trainer's MLflow run")
        shell = int((folder / "pid").read_text().split()[0])
        trainer = int(Path(f"/proc/{shell}/task/{shell}/children").read_text().split()[0])
        os.kill(trainer, signal.SIGKILL)

        failed = eventually(lambda: (body := iteration())["status"].get("phase") == "Failed" and body,
                            "the Iteration failed", 120)
        trained = next(c for c in failed["status"]["conditions"] if c["type"] == "Trained")
        assert "the trainer stopped: it was killed by signal 9 (SIGKILL)" in trained["message"], trained
        client = MlflowClient(platform.mlflow_settings().tracking_uri)
        experiment = client.get_experiment_by_name(
            tracking.experiment_name("default", failed["spec"]["projectRef"]["name"])).experiment_id

        def runs() -> list:  # ended by the pass that wrote Failed, just after it wrote it
            found = client.search_runs([experiment], f"tags.`{tracking.UID_TAG}` = '{failed['metadata']['uid']}'")
            return [run.info.status for run in found] == ["FAILED"] and found

        runs = eventually(runs, "the trainer's MLflow run ended as FAILED", 30)
        assert "SIGKILL" in runs[0].data.tags[tracking.FAILURE_TAG]

        eventually(lambda: [i["status"] for i in http.get(f"/projects/{project}/iterations").json()] == ["Failed"],
                   "the API shows the Iteration failed", 30)
        again = http.post(f"/projects/{project}/train", params={"forceTrain": "true"})
        assert again.status_code == 200, again.text
        eventually(lambda: http.get(f"/projects/{project}/iterations/{again.json()['id']}").json()["status"]
                   == "Completed", "the new Iteration trained")
        http.delete(f"/projects/{project}")
