"""Training a detector, Quick or Advanced, inside the iteration's budget.

Quick: the pretrained backbone stays frozen, so it runs once over QUICK_VIEWS views of each image (the plain one and
augmented ones) and its features are cached; the feature pyramid and the FCOS head then learn from those for a fixed
QUICK_EPOCHS. Advanced: the whole network learns (the backbone ten times slower than the new layers), up to
max_epochs, keeping the epoch with the best held-out mAP@0.5 and stopping after `early_stopping_patience` epochs
without a better one.
Both learn from box-aware augmentation (torchvision.transforms.v2 moves the boxes with the pixels): colour
distortion, zoom-out (smaller objects), crops that keep whole objects (larger ones), flips, then the stretch to the
served square. A share of the images is held out, stratified by tag: it scores the model and, in Advanced, picks
the epoch. The numbers below are first choices, not yet tuned by measurement (docs/benchmarks.md says why).
"""

from __future__ import annotations

import copy
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
from kubevision.core.detection_model import to_input
from kubevision.core.domains import Backbone
from kubevision.core.training import ResolvedTraining
from kubevision.trainer import evaluation
from kubevision.trainer.detection.data import RegionImages
from kubevision.trainer.detection.network import Served, build, input_size

log = logging.getLogger(__name__)

QUICK_EPOCHS = 8  # passes over the cached views
QUICK_VIEWS = 6
HOLD_OUT = 0.2  # share of images kept for the reported metrics (and Advanced's early stopping)
MAX_BATCH_SIZE = 8  # images a step: more, smaller steps learn faster from a few dozen images on a CPU
HEAD_LEARNING_RATE_FACTOR = 10 / 3  # the new layers learn faster than the pretrained backbone...
BACKBONE_LEARNING_RATE_FACTOR = 1 / 3  # ...which moves slowly, to keep its ImageNet features
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
    epochs: int  # epochs trained (Advanced: up to the kept one)


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
    training, held_out = evaluation.holdout(dataset.primary_labels, options.seed, HOLD_OUT)
    detector = build(backbone, len(dataset.tags))
    quick = options.training_type == TrainingType.QUICK
    backbone_parameters = list(detector.backbone.body.parameters())
    if quick:
        for parameter in backbone_parameters:
            parameter.requires_grad_(False)
    known = {id(p) for p in backbone_parameters}
    groups = [{"params": [p for p in detector.parameters() if id(p) not in known],
               "lr": options.learning_rate * HEAD_LEARNING_RATE_FACTOR}]
    if not quick:
        groups.append({"params": backbone_parameters, "lr": options.learning_rate * BACKBONE_LEARNING_RATE_FACTOR})
    optimiser = torch.optim.AdamW(groups, weight_decay=WEIGHT_DECAY)
    epochs = QUICK_EPOCHS if quick else options.max_epochs
    batch_size = min(options.batch_size, MAX_BATCH_SIZE)
    steps = epochs * math.ceil(len(training) * (QUICK_VIEWS if quick else 1) / batch_size)
    transform = augmentation(size, options.augmentation)
    examples = [_example(dataset, i) for i in training]
    served = Served(detector, size)
    if quick:  # the frozen backbone's features, once
        examples, transform = _cached_views(served, examples, transform, augmentation(size, False), batch_size), None
    schedule = BudgetSchedule(optimiser, steps, deadline)
    best, best_state, since_best, trained = -1.0, None, 0, 0
    for epoch in range(epochs):
        started = time.monotonic()
        loss = _epoch(served, examples, transform, optimiser, schedule, batch_size)
        log_metric("train_loss", loss, step=epoch)
        trained = epoch + 1
        if not quick:
            score = _score(served, dataset, held_out, options.probability_threshold)
            log_metric("held_out_map_50", score, step=epoch)
            log.info("epoch %d: loss %.3f, held-out mAP@0.5 %.3f", epoch, loss, score)
            if score > best:
                best, best_state, since_best = score, copy.deepcopy(detector.state_dict()), 0
            else:
                since_best += 1
            if since_best >= options.early_stopping_patience:
                break
        else:
            log.info("epoch %d: loss %.3f", epoch, loss)
        if time.monotonic() + (time.monotonic() - started) > deadline:
            log.info("stopping after epoch %d: the budget would not fit another", epoch)
            break
    if best_state is not None:
        detector.load_state_dict(best_state)
        trained -= since_best
    predictions = predict(served, [dataset.images[i] for i in held_out])
    scored = evaluate([dataset.boxes[i] for i in held_out], [dataset.labels[i] for i in held_out], predictions,
                      dataset.tags, options.probability_threshold)
    return Fitted(served.eval(), held_out, predictions, scored, trained)


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
    """The frozen backbone's features of QUICK_VIEWS views of each image (the first plain), with their boxes."""
    views = [(plain if view == 0 else transform)(*example) for example in examples for view in range(QUICK_VIEWS)]
    cached = []
    with torch.no_grad():
        for start in range(0, len(views), batch_size):
            batch = views[start:start + batch_size]
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


def _score(served: Served, dataset: RegionImages, held_out: np.ndarray, threshold: float) -> float:
    predictions = predict(served, [dataset.images[i] for i in held_out])
    scored = evaluate([dataset.boxes[i] for i in held_out], [dataset.labels[i] for i in held_out], predictions,
                      dataset.tags, threshold)
    return scored.metrics.average_precision
