"""FCOS, RetinaNet and SSDlite heads on the detector's pyramid, trained as Quick trains, scored on the same test
images: the measurement behind the trainer's choice of head.

    .venv/bin/python benchmarks/detection_heads.py DATASET_DIR [--folds 5] [--run-folds 0 1 2 3 4]
        [--heads fcos retinanet ssdlite] [--domain GeneralCompact] [--train-limit N]

DATASET_DIR is laid out as for benchmarks/detection_accuracy.py (regions.json cross-validated in folds, or train/
and test/). Each fold caches the frozen backbone's features of Quick's views of each training image once; every
head then trains its own feature pyramid and head on those cached features for 8 passes, with Quick's
optimiser, learning rate and schedule, through torchvision's own model and loss. So the heads differ in nothing but
the head (its anchors, matching and loss). They are scored with COCO's evaluation on the fold's test images, and
timed on one image in PyTorch (the served FCOS also runs its decoding in ONNX; the others are not exported).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections import OrderedDict
from functools import partial

import numpy as np
import torch
from detection_accuracy import own_split, split
from torch import nn

HEADS = ("fcos", "retinanet", "ssdlite")


class CachedPyramid(nn.Module):
    """The detector's pyramid, fed either images or (while training) the frozen backbone's cached features of the
    batch, which torchvision's models cannot pass through: it ignores the images it is then given."""

    def __init__(self, pyramid):
        super().__init__()
        self.pyramid = pyramid
        self.out_channels = pyramid.out_channels
        self.cached: list[torch.Tensor] | None = None

    def forward(self, images: torch.Tensor):
        if self.cached is None:
            return self.pyramid(images)
        return self.pyramid.fpn(OrderedDict((str(i), level) for i, level in enumerate(self.cached)))


def build(head: str, spec, classes: int) -> tuple[nn.Module, int]:
    """The model and the label offset its targets need (SSD's class 0 is the background)."""
    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.retinanet import RetinaNetHead
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteHead

    from kubevision.core.serving.detection import MAX_DETECTIONS
    from kubevision.trainer.backbone import MEAN, STD
    from kubevision.trainer.detection import network

    size = network.input_size(spec)
    pyramid = CachedPyramid(network.Pyramid(spec))
    channels = network.PYRAMID_CHANNELS
    if head == "fcos":
        detector = network.build(spec, classes)
        detector.backbone = pyramid
        return detector, 0
    common = {"image_mean": list(MEAN), "image_std": list(STD), "score_thresh": network.SCORE_THRESHOLD,
              "detections_per_img": MAX_DETECTIONS}
    if head == "retinanet":  # torchvision's anchors: three sizes and three shapes a cell, 4 strides wide
        return RetinaNet(pyramid, classes, min_size=size, max_size=size,
                         head=RetinaNetHead(channels, 9, classes), **common), 0
    anchors = DefaultBoxGenerator([[2, 3]] * 5, min_ratio=0.2, max_ratio=0.95)  # as torchvision's SSDlite
    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    return SSD(pyramid, anchors, (size, size), classes + 1,
               head=SSDLiteHead([channels] * 5, anchors.num_anchors_per_location(), classes + 1, norm), **common), 1


def cached_views(spec, train):
    """Quick's views of each training image (the first plain), through the frozen backbone once, as Quick caches
    them."""
    from kubevision.trainer.detection import network, training

    size = network.input_size(spec)
    served = network.Served(network.build(spec, len(train.tags)), size)
    examples = [training._example(train, i) for i in range(len(train.ids))]
    return training._cached_views(served, examples, training.augmentation(size, True),
                                  training.augmentation(size, False), training.MAX_BATCH_SIZE), size


