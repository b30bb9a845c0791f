"""Quick and Advanced training on a tiny set. Advanced chooses between Quick's model and the fine-tuned network by
cross-validation on the training images, serves the one it chose, and reports that one's cross-validated
predictions."""

import time

import numpy as np
import pytest
import torch
from PIL import Image

from kubevision.core.api import TrainingType
from kubevision.core.domains import LITE0
from kubevision.core.training import ResolvedTraining
from kubevision.trainer import backbone, splits
from kubevision.trainer.classification import advanced, evaluation, quick
from kubevision.trainer.classification.network import Classifier, batch_inputs
from kubevision.trainer.data import LabelledImages

TAGS = ["horizontal", "vertical", "checks"]


def stripes(kind: int, rng: np.random.Generator) -> Image.Image:
    """A noisy 64 px pattern: one kind a tag, easy for pretrained features."""
    rows, columns = np.indices((64, 64)) // int(rng.integers(4, 9))
    pattern = [rows % 2, columns % 2, (rows + columns) % 2][kind]
    pixels = pattern[..., None] * rng.uniform(120, 255, 3) + rng.normal(0, 25, (64, 64, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def dataset() -> LabelledImages:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(TAGS)), 5)
    return LabelledImages(ids=[str(i) for i in range(len(labels))], images=[stripes(k, rng) for k in labels],
                          tags=TAGS, targets=np.eye(len(TAGS), dtype=np.float32)[labels], skipped=[], untagged=0)


def options(epochs: int) -> ResolvedTraining:
    # without augmentation: the plain view and its mirror only, which keeps the test quick
    return ResolvedTraining(training_type=TrainingType.ADVANCED, budget_minutes=5, seed=0, max_epochs=epochs,
                            batch_size=8, augmentation=False)


def test_fine_tuning_is_served_only_when_it_scores_strictly_better():
    assert advanced.choose(quick_score=0.90, fine_tuned_score=0.95) == advanced.FINE_TUNED
    assert advanced.choose(quick_score=0.95, fine_tuned_score=0.95) == advanced.QUICK
    assert advanced.choose(quick_score=0.95, fine_tuned_score=0.90) == advanced.QUICK


def test_without_time_to_fine_tune_quicks_model_is_served_and_scored_by_cross_validation(dataset):
    network = backbone.load(LITE0)
    pretrained = {k: v.clone() for k, v in network.state_dict().items()}
    trained = advanced.train(network, dataset, LITE0, options(3), False, time.monotonic(), lambda *_: None)
    assert trained.choice == advanced.QUICK
    assert trained.comparison["epochs"] == 0 and "fine_tuned_top1_accuracy" not in trained.comparison
    # The served model is Quick's: the pretrained network untouched, a head fitted on all images, no mirror.
    served = trained.classifier
    assert not served.flip_average
    assert all(torch.equal(pretrained[k], v) for k, v in served.backbone.state_dict().items())
    features = quick.features(backbone.load(LITE0), dataset.images, LITE0, 8)
    expected = quick.fit_head(features, dataset.targets, False, 0)
    np.testing.assert_allclose(served.head.weight.detach(), expected.weight.detach(), atol=1e-4)
    # Reported: each image scored by a head fitted without it, on the folds the comparison used.
    folds = splits.folds(dataset.primary_labels, 0, max_folds=advanced.FOLDS)
    np.testing.assert_allclose(trained.probabilities, quick.out_of_fold(features, dataset.targets, False, 0, folds),
                               atol=1e-3)
    assert trained.comparison["quick_top1_accuracy"] == evaluation.top1_accuracy(dataset.targets,
                                                                                 trained.probabilities)


def test_the_served_model_is_the_one_the_cross_validation_chose(dataset):
    network = backbone.load(LITE0)
    pretrained = {k: v.clone() for k, v in network.state_dict().items()}
    trained = advanced.train(network, dataset, LITE0, options(2), False, time.monotonic() + 300, lambda *_: None)
    scores = trained.comparison
    assert scores["epochs"] >= 1
    assert trained.choice == advanced.choose(scores["quick_top1_accuracy"], scores["fine_tuned_top1_accuracy"])
    reported = evaluation.top1_accuracy(dataset.targets, trained.probabilities)
    changed = not all(torch.equal(pretrained[k], v) for k, v in trained.classifier.backbone.state_dict().items())
    if trained.choice == advanced.FINE_TUNED:  # the later blocks were trained on all images; served with the mirror
        assert changed and trained.classifier.flip_average
        assert reported == scores["fine_tuned_top1_accuracy"]
    else:
        assert not changed and not trained.classifier.flip_average
        assert reported == scores["quick_top1_accuracy"]
    with torch.inference_mode():
        probabilities = trained.classifier(batch_inputs(dataset.images, LITE0)).numpy()
    assert probabilities.shape == (len(dataset.ids), len(TAGS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_quicks_served_model_gives_the_probabilities_its_head_was_fitted_for(dataset):
    network = backbone.load(LITE0)
    features = quick.features(network, dataset.images, LITE0, 8)
    head = quick.fit_head(features, dataset.targets, False, 0)
    served = Classifier(network, head, False).eval()
    with torch.inference_mode():
        probabilities = served(batch_inputs(dataset.images, LITE0)).numpy()
    np.testing.assert_allclose(probabilities, quick.head_probabilities(head, features, False), atol=1e-4)
