"""Held-out detection metrics as Custom Vision reports them, computed by faster-coco-eval (COCO's evaluation).

A predicted box counts when its probability reaches the probability threshold; it is right when it overlaps a
not yet matched true box of its tag by the overlap (IoU) threshold. Per tag: precision and recall at those two
thresholds, and average precision over all probabilities at the overlap threshold; overall: precision and recall
over all boxes, and the mean of the per-tag average precisions (mAP@0.5 at Custom Vision's overlap of 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster

from kubevision.core.api import IterationMetrics, TagMetrics
from kubevision.core.heldout import HeldOut, HeldOutBox, HeldOutImage
from kubevision.core.serving.detection import OVERLAP_THRESHOLD

CANVAS = 1000  # boxes are fractions of the image; COCO's evaluation takes pixels, and any common scale will do


@dataclass
class Predictions:
    """One image's boxes as the served model gives them: (n, 4) left, top, width, height fractions; scores; rows."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray


@dataclass
class Evaluation:
    metrics: IterationMetrics
    map_50_95: float  # COCO's mAP over overlaps 0.5 to 0.95, for benchmarks
    recall_levels: np.ndarray  # COCO's 101 recall levels
    precision_curves: np.ndarray  # (tags, 101) interpolated precision at OVERLAP_THRESHOLD; -1 where no true box


def evaluate(truth_boxes: list[np.ndarray], truth_labels: list[np.ndarray], predicted: list[Predictions],
             tags: list[str], probability_threshold: float, overlap: float = OVERLAP_THRESHOLD) -> Evaluation:
    """truth_boxes: per image (n, 4) left, top, right, bottom fractions."""
    everything = _coco_eval(truth_boxes, truth_labels, predicted, tags, [overlap, *np.linspace(0.5, 0.95, 10)])
    confident = [Predictions(p.boxes[p.scores >= probability_threshold], p.scores[p.scores >= probability_threshold],
                             p.classes[p.scores >= probability_threshold]) for p in predicted]
    at_threshold = _coco_eval(truth_boxes, truth_labels, confident, tags, [overlap])
    true_boxes = np.bincount(np.concatenate(truth_labels), minlength=len(tags)) if truth_labels else np.zeros(len(tags))
    predicted_boxes = np.bincount(np.concatenate([p.classes for p in confident]).astype(np.int64),
                                  minlength=len(tags))
    # COCO's recall with every box above the threshold kept is the share of true boxes matched: true positives.
    recall = np.zeros(len(tags)) if at_threshold is None else np.clip(at_threshold["recall"][0, :, 0, -1], 0, 1)
    true_positives = np.round(recall * true_boxes)
    precision_curves = (np.full((len(tags), 101), -1.0) if everything is None
                        else everything["precision"][0, :, :, 0, -1].T)
    per_tag = [TagMetrics(tag=tag, precision=_ratio(true_positives[i], predicted_boxes[i]),
                          recall=_ratio(true_positives[i], true_boxes[i]),
                          average_precision=_average_precision(precision_curves[i]))
               for i, tag in enumerate(tags)]
    metrics = IterationMetrics(
        probability_threshold=probability_threshold,
        precision=_ratio(true_positives.sum(), predicted_boxes.sum()),
        recall=_ratio(true_positives.sum(), true_boxes.sum()),
        average_precision=float(np.mean([t.average_precision for t in per_tag])),
        per_tag=per_tag,
    )
    map_50_95 = 0.0 if everything is None else _mean_present(everything["precision"][1:, :, :, 0, -1])
    return Evaluation(metrics, map_50_95, np.linspace(0, 1, 101), precision_curves)


