"""Advanced training: fine-tune the later blocks of the backbone, with augmentation, inside the iteration's time
budget, and serve it only where it beats Quick's model on the training images.

Whether fine-tuning helps depends on the dataset, so it is measured, never assumed: the images are split into
stratified folds, one fine-tuned network is trained per fold without it, and every image is scored once by a network
that never saw it (cross-validation: a single held-out split of a few dozen images is too noisy to choose with).
Quick's model (the same frozen features, a logistic regression) is scored on the same folds. The number of epochs
is chosen on the cross-validated loss; if the fine-tuned networks then make fewer cross-validated errors than Quick
(Multiclass) or reach a higher mean average precision (Multilabel), one network is fine-tuned on all images for that
many epochs and served; otherwise Quick's model is served. Either way the reported metrics are the chosen kind's
cross-validated predictions.

Running the whole network forwards and backwards every epoch is too slow for a CPU budget, so the frozen early
blocks run once over several views of each image (the plain centre crop and augmented ones) and their activations
are cached; training then runs only the last blocks and the head over those. The head starts from a logistic
regression on the frozen features (a linear probe first keeps fine-tuning from tearing the pretrained features
apart early). BatchNorm keeps its pretrained statistics: batches of a few dozen images estimate them badly.
The numbers below were chosen by measurement on flowers12 (docs/benchmarks.md). On a GPU the cached views and the
training steps run in bfloat16 (mixed precision); Quick's features stay in full precision, as served.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional
from torchvision.transforms import v2

from kubevision.core.domains import Backbone
from kubevision.core.training import ResolvedTraining
from kubevision.trainer import splits
from kubevision.trainer.classification import evaluation, quick
from kubevision.trainer.classification.network import (
    Classifier,
    Trained,
    batch_inputs,
    device,
    mixed_precision,
    normalise,
)
from kubevision.trainer.data import LabelledImages

log = logging.getLogger(__name__)

FOLDS = 3  # fine-tuned networks, one without each fold; the cost is FOLDS - 1 trainings on all images, plus one
TRAINABLE_STAGES = 2  # the last stages of EfficientNet's blocks, plus its final 1x1 convolution
VIEWS = 8  # cached views of each image: the plain centre crop, its mirror image and 6 augmented ones
CROP_SCALE = (0.25, 1.0)  # share of the image a random crop keeps
COLOUR_JITTER = 0.2  # brightness, contrast and saturation
LABEL_SMOOTHING = 0.1
WEIGHT_DECAY = 0.05
HEAD_LEARNING_RATE_FACTOR = 10 / 3  # the new head learns faster than the pretrained blocks
QUICK = "Quick"
FINE_TUNED = "FineTuned"


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
def _cache(front: nn.Module, tail: nn.Module, images: list, spec: Backbone, views: int,
           batch_size: int) -> tuple[torch.Tensor, np.ndarray]:
    """Front activations of every view of every image in one tensor (images, views, channels, height, width),
    in half precision to halve it; and the pooled features of the plain view (Quick's features)."""
    on = device()
    cache = None
    pooled = []
    inputs = [lambda batch: batch_inputs(batch, spec), lambda batch: torch.flip(batch_inputs(batch, spec), dims=[3])]
    inputs += [lambda batch: _augmented_inputs(batch, spec.input_size)] * (views - 2)
    for view, to_pixels in enumerate(inputs):
        for first in range(0, len(images), batch_size):
            pixels = to_pixels(images[first:first + batch_size]).to(on)
            if view == 0:  # in full precision: Quick's features, as its served model computes them
                activations = front(normalise(pixels))
                pooled.append(tail(activations).cpu().numpy())
            else:
                with mixed_precision(on):
                    activations = front(normalise(pixels))
            if cache is None:  # filled in place: stacking separate views would hold them twice
                cache = torch.empty((len(images), views, *activations.shape[1:]), dtype=torch.float16, device=on)
            cache[first:first + len(pixels), view] = activations.to(torch.float16)
    return cache, np.concatenate(pooled)


@dataclass
class _FineTuning:
    """One fine-tuned copy of the tail and its head, trained on `rows` of the cache."""

    model: nn.Sequential
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    rows: np.ndarray

    @classmethod
    def start(cls, tail: nn.Module, head: nn.Linear, rows: np.ndarray, options: ResolvedTraining) -> _FineTuning:
        on = device()
        tail, head = tail.to(on), head.to(on)
        optimizer = torch.optim.AdamW([
            {"params": tail.parameters(), "lr": options.learning_rate},
            {"params": head.parameters(), "lr": options.learning_rate * HEAD_LEARNING_RATE_FACTOR},
        ], weight_decay=WEIGHT_DECAY)
        steps = options.max_epochs * math.ceil(len(rows) / options.batch_size)
        cosine = lambda step: 0.5 * (1 + math.cos(math.pi * min(step / steps, 1)))  # noqa: E731
        return cls(nn.Sequential(tail, head), optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, cosine), rows)

    def epoch(self, cache: torch.Tensor, targets: torch.Tensor, loss_of, batch_size: int) -> float:
        """One pass over the rows, each image in one of its views at random; the mean training loss."""
        on = device()
        self.model.train()
        for module in self.model.modules():  # pretrained statistics stay; affine parameters still learn
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        rows = torch.from_numpy(self.rows)[torch.randperm(len(self.rows))]
        view = torch.randint(cache.shape[1], (len(rows),))
        loss_sum = 0.0
        for first in range(0, len(rows), batch_size):
            batch_rows = rows[first:first + batch_size].to(cache.device)
            with mixed_precision(on):
                logits = self.model(cache[batch_rows, view[first:first + batch_size].to(cache.device)].float())
                loss = loss_of(logits.float(), targets[batch_rows.to(on)], smoothing=LABEL_SMOOTHING)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            loss_sum += loss.item() * len(batch_rows)
        return loss_sum / len(rows)

    @torch.inference_mode()
    def predict(self, cache: torch.Tensor, rows: np.ndarray, multilabel: bool) -> np.ndarray:
        """Probabilities of the plain view and its mirror image averaged: what the served model computes."""
        self.model.eval()
        on = device()
        outputs = []
        for first in range(0, len(rows), 64):
            batch = torch.from_numpy(rows[first:first + 64]).to(cache.device)
            with mixed_precision(on):
                views = [self.model(cache[batch, view].float()).float() for view in (0, 1)]
            outputs.append(sum(_activation(logits, multilabel) for logits in views).cpu().numpy() / 2)
        return np.concatenate(outputs)


