"""Training a detector, Quick or Advanced, inside the iteration's budget.

Quick: the pretrained backbone stays frozen, so it runs once over QUICK_VIEWS views of each image (the plain one and
augmented ones) and its features are cached; the feature pyramid and the FCOS head then learn from those for enough
passes to make QUICK_MIN_STEPS optimiser steps, within bounds (quick_epochs). Advanced starts where Quick ends: the
whole network then learns from augmented images (the backbone slower than the new layers), up to max_epochs, and the
model kept is whichever scored best on the held-out images, Quick's own included, stopping after
`early_stopping_patience` epochs without a better one. So Advanced never keeps a model that scores below Quick's on
the held-out images.
Both learn from box-aware augmentation (torchvision.transforms.v2 moves the boxes with the pixels): colour
distortion, zoom-out (smaller objects), crops that keep whole objects (larger ones), flips, then the stretch to the
served square. A share of the images is held out, stratified by tag: it scores the model and, in Advanced, picks
the epoch. docs/benchmarks.md has the measurements behind the numbers below.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from kubevision.core.api import TrainingType
from kubevision.core.detection_metrics import Evaluation, Predictions, evaluate
from kubevision.core.domains import Backbone
from kubevision.core.serving.detection import to_input
from kubevision.core.training import ResolvedTraining
from kubevision.trainer import splits
from kubevision.trainer.detection.data import RegionImages
from kubevision.trainer.detection.network import Served, build, input_size

log = logging.getLogger(__name__)

# Passes over the cached views: a few dozen images make short passes, and 8 of them left the forks' boxes loose
# (one quickstart seed in five failed); 16 overfitted BCCD's 292 images. So passes are counted in steps.
QUICK_MIN_EPOCHS, QUICK_MAX_EPOCHS = 8, 16
QUICK_MIN_STEPS = 320
QUICK_VIEWS = 6
HOLD_OUT = 0.2  # share of images kept for the reported metrics (and Advanced's early stopping)
MAX_BATCH_SIZE = 8  # images a step: more, smaller steps learn faster from a few dozen images on a CPU
HEAD_LEARNING_RATE_FACTOR = 10 / 3  # Quick: the new layers learn fast from the frozen backbone's features
FINE_TUNE_HEAD_LEARNING_RATE_FACTOR = 1.0  # Advanced: they go on learning, more slowly...
BACKBONE_LEARNING_RATE_FACTOR = 1 / 3  # ...and the pretrained backbone slower still, to keep its ImageNet features
WEIGHT_DECAY = 0.05
WARM_UP = 0.1  # share of the schedule that ramps the learning rate up...
START_FACTOR = 0.04  # ...from this share of its peak
ZOOM_OUT = (1.0, 2.5)  # canvas side over image side, for smaller objects
GREY = (124, 116, 104)  # ImageNet's mean colour fills the canvas around a zoomed-out image


@dataclass
class Fitted:
    served: Served
    held_out: np.ndarray  # indices of the images that scored the model
    predictions: list[Predictions]  # the served model's boxes for them
    evaluation: Evaluation
    epochs: int  # epochs trained (Advanced: Quick's, then the fine-tuning epochs up to the kept one)


def augmentation(size: int, augment: bool) -> v2.Compose:
    steps = [
        v2.RandomPhotometricDistort(p=0.5),
        v2.RandomZoomOut(fill={tv_tensors.Image: GREY, "others": 0}, side_range=ZOOM_OUT, p=0.3),
        v2.RandomIoUCrop(),  # keeps the objects whose centre it keeps; SanitizeBoundingBoxes drops the rest
        v2.RandomHorizontalFlip(),
    ] if augment else []
    return v2.Compose([*steps, v2.Resize((size, size), antialias=True), v2.SanitizeBoundingBoxes(),
                       v2.ToDtype(torch.float32, scale=True)])


def train(dataset: RegionImages, backbone: Backbone, options: ResolvedTraining, deadline: float,
          log_metric: Callable[..., None]) -> Fitted:
    size = input_size(backbone)
    training, held_out = splits.holdout(dataset.primary_labels, options.seed, HOLD_OUT)
    served = Served(build(backbone, len(dataset.tags)), size)
    examples = [_example(dataset, i) for i in training]
    batch_size = min(options.batch_size, MAX_BATCH_SIZE)
    transform = augmentation(size, options.augmentation)
    epochs = _train_head(served, examples, transform, options, batch_size, deadline, log_metric)
    if options.training_type == TrainingType.ADVANCED:
        epochs += _fine_tune(served, examples, transform, dataset, held_out, options, batch_size, deadline,
                             log_metric, quick_epochs_trained=epochs)
    predictions = predict(served, [dataset.images[i] for i in held_out])
    scored = evaluate([dataset.boxes[i] for i in held_out], [dataset.labels[i] for i in held_out], predictions,
                      dataset.tags, options.probability_threshold)
    return Fitted(served.eval(), held_out, predictions, scored, epochs)


def _train_head(served: Served, examples, transform, options: ResolvedTraining, batch_size: int, deadline: float,
                log_metric: Callable[..., None]) -> int:
    """Quick: the pyramid and head learn from the frozen backbone's cached features of QUICK_VIEWS views of each
    image, for quick_epochs(); the epochs trained."""
    detector = served.detector
    frozen = {id(p) for p in detector.backbone.body.parameters()}
    for parameter in detector.backbone.body.parameters():
        parameter.requires_grad_(False)
    optimiser = torch.optim.AdamW([p for p in detector.parameters() if id(p) not in frozen],
                                  lr=options.learning_rate * HEAD_LEARNING_RATE_FACTOR, weight_decay=WEIGHT_DECAY)
    cached = _cached_views(served, examples, transform, augmentation(served.size, False), batch_size)
    steps_per_epoch = math.ceil(len(cached) / batch_size)
    epochs = quick_epochs(steps_per_epoch)
    schedule = BudgetSchedule(optimiser, epochs * steps_per_epoch, deadline)
    for epoch in range(epochs):
        started = time.monotonic()
        loss = _epoch(served, cached, None, optimiser, schedule, batch_size)
        log_metric("train_loss", loss, step=epoch)
        log.info("epoch %d of %d (pyramid and head): loss %.3f", epoch, epochs, loss)
        if _out_of_time(started, deadline, epoch):
            return epoch + 1
    return epochs


def quick_epochs(steps_per_epoch: int) -> int:
    return min(max(math.ceil(QUICK_MIN_STEPS / steps_per_epoch), QUICK_MIN_EPOCHS), QUICK_MAX_EPOCHS)


def _fine_tune(served: Served, examples, transform, dataset: RegionImages, held_out: np.ndarray,
               options: ResolvedTraining, batch_size: int, deadline: float, log_metric: Callable[..., None],
               quick_epochs_trained: int) -> int:
    """Advanced, after Quick: the whole network learns from augmented images (the backbone slower than the rest),
    up to max_epochs, keeping whichever scores best on the held-out images, Quick's model included, and stopping
    after `early_stopping_patience` epochs without a better one; the fine-tuning epochs kept."""
    detector = served.detector
    backbone_parameters = list(detector.backbone.body.parameters())
    for parameter in backbone_parameters:
        parameter.requires_grad_(True)
    known = {id(p) for p in backbone_parameters}
    optimiser = torch.optim.AdamW([
        {"params": [p for p in detector.parameters() if id(p) not in known],
         "lr": options.learning_rate * FINE_TUNE_HEAD_LEARNING_RATE_FACTOR},
        {"params": backbone_parameters, "lr": options.learning_rate * BACKBONE_LEARNING_RATE_FACTOR},
    ], weight_decay=WEIGHT_DECAY)
    schedule = BudgetSchedule(optimiser, options.max_epochs * math.ceil(len(examples) / batch_size), deadline)
    best = _score(served, dataset, held_out, options.probability_threshold)
    log_metric("held_out_map_50", best[0], step=0)
    log.info("Quick's model: held-out mAP@0.5 %.3f, mAP@0.5:0.95 %.3f", *best)
    best_state, kept, since_best = copy.deepcopy(detector.state_dict()), 0, 0
    epochs = options.max_epochs if time.monotonic() < deadline else 0  # Quick's part may have used the budget
    for epoch in range(1, epochs + 1):
        started = time.monotonic()
        loss = _epoch(served, examples, transform, optimiser, schedule, batch_size)
        score = _score(served, dataset, held_out, options.probability_threshold)
        log_metric("train_loss", loss, step=quick_epochs_trained + epoch - 1)
        log_metric("held_out_map_50", score[0], step=epoch)
        log.info("fine-tuning epoch %d: loss %.3f, held-out mAP@0.5 %.3f, mAP@0.5:0.95 %.3f", epoch, loss, *score)
        if score > best:
            best, best_state, kept, since_best = score, copy.deepcopy(detector.state_dict()), epoch, 0
        else:
            since_best += 1
        if since_best >= options.early_stopping_patience or _out_of_time(started, deadline, epoch):
            break
    detector.load_state_dict(best_state)
    log.info("kept %s", f"fine-tuning epoch {kept}" if kept else "Quick's model")
    return kept


def _out_of_time(started: float, deadline: float, epoch: int) -> bool:
    """Whether another epoch as long as the last would end past the deadline."""
    if time.monotonic() + (time.monotonic() - started) > deadline:
        log.info("stopping after epoch %d: the budget would not fit another", epoch)
        return True
    return False


class BudgetSchedule:
    """Warm-up, then cosine decay of each group's learning rate, over whichever ends first: the planned steps or the
    time left to the deadline, so that a run the budget cuts short still ends annealed."""

    def __init__(self, optimiser: torch.optim.Optimizer, steps: int, deadline: float):
        self.optimiser, self.steps, self.deadline = optimiser, steps, deadline
        self.started, self.done = time.monotonic(), 0
        self.peaks = [group["lr"] for group in optimiser.param_groups]
        self._apply(0.0)

    def step(self) -> None:
        self.done += 1
        elapsed = (time.monotonic() - self.started) / max(self.deadline - self.started, 1e-9)
        self._apply(min(1.0, max(self.done / self.steps, elapsed)))

    def _apply(self, progress: float) -> None:
        if progress < WARM_UP:
            factor = START_FACTOR + (1 - START_FACTOR) * progress / WARM_UP
        else:
            factor = 0.5 * (1 + math.cos(math.pi * (progress - WARM_UP) / (1 - WARM_UP)))
        for group, peak in zip(self.optimiser.param_groups, self.peaks, strict=True):
            group["lr"] = peak * factor


def _example(dataset: RegionImages, index: int) -> tuple[tv_tensors.Image, dict]:
    image = dataset.images[index]
    boxes = dataset.boxes[index] * np.array([image.width, image.height] * 2, dtype=np.float32)
    return tv_tensors.Image(v2.functional.pil_to_tensor(image)), {
        "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(boxes), format="XYXY",
                                          canvas_size=(image.height, image.width)),
        "labels": torch.from_numpy(dataset.labels[index]),
    }


def _cached_views(served: Served, examples, transform, plain, batch_size: int) -> list:
    """The frozen backbone's features of QUICK_VIEWS views of each image (the first plain), with their boxes. The
    views are made a batch at a time: all of them at once, as float pixels, weighed more than their features."""
    views = ((plain if view == 0 else transform)(*example) for example in examples for view in range(QUICK_VIEWS))
    cached = []
    with torch.no_grad():
        while batch := list(itertools.islice(views, batch_size)):
            features = served.detector.backbone.body(served.normalise(torch.stack([image for image, _ in batch])))
            cached += [([level[row] for level in features], target) for row, (_, target) in enumerate(batch)]
    return cached


def _epoch(served: Served, examples, transform, optimiser, schedule, batch_size: int) -> float:
    """One pass, in random order, over the examples: images and their targets, or (Quick) cached features and
    their targets."""
    detector = served.detector.train()
    order = torch.randperm(len(examples)).tolist()
    losses = []
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        chosen = [examples[i] if transform is None else transform(*examples[i]) for i in rows]
        targets = [{"boxes": t["boxes"].as_subclass(torch.Tensor), "labels": t["labels"]} for _, t in chosen]
        if transform is None:
            stages = [torch.stack(level) for level in zip(*(features for features, _ in chosen), strict=True)]
        else:
            stages = detector.backbone.body(served.normalise(torch.stack([image for image, _ in chosen])))
        pyramid = list(detector.backbone.fpn(OrderedDict((str(i), f) for i, f in enumerate(stages))).values())
        head = detector.head(pyramid)
        levels = [level.shape[2] * level.shape[3] for level in pyramid]
        loss = sum(detector.compute_loss(targets, head, [served.anchors] * len(targets), levels).values())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
    return float(np.mean(losses))


def predict(served: Served, images, batch_size: int = 8) -> list[Predictions]:
    """The served model's boxes for each image, its padding rows dropped."""
    served.eval()
    found = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.stack([to_input(i, served.size) for i in images[start:start + batch_size]]))
            for boxes, scores, classes in zip(*(t.numpy() for t in served(batch)), strict=True):
                present = scores > 0
                found.append(Predictions(boxes[present], scores[present], classes[present]))
    return found


def _score(served: Served, dataset: RegionImages, held_out: np.ndarray, threshold: float) -> tuple[float, float]:
    """Held-out mAP@0.5, then mAP@0.5:0.95 to break its ties (a few dozen images often tie at 1.0)."""
    predictions = predict(served, [dataset.images[i] for i in held_out])
    scored = evaluate([dataset.boxes[i] for i in held_out], [dataset.labels[i] for i in held_out], predictions,
                      dataset.tags, threshold)
    return scored.metrics.average_precision, scored.map_50_95
