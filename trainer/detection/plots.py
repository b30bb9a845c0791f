"""What a person would rather look at than numbers: a precision-recall curve per tag, and held-out images with the
true boxes and the predicted ones drawn on them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display in a Job

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from kubevision.core.detection_metrics import Evaluation, Predictions  # noqa: E402

TRUE_COLOUR = (40, 200, 40)
PREDICTED_COLOUR = (230, 40, 40)


def precision_recall(evaluation: Evaluation, tags: list[str]):
    figure, axes = plt.subplots(figsize=(6, 5))
    for tag, curve in zip(tags, evaluation.precision_curves, strict=True):
        if (curve >= 0).all():
            axes.plot(evaluation.recall_levels, curve, label=tag)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision (IoU 0.5)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def drawn(image: Image.Image, true_boxes: np.ndarray, true_labels: np.ndarray, predicted: Predictions,
          tags: list[str], threshold: float) -> Image.Image:
    """The image with its true boxes (green) and the predictions at or above the threshold (red, with tag and
    probability)."""
    picture = image.convert("RGB")
    draw = ImageDraw.Draw(picture)
    scale = np.array([picture.width, picture.height] * 2)
    for box, label in zip(true_boxes * scale, true_labels, strict=True):
        draw.rectangle(box.tolist(), outline=TRUE_COLOUR, width=2)
        draw.text((box[0] + 3, box[1] + 2), tags[label], fill=TRUE_COLOUR)
    for box, score, label in zip(predicted.boxes, predicted.scores, predicted.classes, strict=True):
        if score >= threshold:
            left, top, width, height = box * scale
            draw.rectangle([left, top, left + width, top + height], outline=PREDICTED_COLOUR, width=2)
            draw.text((left + 3, top + height - 12), f"{tags[label]} {score:.2f}", fill=PREDICTED_COLOUR)
    return picture