def _activation(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    return torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)


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
    labels, seed = dataset.targets, options.seed
    targets = torch.from_numpy(labels).to(on)
    network.eval().to(on)
    front, tail = _split(network)
    for parameter in front.parameters():
        parameter.requires_grad_(False)

    started = time.monotonic()
    cache, features = _cache(front, tail, dataset.images, spec, VIEWS if options.augmentation else 2,
                             options.batch_size)
    log.info("cached %d views of %d images through the frozen blocks in %.0f s", cache.shape[1], len(labels),
             time.monotonic() - started)
    folds = splits.folds(dataset.primary_labels, seed, max_folds=FOLDS)
    quick_predictions = quick.out_of_fold(features, labels, multilabel, seed, folds)
    quick_score = _score(labels, quick_predictions, multilabel)
    log.info("Quick's model, cross-validated: %s %.4f", _SCORE_NAME[multilabel], quick_score)

    # The budget left is shared so that the final network can train as many epochs as the folds did.
    now = time.monotonic()
    folds_deadline = now + (deadline - now) * (len(folds) - 1) / len(folds)
    runs = [_FineTuning.start(copy.deepcopy(tail), quick.fit_head(features[fit], labels[fit], multilabel, seed), fit,
                              options) for fit, _ in folds]
    loss_of = _loss(multilabel)
    best = (math.inf, 0, None)  # (cross-validated loss, epoch, predictions)
    round_seconds = 0.0
    for epoch in range(1, options.max_epochs + 1):
        if time.monotonic() + round_seconds > folds_deadline:
            log.info("stopping before epoch %d: the time budget is spent", epoch)
            break
        round_start = time.monotonic()
        predictions = np.zeros_like(labels)
        train_loss = 0.0
        for run, (fit, held_out) in zip(runs, folds, strict=True):
            train_loss += run.epoch(cache, targets, loss_of, options.batch_size) * len(fit)
            predictions[held_out] = run.predict(cache, held_out, multilabel)
        loss = loss_of(torch.from_numpy(_logits(predictions, multilabel)), torch.from_numpy(labels),
                       smoothing=LABEL_SMOOTHING).item()
        round_seconds = time.monotonic() - round_start
        report("train_loss", train_loss / sum(len(fit) for fit, _ in folds), epoch)
        report("cross_validated_loss", loss, epoch)
        log.info("epoch %d/%d: cross-validated loss %.4f, %s %.4f (%.0f s for %d folds)", epoch, options.max_epochs,
                 loss, _SCORE_NAME[multilabel], _score(labels, predictions, multilabel), round_seconds, len(folds))
        if loss < best[0]:
            best = (loss, epoch, predictions)
        elif epoch - best[1] >= options.early_stopping_patience:
            log.info("early stop: no better cross-validated loss for %d epochs", epoch - best[1])
            break
    del runs

    _, epochs, fine_tuned_predictions = best
    fine_tuned_score = _score(labels, fine_tuned_predictions, multilabel) if epochs else -math.inf
    comparison = {"quick_" + _SCORE_NAME[multilabel]: quick_score, "epochs": epochs}
    if epochs:
        comparison["fine_tuned_" + _SCORE_NAME[multilabel]] = fine_tuned_score
    if choose(quick_score, fine_tuned_score) == QUICK:
        log.info("serving Quick's model: fine-tuning did not beat it on the cross-validated images")
        quick_head = quick.fit_head(features, labels, multilabel, seed)
        classifier = Classifier(network, quick_head, multilabel).eval().cpu()
        return Trained(classifier, np.arange(len(labels)), quick_predictions, QUICK, comparison)

    log.info("serving the fine-tuned network: %d epochs on all %d images", epochs, len(labels))
    final = _FineTuning.start(tail, quick.fit_head(features, labels, multilabel, seed), np.arange(len(labels)),
                              options)
    for epoch in range(1, epochs + 1):
        if time.monotonic() > deadline:  # the budget is shared to leave room: only a slow machine ends here
            log.warning("the time budget ran out after %d of %d epochs on all images", epoch - 1, epochs)
            break
        report("final_train_loss", final.epoch(cache, targets, loss_of, options.batch_size), epoch)
    # Served with the image and its mirror averaged: measured to cut errors at twice the inference cost.
    classifier = Classifier(network, final.model[1], multilabel, flip_average=True).eval().cpu()
    return Trained(classifier, np.arange(len(labels)), fine_tuned_predictions, FINE_TUNED, comparison)


