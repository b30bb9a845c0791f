"""A detector's held-out images, as the trainer keeps them, give back its metrics at the thresholds it was evaluated
with, and other metrics at others."""

import numpy as np
import pytest

from kubevision.core.detection_metrics import Predictions, evaluate, evaluate_held_out, held_out
from kubevision.core.heldout import HeldOut

TAGS = ["fork", "scissors"]


def scene(seed: int):
    """Images with one or two true boxes each, and predictions near them: some tight, some loose, some wrong."""
    rng = np.random.default_rng(seed)
    truth_boxes, truth_labels, predicted = [], [], []
    for _ in range(12):
        count = rng.integers(1, 3)
        corners = np.sort(rng.uniform(0.05, 0.95, size=(count, 2, 2)), axis=1)  # (box, min/max, x/y)
        boxes = np.concatenate([corners[:, 0], corners[:, 1]], axis=1).astype(np.float32)  # left, top, right, bottom
        labels = rng.integers(0, len(TAGS), size=count)
        shifted = boxes + rng.normal(0, 0.04, size=boxes.shape).astype(np.float32)
        found = np.concatenate([shifted[:, :2], shifted[:, 2:] - shifted[:, :2]], axis=1)  # left, top, width, height
        scores = rng.uniform(0.1, 1.0, size=count).astype(np.float32)
        classes = np.where(rng.uniform(size=count) < 0.8, labels, 1 - labels)
        truth_boxes.append(boxes)
        truth_labels.append(labels)
        predicted.append(Predictions(found, scores, classes))
    return truth_boxes, truth_labels, predicted


def test_kept_images_give_back_the_trainers_metrics():
    truth_boxes, truth_labels, predicted = scene(0)
    direct = evaluate(truth_boxes, truth_labels, predicted, TAGS, 0.5).metrics
    kept = HeldOut.model_validate_json(held_out([f"image-{i}" for i in range(12)], truth_boxes, truth_labels,
                                                predicted, TAGS, 0.5).model_dump_json())
    again = evaluate_held_out(kept, 0.5, 0.5).metrics
    assert (again.precision, again.recall, again.average_precision) == pytest.approx(
        (direct.precision, direct.recall, direct.average_precision), abs=1e-4)
    assert [v for t in again.per_tag for v in (t.precision, t.recall, t.average_precision)] == pytest.approx(
        [v for t in direct.per_tag for v in (t.precision, t.recall, t.average_precision)], abs=1e-4)
    first = kept.images[0]
    assert first.tags == sorted({TAGS[label] for label in truth_labels[0]})
    for row in range(len(TAGS)):
        mine = predicted[0].scores[predicted[0].classes == row]
        assert first.probabilities[row] == pytest.approx(mine.max() if mine.size else 0.0, abs=1e-6)


def test_other_thresholds_count_other_figures():
    truth_boxes, truth_labels, predicted = scene(1)
    kept = held_out([f"image-{i}" for i in range(12)], truth_boxes, truth_labels, predicted, TAGS, 0.5)
    usual, strict = evaluate_held_out(kept, 0.5, 0.5).metrics, evaluate_held_out(kept, 0.5, 0.9).metrics
    loose = evaluate_held_out(kept, 0.05, 0.5).metrics
    assert strict.average_precision < usual.average_precision
    assert strict.recall < usual.recall < loose.recall
    assert loose.average_precision == usual.average_precision  # it takes every box, whatever their probability
