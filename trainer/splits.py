"""How a task's images are split to score a model on images it never trained on: cross-validation folds for a
classifier, one held-out split for a detector."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit


def folds(labels: np.ndarray, seed: int, max_folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold: each image is scored once, by a model trained without it. Fewer folds when a class
    is too small for five (every class has at least MIN_IMAGES_PER_TAG images)."""
    smallest = np.unique(labels, return_counts=True)[1].min()
    splitter = StratifiedKFold(n_splits=int(min(max_folds, max(2, smallest))), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


def holdout(labels: np.ndarray, seed: int, fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """One stratified split: (train, held-out) indices, every class represented in both. The detector's early
    stopping uses it: one training of a detector costs too much to cross-validate within a budget."""
    classes = len(np.unique(labels))
    held_out = max(classes, round(fraction * len(labels)))
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=held_out, random_state=seed)
    return next(splitter.split(np.zeros(len(labels)), labels))