_SCORE_NAME = {False: "top1_accuracy", True: "mean_average_precision"}


def choose(quick_score: float, fine_tuned_score: float) -> str:
    """The fine-tuned network only when it scored strictly better: a tie keeps Quick's smaller, cheaper model."""
    return FINE_TUNED if fine_tuned_score > quick_score else QUICK


def _score(labels: np.ndarray, predictions: np.ndarray, multilabel: bool) -> float:
    """What decides between Quick and fine-tuning: top-1 accuracy (Multiclass), mean average precision
    (Multilabel); higher is better."""
    if multilabel:
        return evaluation.metrics_at(labels, predictions, [str(i) for i in range(labels.shape[1])],
                                     0.5).average_precision
    return evaluation.top1_accuracy(labels, predictions)


def _logits(probabilities: np.ndarray, multilabel: bool) -> np.ndarray:
    """Logits that give back the probabilities, for the training loss."""
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return np.log(clipped / (1 - clipped)) if multilabel else np.log(clipped)


def _loss(multilabel: bool):
    def loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
        if multilabel:
            return functional.binary_cross_entropy_with_logits(logits, targets * (1 - smoothing) + smoothing / 2)
        return functional.cross_entropy(logits, targets.argmax(dim=1), label_smoothing=smoothing)

    return loss
