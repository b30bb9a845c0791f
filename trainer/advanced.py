"""Advanced training: fine-tune the later blocks of the backbone, with augmentation and early stopping, inside the
iteration's time budget.

On a CPU, running the whole network forwards and backwards every epoch is too slow for the budget, so the frozen
early blocks run once over several augmented views of each image; training then runs only the later blocks and the
head, over those cached activations. The head starts from a logistic regression fitted on frozen features (a
linear probe first, then fine-tuning, keeps the pretrained features from being torn apart early on).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2

from kubevision.core.domains import Backbone
from kubevision.core.training import ResolvedTraining
from kubevision.trainer import evaluation, quick
from kubevision.trainer.data import LabelledImages
from kubevision.trainer.network import Classifier, Trained, batch_inputs

log = logging.getLogger(__name__)

TRAINABLE_STAGES = 2  # the last stages of EfficientNet's blocks, plus its final 1x1 convolution
AUGMENTED_VIEWS = 4  # views of each training image cached through the frozen part
LABEL_SMOOTHING = 0.1
WEIGHT_DECAY = 1e-4
HOLD_OUT = 0.2  # share of images kept for early stopping and the reported metrics


def _split(network: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(frozen front, trainable tail) of a timm EfficientNet without classifier."""
    stages = list(network.blocks)
    front = nn.Sequential(network.conv_stem, network.bn1, *stages[:-TRAINABLE_STAGES])
    tail = nn.Sequential(*stages[-TRAINABLE_STAGES:], network.conv_head, network.bn2, network.global_pool)
    return front, tail


def _augment(size: int) -> v2.Compose:
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.35, 1.0), interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3),
        v2.PILToTensor(),
        v2.ToDtype(torch.float32, scale=True),
    ])


@torch.inference_mode()
def _cache(front: nn.Module, inputs: Callable[[list[int]], torch.Tensor], count: int, batch_size: int) -> torch.Tensor:
    mean = torch.tensor((0.5, 0.5, 0.5)).view(1, 3, 1, 1)
    chunks = [front((inputs(list(range(i, min(i + batch_size, count)))) - mean) / mean)
              for i in range(0, count, batch_size)]
    return torch.cat(chunks)


def train(
    network: nn.Module,
    dataset: LabelledImages,
    spec: Backbone,
    options: ResolvedTraining,
    multilabel: bool,
    deadline: float,
    report: Callable[[str, float, int], None],
):
    fit, held_out = evaluation.holdout(dataset.primary_labels, options.seed, HOLD_OUT)
    targets = torch.from_numpy(dataset.targets)
    network.eval()
    front, tail = _split(network)
    for parameter in front.parameters():
        parameter.requires_grad_(False)

    # Linear probe first: the head starts where Quick training ends.
    features = quick.features(network, [dataset.images[i] for i in fit], spec, options.batch_size)
    head = quick.fit_head(features, dataset.targets[fit], multilabel, options.seed)

    started = time.monotonic()
    augment = _augment(spec.input_size)
    if options.augmentation:
        views = [_cache(front, lambda rows: torch.stack([augment(dataset.images[fit[r]]) for r in rows]), len(fit),
                        options.batch_size) for _ in range(AUGMENTED_VIEWS)]
    else:
        views = [_cache(front, lambda rows: batch_inputs([dataset.images[fit[r]] for r in rows], spec), len(fit),
                        options.batch_size)]
    validation = _cache(front, lambda rows: batch_inputs([dataset.images[held_out[r]] for r in rows], spec),
                        len(held_out), options.batch_size)
    log.info("cached %d views of %d images in %.0f s", len(views), len(fit), time.monotonic() - started)

    model = nn.Sequential(tail, head)
    parameters = [{"params": tail.parameters(), "lr": options.learning_rate},
                  {"params": head.parameters(), "lr": options.learning_rate * 10}]
    optimizer = torch.optim.AdamW(parameters, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=options.max_epochs)
    loss_of = _loss(multilabel)
    best = (-1.0, copy.deepcopy(model.state_dict()))
    stale = 0
    epoch_seconds = 0.0
    for epoch in range(1, options.max_epochs + 1):
        if time.monotonic() + epoch_seconds > deadline:
            log.info("stopping before epoch %d: the time budget is spent", epoch)
            break
        epoch_start = time.monotonic()
        model.train()
        loss_sum = 0.0
        order = torch.randperm(len(fit))
        for first in range(0, len(fit), options.batch_size):
            rows = order[first:first + options.batch_size]
            view = views[np.random.randint(len(views))]
            optimizer.zero_grad()
            loss = loss_of(model(view[rows]), targets[fit][rows])
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(rows)
        schedule.step()
        score, _ = _evaluate(model, validation, dataset.targets[held_out], multilabel)
        epoch_seconds = time.monotonic() - epoch_start
        report("train_loss", loss_sum / len(fit), epoch)
        report("validation_score", score, epoch)
        log.info("epoch %d/%d: loss %.4f, held-out score %.4f (%.0f s)", epoch, options.max_epochs,
                 loss_sum / len(fit), score, epoch_seconds)
        if score > best[0]:
            best, stale = (score, copy.deepcopy(model.state_dict())), 0
        else:
            stale += 1
            if stale >= options.early_stopping_patience:
                log.info("early stop: no better held-out score for %d epochs", stale)
                break
    model.load_state_dict(best[1])
    _, probabilities = _evaluate(model, validation, dataset.targets[held_out], multilabel)
    return Trained(Classifier(network.eval(), head, multilabel), held_out, probabilities)


def _loss(multilabel: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if multilabel:
        return nn.BCEWithLogitsLoss()
    cross_entropy = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    return lambda logits, targets: cross_entropy(logits, targets.argmax(dim=1))


@torch.inference_mode()
def _evaluate(model: nn.Module, cached: torch.Tensor, targets: np.ndarray, multilabel: bool):
    """Held-out score (mean average precision: smoother than accuracy on a small split) and probabilities."""
    model.eval()
    logits = model(cached)
    probabilities = (torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)).numpy()
    tags = [str(i) for i in range(targets.shape[1])]
    return evaluation.metrics_at(targets, probabilities, tags, 0.5).average_precision, probabilities
