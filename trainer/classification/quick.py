"""Quick training: the pretrained backbone stays frozen, its features are computed once, and a logistic
regression head is fitted on them (scikit-learn), then copied into a linear layer for export."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from torch import nn

from kubevision.core.domains import Backbone
from kubevision.core.training import ResolvedTraining
from kubevision.trainer.classification.network import Classifier, Trained, batch_inputs, device, normalise
from kubevision.trainer.data import LabelledImages
from kubevision.trainer.splits import folds

log = logging.getLogger(__name__)

REGULARISATION = 1.0  # scikit-learn's C: inverse strength of the L2 penalty


@torch.inference_mode()
def features(network: nn.Module, images: list[Image.Image], backbone: Backbone, batch_size: int) -> np.ndarray:
    """Pooled backbone features of each image (after the served preprocessing and normalisation)."""
    on = device()
    network.eval().to(on)
    chunks = []
    start = time.monotonic()
    for first in range(0, len(images), batch_size):
        inputs = batch_inputs(images[first:first + batch_size], backbone)
        chunks.append(network(normalise(inputs.to(on))).cpu().numpy())
        done = min(first + batch_size, len(images))
        log.info("features: %d/%d images (%.1f images/s)", done, len(images), done / (time.monotonic() - start))
    return np.concatenate(chunks)


def _fit(x: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    return LogisticRegression(C=REGULARISATION, max_iter=5000, random_state=seed).fit(x, y)


def fit_head(x: np.ndarray, targets: np.ndarray, multilabel: bool, seed: int) -> nn.Linear:
    """A linear layer whose softmax (Multiclass) or sigmoid (Multilabel) gives the fitted model's probabilities."""
    tags = targets.shape[1]
    weight = np.zeros((tags, x.shape[1]), dtype=np.float32)
    bias = np.zeros(tags, dtype=np.float32)
    if multilabel:  # one binary model a tag
        for i in range(tags):
            if targets[:, i].min() == targets[:, i].max():  # a fold may hold no image without (or with) the tag
                bias[i] = 10.0 if targets[0, i] else -10.0
                continue
            model = _fit(x, targets[:, i], seed)
            weight[i], bias[i] = model.coef_[0], model.intercept_[0]
    else:
        model = _fit(x, targets.argmax(axis=1), seed)
        if tags == 2:  # scikit-learn keeps one row for two classes: softmax([0, z]) = sigmoid(z)
            weight[1], bias[1] = model.coef_[0], model.intercept_[0]
        else:
            weight[:], bias[:] = model.coef_, model.intercept_
    head = nn.Linear(x.shape[1], tags)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    return head


def head_probabilities(head: nn.Linear, x: np.ndarray, multilabel: bool) -> np.ndarray:
    with torch.no_grad():
        logits = head(torch.from_numpy(x))
        return (torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)).numpy()


def out_of_fold(
    x: np.ndarray, targets: np.ndarray, multilabel: bool, seed: int, splits: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Each image's probabilities from a head fitted without it."""
    probabilities = np.zeros_like(targets)
    for train, test in splits:
        head = fit_head(x[train], targets[train], multilabel, seed)
        probabilities[test] = head_probabilities(head, x[test], multilabel)
    return probabilities


def train(network: nn.Module, dataset: LabelledImages, spec: Backbone, options: ResolvedTraining,
          multilabel: bool) -> Trained:
    """Features once; each image scored by a head fitted without it (k-fold); the served head fitted on all."""
    x = features(network, dataset.images, spec, options.batch_size)
    splits = folds(dataset.primary_labels, options.seed)
    held_out = out_of_fold(x, dataset.targets, multilabel, options.seed, splits)
    head = fit_head(x, dataset.targets, multilabel, options.seed)
    return Trained(Classifier(network.cpu(), head, multilabel), np.arange(len(dataset.ids)), held_out)
