"""Advanced training: fine-tune the later blocks of the backbone, with augmentation and early stopping, inside the
iteration's time budget.

Running the whole network forwards and backwards every epoch is too slow for a CPU budget, so the frozen early
blocks run once over several views of each image (the plain centre crop and augmented ones) and their activations
are cached; training then runs only the last blocks and the head over those. The head starts from a logistic
regression on the frozen features (a linear probe first keeps fine-tuning from tearing the pretrained features
apart early). BatchNorm keeps its pretrained statistics: batches of a few dozen images estimate them badly.
The numbers below were chosen by measurement on flowers12 (docs/benchmarks.md).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional
from torchvision.transforms import v2

from kubevision.core.domains import Backbone
from kubevision.core.training import ResolvedTraining
from kubevision.trainer import evaluation, quick
from kubevision.trainer.data import LabelledImages
from kubevision.trainer.network import Classifier, Trained, batch_inputs, device

log = logging.getLogger(__name__)

TRAINABLE_STAGES = 2  # the last stages of EfficientNet's blocks, plus its final 1x1 convolution
VIEWS = 8  # cached views of each training image: the plain centre crop and 7 augmented ones
CROP_SCALE = (0.25, 1.0)  # share of the image a random crop keeps
COLOUR_JITTER = 0.2  # brightness, contrast and saturation
LABEL_SMOOTHING = 0.1
WEIGHT_DECAY = 0.05
HEAD_LEARNING_RATE_FACTOR = 10 / 3  # the new head learns faster than the pretrained blocks
HOLD_OUT = 0.15  # share of images kept for early stopping and the reported metrics


def _split(network: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(frozen front, trainable tail) of a timm EfficientNet without classifier."""
    stages = list(network.blocks)
    front = nn.Sequential(network.conv_stem, network.bn1, *stages[:-TRAINABLE_STAGES])
    tail = nn.Sequential(*stages[-TRAINABLE_STAGES:], network.conv_head, network.bn2, network.global_pool)
    return front, tail


def _augmented_inputs(images, size: int) -> torch.Tensor:
    """Random crops, flips and colour jitter, as pixels in [0, 1] (seeded by the run's seed)."""
    transform = v2.Compose([
        v2.RandomResizedCrop(size, scale=CROP_SCALE, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=COLOUR_JITTER, contrast=COLOUR_JITTER, saturation=COLOUR_JITTER),
        v2.PILToTensor(),
        v2.ToDtype(torch.float32, scale=True),
    ])
    return torch.stack([transform(image) for image in images])


@torch.inference_mode()
def _cache(front: nn.Module, inputs: Callable[[list], torch.Tensor], images: list, batch_size: int) -> torch.Tensor:
    """Front activations of every image, kept in half precision to halve the cache."""
    on = device()
    chunks = []
    for first in range(0, len(images), batch_size):
        pixels = inputs(images[first:first + batch_size]).to(on)
        chunks.append(front((pixels - 0.5) / 0.5).to(torch.float16))
    return torch.cat(chunks)


