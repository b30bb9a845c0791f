"""Real images for training tests, seeded through the label store (tests/seeding.py): Fashion-MNIST from Debian's
package, and Microsoft's Custom Vision quickstart photos, downscaled, from examples/samples."""

from __future__ import annotations

import gzip
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from seeding import Seed, seed, write_as_pipeline

from kubevision.core import api, dataset
from kubevision.core.storage import DatasetLayout, DatasetStore, ObjectStore
from kubevision.core.training import TrainingRequest, iteration_id

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "samples"
DATASET_BUCKET = "datasets"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Fashion-MNIST classes as Custom Vision tags; for Multilabel, what each class shows.
FASHION_TAGS = {0: "t-shirt", 2: "pullover", 7: "sneaker", 9: "ankle-boot"}
FASHION_MULTILABEL = {
    0: ["upper-body"], 2: ["upper-body", "long-sleeves"], 7: ["footwear"], 9: ["footwear", "ankle-high"],
    8: ["Negative"],  # bags: none of the tags
}


def fashion_mnist(per_class: int, classes) -> list[tuple[bytes, int]]:
    """The first `per_class` test images of each class, as PNG files."""
    if not FASHION_MNIST.is_dir():
        pytest.fail("Fashion-MNIST is missing: make test installs Debian's dataset-fashion-mnist")
    with gzip.open(FASHION_MNIST / "t10k-images-idx3-ubyte.gz") as f:
        pixels = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION_MNIST / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    chosen = []
    for label in classes:
        for index in np.flatnonzero(labels == label)[:per_class]:
            buffer = io.BytesIO()
            Image.fromarray(pixels[index]).save(buffer, format="PNG")
            chosen.append((buffer.getvalue(), int(label)))
    return chosen


def customvision_samples() -> list[tuple[bytes, str]]:
    return [(path.read_bytes(), tag) for tag in ("Hemlock", "Japanese_Cherry")
            for path in sorted((SAMPLES / tag).glob("*.jpg"))]


class TrainingSetup:
    """A project over a fresh dataset prefix, and iterations of it with their snapshots taken."""

    def __init__(self, store: ObjectStore, name: str, classification_type: str, domain: str = "GeneralCompact"):
        self.store = store
        self.project = api.CustomVisionProject(
            metadata={"name": name, "namespace": "tests", "uid": f"{name}-uid"},
            spec={"displayName": name, "classificationType": classification_type, "domain": domain,
                  "dataset": {"bucket": DATASET_BUCKET, "prefix": f"tests/{name}/"}},
        )
        store.ensure_bucket(DATASET_BUCKET)
        self.images = DatasetStore(store, DatasetLayout(DATASET_BUCKET, f"tests/{name}/"))
        self.pending: list[Seed] = []  # seeded through the label store before the next snapshot

    def add(self, data: bytes, tags: list[str], content_type: str = "image/png",
            regions: list[dataset.Region] | None = None) -> str:
        self.pending.append(Seed(data, tags, regions or []))
        return dataset.image_id(dataset.content_hash(data))

    def add_unchecked(self, data: bytes, tags: list[str], content_type: str = "image/png") -> str:
        """A file the label store refuses (corrupt, too large, no image), as a data pipeline may list it."""
        self.seed_pending()
        return write_as_pipeline(self.store, self.images.layout, data, content_type, tags)

    def seed_pending(self) -> None:
        if self.pending:
            seed(self.store, self.images.layout, self.pending)
            self.pending = []

    def request(self, iteration: str, training_type: str, **spec) -> TrainingRequest:
        item = api.Iteration(
            metadata={"name": iteration, "namespace": "tests", "uid": f"{iteration}-0123456789"},
            spec={"projectRef": {"name": self.project.metadata.name}, "trainingType": training_type, **spec},
        )
        self.seed_pending()
        self.images.snapshot(iteration_id(item))
        return TrainingRequest(project=self.project, iteration=item)


@pytest.fixture
def object_store(platform) -> ObjectStore:
    return ObjectStore(platform.s3_settings())


@pytest.fixture
def setup_project(object_store):
    def make(name: str, classification_type: str = "Multiclass", domain: str = "GeneralCompact") -> TrainingSetup:
        return TrainingSetup(object_store, name, classification_type, domain)

    return make


@dataclass
class Quickstart:
    """The project that `kubevision local demo` (the end of `make run`) trains and publishes from examples/."""

    gateway: str
    project_uid: str
    publish_name: str
    prediction_key: str
    output: str


@pytest.fixture(scope="session")
def quickstart(platform) -> Quickstart:
    """Run the demo as `make run` does, and read what it prints."""
    command = [str(Path(sys.executable).parent / "kubevision"), "local", "demo", "--examples", str(EXAMPLES),
               "--data-dir", str(platform.data_dir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    key = re.search(r'"Prediction-key": "([0-9a-f]{32})"', result.stdout)
    url = re.search(r"(http://127\.0\.0\.1:\d+)/customvision/v3\.1/Prediction/([0-9a-f-]{36})/classify/iterations/"
                    r"([a-z0-9-]+)/image", result.stdout)
    assert key and url, result.stdout
    return Quickstart(url[1], url[2], url[3], key[1], result.stdout)
