"""Quick and Advanced detector training on a tiny drawn set. Advanced starts from Quick's model and keeps whichever
scores best on the held-out images, so it never serves a model that scores below Quick's there."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from kubevision.core.api import TrainingType
from kubevision.core.domains import LITE0
from kubevision.core.training import ResolvedTraining
from kubevision.trainer.detection import training
from kubevision.trainer.detection.data import RegionImages
from kubevision.trainer.seeds import seed_everything

TAGS = ["square", "disc"]
PASSES = training.QUICK_MIN_EPOCHS, training.QUICK_MAX_EPOCHS  # as shipped, before the fixture shortens them


def drawn(kind: int, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """A noisy 160 px picture with one red square or one blue disc, and its box (fractions of the image)."""
    image = Image.fromarray(rng.integers(90, 160, (160, 160, 3), dtype=np.uint8))
    side = int(rng.integers(40, 80))
    left, top = (int(v) for v in rng.integers(0, 160 - side, 2))
    box = (left, top, left + side, top + side)
    draw = ImageDraw.Draw(image)
    (draw.rectangle if kind == 0 else draw.ellipse)(box, fill=((230, 30, 30), (30, 30, 230))[kind])
    return image, np.array([box], dtype=np.float32) / 160


@pytest.fixture(scope="module")
def dataset() -> RegionImages:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(TAGS)), 8)
    pictures = [drawn(kind, rng) for kind in labels]
    return RegionImages(ids=[str(i) for i in range(len(labels))], images=[image for image, _ in pictures],
                        boxes=[box for _, box in pictures], labels=[np.array([kind]) for kind in labels], tags=TAGS,
                        skipped=[], unlabelled=0)


def fitted(dataset: RegionImages, training_type: TrainingType) -> training.Fitted:
    seed_everything(0)
    options = ResolvedTraining(training_type=training_type, budget_minutes=5, seed=0, max_epochs=1,
                               early_stopping_patience=1, learning_rate=3e-3, augmentation=False)
    return training.train(dataset, LITE0, options, float("inf"), lambda *_, **__: None)


@pytest.fixture(autouse=True)
def short_quick(monkeypatch):
    monkeypatch.setattr(training, "QUICK_MIN_EPOCHS", 3)
    monkeypatch.setattr(training, "QUICK_MAX_EPOCHS", 3)
    monkeypatch.setattr(training, "QUICK_VIEWS", 1)


def test_advanced_starts_from_quick_and_keeps_quicks_model_when_fine_tuning_scores_worse(dataset, monkeypatch):
    quick = fitted(dataset, TrainingType.QUICK)
    for factor in ("FINE_TUNE_HEAD_LEARNING_RATE_FACTOR", "BACKBONE_LEARNING_RATE_FACTOR"):
        monkeypatch.setattr(training, factor, 1e5)  # learning rates that ruin the fine-tuned network
    advanced = fitted(dataset, TrainingType.ADVANCED)
    assert quick.evaluation.metrics.average_precision > 0  # Quick's model has something to lose
    assert (quick.held_out == advanced.held_out).all() and advanced.epochs == quick.epochs == 3
    for ours, theirs in zip(quick.predictions, advanced.predictions, strict=True):  # the very same model
        np.testing.assert_allclose(ours.boxes, theirs.boxes, atol=1e-5)
        np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-5)
    pretrained = training.build(LITE0, len(TAGS)).backbone.body.state_dict()
    assert all(torch.equal(pretrained[name], value)  # Quick leaves the backbone as it was
               for name, value in quick.served.detector.backbone.body.state_dict().items())


def test_quick_makes_more_passes_over_a_few_dozen_images_than_over_hundreds(monkeypatch):
    monkeypatch.setattr(training, "QUICK_MIN_EPOCHS", PASSES[0])
    monkeypatch.setattr(training, "QUICK_MAX_EPOCHS", PASSES[1])
    few, hundreds = 20, 176  # steps a pass: the quickstart's 27 training photos and BCCD's 234, 6 views, 8 a step
    assert training.quick_epochs(few) == PASSES[1] > training.quick_epochs(hundreds) == PASSES[0]
    middle = training.quick_epochs(30)
    assert PASSES[0] < middle < PASSES[1] and middle * 30 >= training.QUICK_MIN_STEPS
