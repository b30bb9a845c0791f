"""Held-out evaluation as Custom Vision reports it.

A tag is predicted when its probability reaches the threshold (0.5 by default). Per tag: precision, recall, and
average precision over all thresholds; overall: precision and recall over every (image, tag) decision, and the
mean of the per-tag average precisions. Predictions are computed on images the scoring model never trained on,
and kept, so that the figures at another threshold need no retraining (`metrics_at`).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score

from kubevision.core.api import IterationMetrics, TagMetrics
from kubevision.core.heldout import counted_at
from kubevision.trainer.splits import folds


def _safe_ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def metrics_at(targets: np.ndarray, probabilities: np.ndarray, tags: list[str], threshold: float) -> IterationMetrics:
    actual = targets.astype(bool)
    counted = counted_at(actual, probabilities, threshold)
    per_tag = [TagMetrics(
        tag=tag, precision=counted.tag_precision[i], recall=counted.tag_recall[i],
        average_precision=float(average_precision_score(actual[:, i], probabilities[:, i])) if actual[:, i].any()
        else 0.0,
    ) for i, tag in enumerate(tags)]
    return IterationMetrics(
        probability_threshold=threshold, precision=counted.precision, recall=counted.recall,
        average_precision=float(np.mean([t.average_precision for t in per_tag])), per_tag=per_tag,
    )


def top1_accuracy(targets: np.ndarray, probabilities: np.ndarray) -> float:
    """For Multiclass: the share of images whose most probable tag is right."""
    return float((targets.argmax(axis=1) == probabilities.argmax(axis=1)).mean())


def confusion(targets: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Multiclass confusion matrix: rows are the true tag, columns the most probable one."""
    size = targets.shape[1]
    matrix = np.zeros((size, size), dtype=int)
    np.add.at(matrix, (targets.argmax(axis=1), probabilities.argmax(axis=1)), 1)
    return matrix


def threshold_shifts(targets: np.ndarray, probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Multilabel: for each tag, the logit shift that moves its best-F1 threshold (on held-out predictions) to
    `threshold`. Added to the head's bias, it gives each tag its own threshold behind one served threshold."""
    logits = np.log(np.clip(probabilities, 1e-7, 1 - 1e-7) / np.clip(1 - probabilities, 1e-7, 1))
    shifts = np.zeros(targets.shape[1], dtype=np.float32)
    for i in range(targets.shape[1]):
        candidates = np.unique(logits[:, i])
        if not targets[:, i].any() or len(candidates) < 2:
            continue
        f1 = [_f1(targets[:, i] > 0, logits[:, i] >= c) for c in candidates]
        best = candidates[int(np.argmax(f1))]
        # midway to the next lower score, so that the best cut is not on a single image's edge
        lower = candidates[candidates < best]
        cut = (best + lower.max()) / 2 if len(lower) else best
        shifts[i] = np.log(threshold / (1 - threshold)) - cut
    return shifts


def _f1(actual: np.ndarray, predicted: np.ndarray) -> float:
    true_positives = (actual & predicted).sum()
    return _safe_ratio(2 * true_positives, actual.sum() + predicted.sum())


def shift_probabilities(probabilities: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    logits = np.log(np.clip(probabilities, 1e-7, 1 - 1e-7) / np.clip(1 - probabilities, 1e-7, 1))
    return 1 / (1 + np.exp(-(logits + shifts)))


def calibrate(
    targets: np.ndarray, probabilities: np.ndarray, threshold: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-tag threshold shifts from all held-out predictions, and those predictions shifted honestly: each
    image by shifts chosen on the other images only, so that the reported figures stay held-out."""
    labels = np.where(targets.any(axis=1), targets.argmax(axis=1), -1)
    calibrated = np.empty_like(probabilities)
    for chosen_on, applied_to in folds(labels, seed):
        shifts = threshold_shifts(targets[chosen_on], probabilities[chosen_on], threshold)
        calibrated[applied_to] = shift_probabilities(probabilities[applied_to], shifts)
    return threshold_shifts(targets, probabilities, threshold), calibrated