def train(
    network: nn.Module,
    dataset: LabelledImages,
    spec: Backbone,
    options: ResolvedTraining,
    multilabel: bool,
    deadline: float,
    report: Callable[[str, float, int], None],
) -> Trained:
    on = device()
    fit, held_out = evaluation.holdout(dataset.primary_labels, options.seed, HOLD_OUT)
    targets = torch.from_numpy(dataset.targets).to(on)
    network.eval().to(on)
    front, tail = _split(network)
    for parameter in front.parameters():
        parameter.requires_grad_(False)

    started = time.monotonic()
    fit_images = [dataset.images[i] for i in fit]
    plain = _cache(front, lambda images: batch_inputs(images, spec), fit_images, options.batch_size)
    augmented = [
        _cache(front, lambda images: _augmented_inputs(images, spec.input_size), fit_images, options.batch_size)
        for _ in range(VIEWS - 1 if options.augmentation else 0)
    ]
    views = torch.stack([plain, *augmented], dim=1)  # (images, views, channels, height, width)
    validation = _cache(front, lambda images: batch_inputs(images, spec), [dataset.images[i] for i in held_out],
                        options.batch_size)
    log.info("cached %d views of %d images through the frozen blocks in %.0f s", views.shape[1], len(fit),
             time.monotonic() - started)

    head = _linear_probe(tail, plain, dataset.targets[fit], multilabel, options.seed).to(on)
    model = nn.Sequential(tail, head)
    optimizer = torch.optim.AdamW([
        {"params": tail.parameters(), "lr": options.learning_rate},
        {"params": head.parameters(), "lr": options.learning_rate * HEAD_LEARNING_RATE_FACTOR},
    ], weight_decay=WEIGHT_DECAY)
    steps = options.max_epochs * math.ceil(len(fit) / options.batch_size)
    cosine = lambda step: 0.5 * (1 + math.cos(math.pi * min(step / steps, 1)))  # noqa: E731
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
    loss_of = _loss(multilabel)
    best_loss, _ = _evaluate(model, validation, targets[held_out], loss_of)
    best_state, stale, epoch_seconds = copy.deepcopy(model.state_dict()), 0, 0.0
    log.info("epoch 0: held-out loss %.4f (the linear probe)", best_loss)
    for epoch in range(1, options.max_epochs + 1):
        if time.monotonic() + epoch_seconds > deadline:
            log.info("stopping before epoch %d: the time budget is spent", epoch)
            break
        epoch_start = time.monotonic()
        tail.train()
        for module in tail.modules():  # pretrained statistics stay; affine parameters still learn
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        order = torch.randperm(len(fit))
        view = torch.randint(views.shape[1], (len(fit),))
        loss_sum = 0.0
        for first in range(0, len(fit), options.batch_size):
            rows = order[first:first + options.batch_size]
            batch = views[rows, view[rows]].float().to(on)
            loss = loss_of(model(batch), targets[fit][rows.to(on)], smoothing=LABEL_SMOOTHING)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(rows)
        held_out_loss, accuracy = _evaluate(model, validation, targets[held_out], loss_of)
        epoch_seconds = time.monotonic() - epoch_start
        report("train_loss", loss_sum / len(fit), epoch)
        report("held_out_loss", held_out_loss, epoch)
        log.info("epoch %d/%d: loss %.4f, held-out loss %.4f, held-out accuracy %.3f (%.0f s)", epoch,
                 options.max_epochs, loss_sum / len(fit), held_out_loss, accuracy, epoch_seconds)
        if held_out_loss < best_loss:
            best_loss, best_state, stale = held_out_loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= options.early_stopping_patience:
                log.info("early stop: no better held-out loss for %d epochs", stale)
                break
    model.load_state_dict(best_state)
    # Served with the image and its mirror averaged: measured to cut errors at twice the inference cost.
    classifier = Classifier(network, head, multilabel, flip_average=True).eval().cpu()
    with torch.inference_mode():
        probabilities = classifier(batch_inputs([dataset.images[i] for i in held_out], spec)).numpy()
    return Trained(classifier, held_out, probabilities)


def _linear_probe(tail: nn.Module, plain: torch.Tensor, targets: np.ndarray, multilabel: bool, seed: int) -> nn.Linear:
    with torch.inference_mode():
        tail.eval()
        pooled = torch.cat([tail(plain[i:i + 64].float()) for i in range(0, len(plain), 64)]).cpu().numpy()
    return quick.fit_head(pooled, targets, multilabel, seed)


def _loss(multilabel: bool):
    def loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
        if multilabel:
            return functional.binary_cross_entropy_with_logits(logits, targets * (1 - smoothing) + smoothing / 2)
        return functional.cross_entropy(logits, targets.argmax(dim=1), label_smoothing=smoothing)

    return loss


@torch.inference_mode()
def _evaluate(model: nn.Module, cached: torch.Tensor, targets: torch.Tensor, loss_of) -> tuple[float, float]:
    """Held-out loss (what early stopping follows: smoother than accuracy on a small split) and accuracy."""
    model.eval()
    logits = torch.cat([model(cached[i:i + 64].float()) for i in range(0, len(cached), 64)])
    accuracy = (logits.argmax(dim=1) == targets.argmax(dim=1)).float().mean().item()
    # With the training's label smoothing: plain cross-entropy rewards the over-confident linear probe, and early
    # stopping would keep epoch 0 (measured).
    return loss_of(logits, targets, smoothing=LABEL_SMOOTHING).item(), accuracy