def train_head(model: nn.Module, offset: int, cached, size: int) -> float:
    """Quick's optimisation of the pyramid and head on the cached features; the seconds it took."""
    from kubevision.core.api import TrainingType
    from kubevision.core.training import ResolvedTraining
    from kubevision.trainer.detection import training

    options = ResolvedTraining(training_type=TrainingType.QUICK, budget_minutes=60)
    for parameter in model.backbone.pyramid.body.parameters():
        parameter.requires_grad_(False)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=options.learning_rate * training.HEAD_LEARNING_RATE_FACTOR,
                                  weight_decay=training.WEIGHT_DECAY)
    batch_size = training.MAX_BATCH_SIZE
    epochs = training.QUICK_MIN_EPOCHS  # as measured; Quick now makes more passes over a few dozen images
    steps = epochs * -(-len(cached) // batch_size)
    started = time.monotonic()
    schedule = training.BudgetSchedule(optimiser, steps, started + 3600)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(cached)).tolist()
        for start in range(0, len(order), batch_size):
            chosen = [cached[i] for i in order[start:start + batch_size]]
            model.backbone.cached = [torch.stack(level) for level in zip(*(f for f, _ in chosen), strict=True)]
            targets = [{"boxes": t["boxes"].as_subclass(torch.Tensor), "labels": t["labels"] + offset}
                       for _, t in chosen]
            losses = model([torch.zeros(3, size, size)] * len(chosen), targets)
            optimiser.zero_grad()
            sum(losses.values()).backward()
            optimiser.step()
            schedule.step()
    model.backbone.cached = None
    return time.monotonic() - started


def predict(model: nn.Module, offset: int, size: int, images):
    from kubevision.core.detection_metrics import Predictions
    from kubevision.core.serving.detection import to_input

    model.eval()
    found, timings = [], []
    with torch.inference_mode():
        for image in images:
            begun = time.perf_counter()
            output = model([torch.from_numpy(to_input(image, size))])[0]
            timings.append((time.perf_counter() - begun) * 1000)
            corners = output["boxes"].numpy() / size
            boxes = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)
            found.append(Predictions(boxes, output["scores"].numpy(), output["labels"].numpy() - offset))
    return found, statistics.median(timings[1:] or timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--run-folds", type=int, nargs="+", help="which folds to run (default: all)")
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS))
    parser.add_argument("--domain", default="GeneralCompact")
    parser.add_argument("--train-limit", type=int, help="train on at most this many images (a seeded sample)")
    args = parser.parse_args()

    from kubevision.core.api import Domain
    from kubevision.core.detection_metrics import evaluate
    from kubevision.core.domains import BACKBONES
    from kubevision.trainer.detection.network import input_size
    from kubevision.trainer.seeds import seed_everything

    torch.set_num_threads(os.cpu_count() or 1)
    logging.basicConfig(level=logging.WARNING)
    spec = BACKBONES[Domain(args.domain)]
    folds = [0] if own_split(args.dataset_dir) else (args.run_folds or list(range(args.folds)))
    print(f"# load average before: {os.getloadavg()}", flush=True)
    results = {head: [] for head in args.heads}
    for fold in folds:
        train, test = split(args.dataset_dir, round(input_size(spec) * 1.25), args.folds, fold, args.train_limit)
        seed_everything(0)
        cached, size = cached_views(spec, train)
        for head in args.heads:
            seed_everything(0)
            model, offset = build(head, spec, len(train.tags))
            seconds = train_head(model, offset, cached, size)
            predictions, milliseconds = predict(model, offset, size, test.images)
            scored = evaluate(test.boxes, test.labels, predictions, test.tags, 0.5)
            run = {"fold": fold, "map_50": scored.metrics.average_precision, "map_50_95": scored.map_50_95,
                   "seconds": seconds, "ms": milliseconds,
                   "per_tag_ap": {t.tag: round(t.average_precision, 3) for t in scored.metrics.per_tag}}
            print(f"# {head} {run} load {os.getloadavg()}", flush=True)
            results[head].append(run)
    print(f"# load average after: {os.getloadavg()}")
    print("\n| head | folds | mAP@0.5 (per fold) | mAP@0.5 mean | mAP@0.5:0.95 | training (s) | PyTorch ms/image |")
    print("|---|---|---|---|---|---|---|")
    for head, runs in results.items():
        print(f"| {head} | {len(runs)} | {' / '.join(format(r['map_50'], '.3f') for r in runs)} | "
              f"{statistics.mean(r['map_50'] for r in runs):.3f} | "
              f"{statistics.mean(r['map_50_95'] for r in runs):.3f} | "
              f"{statistics.mean(r['seconds'] for r in runs):.0f} | "
              f"{statistics.median(r['ms'] for r in runs):.1f} |")


if __name__ == "__main__":
    main()
