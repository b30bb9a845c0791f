"""What `make run` ends with: the trees project trained on the sample photos the repository ships and published,
then a curl line and a Python SDK snippet that classify the quickstart's test photo. Run again, it reuses what
the first run made."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from kubevision.core.labelstore.upload import upload_folders
from kubevision.core.storage import ObjectStore
from kubevision.local import api_keys
from kubevision.local.supervisor import DEFAULT_NAMESPACE, LocalPlatform

SAMPLE_TAGS = ("Hemlock", "Japanese_Cherry")
TEST_IMAGE = Path("samples/test/test_image.jpg")


@dataclass
class Demo:
    project_uid: str
    publish_name: str
    prediction_key: str
    training_key: str
    gateway: str
    test_image: Path

    def instructions(self) -> str:
        url = (f"{self.gateway}/customvision/v3.1/Prediction/{self.project_uid}/classify/iterations/"
               f"{self.publish_name}/image")
        return f"""Open the web portal at {self.gateway}/portal/ and sign in with the Training-Key {self.training_key}
to create projects, upload and tag photos, train, test and publish in the browser.

Classify the quickstart's test photo (a hemlock) with curl:

  curl -s -H "Prediction-Key: {self.prediction_key}" -H "Content-Type: application/octet-stream" \\
    --data-binary @{self.test_image} \\
    {url}

or with Microsoft's Python SDK (pip install azure-cognitiveservices-vision-customvision), unchanged but for the
endpoint and the key:

  from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
  from msrest.authentication import ApiKeyCredentials

  credentials = ApiKeyCredentials(in_headers={{"Prediction-key": "{self.prediction_key}"}})
  predictor = CustomVisionPredictionClient("{self.gateway}", credentials)
  with open("{self.test_image}", "rb") as image:
      result = predictor.classify_image("{self.project_uid}", "{self.publish_name}", image.read())
  print(result.predictions[0].tag_name, result.predictions[0].probability)
"""


def run(platform: LocalPlatform, examples: Path, timeout: float = 900,
        progress=lambda message: None) -> Demo:
    from kubevision.local.store import LocalStore

    project_manifest = yaml.safe_load((examples / "project.yaml").read_text())
    iteration_manifest = yaml.safe_load((examples / "quickstart-iteration.yaml").read_text())
    store = LocalStore(platform.data_dir / "resources.db")
    name = iteration_manifest["metadata"]["name"]
    iteration = store.get("Iteration", DEFAULT_NAMESPACE, name)
    if (iteration or {}).get("status", {}).get("phase") != "Published":
        body, _ = store.apply(project_manifest)
        objects = ObjectStore(platform.s3_settings())
        objects.ensure_bucket(body["spec"]["dataset"]["bucket"])
        report = upload_folders(platform.data_dir, objects, body, [examples / "samples" / tag for tag in SAMPLE_TAGS])
        progress(f"uploaded {report.added} new sample photos; training {name} (Quick) ...")
        store.apply(iteration_manifest)
        iteration = _wait_published(store, name, timeout)
    project_body = store.get("CustomVisionProject", DEFAULT_NAMESPACE, iteration["spec"]["projectRef"]["name"])
    gateway = next(s for s in platform.status() if s.name == "gateway")
    keys = api_keys.ensure(platform.data_dir, DEFAULT_NAMESPACE)
    demo = Demo(
        project_uid=project_body["metadata"]["uid"], publish_name=iteration["status"]["publishedName"],
        prediction_key=keys["predictionKey"], training_key=keys["trainingKey"],
        gateway=gateway.endpoints.get("api", ""), test_image=examples / TEST_IMAGE,
    )
    _wait_served(demo, timeout=60)
    return demo


def _wait_served(demo: Demo, timeout: float) -> None:
    """Until the gateway answers for the published model (it re-reads resources every second), so that the
    printed lines work at once."""
    url = (f"{demo.gateway}/customvision/v3.1/prediction/{demo.project_uid}/classify/iterations/"
           f"{demo.publish_name}/image/nostore")
    headers = {"Prediction-Key": demo.prediction_key, "Content-Type": "application/octet-stream"}
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.post(url, content=demo.test_image.read_bytes(), headers=headers, timeout=30)
            if response.status_code == 200:
                return
            problem = response.text
        except httpx.HTTPError as error:
            problem = str(error)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway at {demo.gateway} does not serve {demo.publish_name}: {problem}")
        time.sleep(0.5)


def _wait_published(store, name: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = store.get("Iteration", DEFAULT_NAMESPACE, name) or {}
        status = body.get("status") or {}
        if status.get("phase") == "Published":
            return body
        if status.get("phase") == "Failed" or time.monotonic() > deadline:
            reasons = "; ".join(f"{c['type']}={c['status']} {c['reason']}: {c.get('message', '')}"
                                for c in status.get("conditions", []))
            raise RuntimeError(f"iteration {name} is {status.get('phase', 'Pending')}, not Published ({reasons}); "
                               f"see kubevision get iterations and the trainer's log")
        time.sleep(1)