def held_out(ids: list[str], truth_boxes: list[np.ndarray], truth_labels: list[np.ndarray],
             predicted: list[Predictions], tags: list[str], probability_threshold: float) -> HeldOut:
    """What the trainer keeps of a detector's held-out images, so that the training API can count them again at
    any probability and overlap threshold; truth_boxes as evaluate() takes them."""

    def box(tag: int, corners, probability: float | None = None) -> HeldOutBox:
        return HeldOutBox(tag=tags[tag], left=round(float(corners[0]), 5), top=round(float(corners[1]), 5),
                          width=round(float(corners[2]), 5), height=round(float(corners[3]), 5),
                          probability=None if probability is None else round(float(probability), 6))

    images = []
    for image, boxes, labels, found in zip(ids, truth_boxes, truth_labels, predicted, strict=True):
        best = np.zeros(len(tags))
        np.maximum.at(best, found.classes.astype(np.int64), found.scores)
        images.append(HeldOutImage(
            id=image, tags=sorted({tags[label] for label in labels}), probabilities=best.round(6).tolist(),
            regions=[box(label, (b[0], b[1], b[2] - b[0], b[3] - b[1]))
                     for b, label in zip(boxes, labels, strict=True)],
            boxes=[box(c, b, s) for b, s, c in zip(found.boxes, found.scores, found.classes, strict=True)]))
    return HeldOut(threshold=probability_threshold, tags=tags, images=images)


def evaluate_held_out(held_out: HeldOut, probability_threshold: float, overlap: float) -> Evaluation:
    """A detector's held-out images, as the trainer kept them, evaluated at other thresholds."""
    index = {tag: i for i, tag in enumerate(held_out.tags)}
    truth_boxes, truth_labels, predicted = [], [], []
    for image in held_out.images:
        truth_boxes.append(np.array([[r.left, r.top, r.left + r.width, r.top + r.height] for r in image.regions],
                                    dtype=np.float32).reshape(-1, 4))
        truth_labels.append(np.array([index[r.tag] for r in image.regions], dtype=np.int64))
        predicted.append(Predictions(
            np.array([[b.left, b.top, b.width, b.height] for b in image.boxes], dtype=np.float32).reshape(-1, 4),
            np.array([b.probability for b in image.boxes], dtype=np.float32),
            np.array([index[b.tag] for b in image.boxes], dtype=np.int64)))
    return evaluate(truth_boxes, truth_labels, predicted, held_out.tags, probability_threshold, overlap)


def _coco_eval(truth_boxes, truth_labels, predicted: list[Predictions], tags: list[str], overlaps) -> dict | None:
    """COCO's accumulated evaluation (precision (T, R, K, A, M), recall (T, K, A, M)); None without predictions."""
    detections = [
        {"image_id": image, "category_id": int(c), "score": float(s), "bbox": [float(v) * CANVAS for v in box]}
        for image, p in enumerate(predicted) for box, s, c in zip(p.boxes, p.scores, p.classes, strict=True)
    ]
    if not detections:
        return None
    annotations = []
    for image, (boxes, labels) in enumerate(zip(truth_boxes, truth_labels, strict=True)):
        for (left, top, right, bottom), label in zip(boxes * CANVAS, labels, strict=True):
            annotations.append({"id": len(annotations) + 1, "image_id": image, "category_id": int(label),
                                "bbox": [left, top, right - left, bottom - top], "iscrowd": 0,
                                "area": (right - left) * (bottom - top)})
    truth = COCO()
    truth.dataset = {"images": [{"id": i, "width": CANVAS, "height": CANVAS} for i in range(len(truth_boxes))],
                     "annotations": annotations, "categories": [{"id": i, "name": t} for i, t in enumerate(tags)]}
    truth.createIndex()
    evaluation = COCOeval_faster(truth, truth.loadRes(detections), "bbox", print_function=lambda *_: None)
    evaluation.params.iouThrs = np.array(overlaps, dtype=np.float64)
    evaluation.evaluate()
    evaluation.accumulate()
    return evaluation.eval


def _average_precision(curve: np.ndarray) -> float:
    """COCO's 101-point interpolated average precision; 0 for a tag with no true box."""
    return float(curve.mean()) if (curve >= 0).all() else 0.0


def _mean_present(precision: np.ndarray) -> float:
    present = precision[precision >= 0]
    return float(present.mean()) if present.size else 0.0


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0
