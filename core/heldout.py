"""An iteration's held-out predictions: for each image the scoring model never trained on, its true tags and the
probabilities the served model gives it (a detector's: its true boxes and the served model's boxes too). The trainer
writes them beside its result in S3; the gateway reads them to report precision and recall at any threshold, and
each image's predictions, without retraining.

They are an object of their own, not part of the result: they grow with the dataset (a fifth of 100,000 images,
times the tags), and the operator, which reads the result, has no use for them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field


class HeldOutBox(BaseModel):
    tag: str = Field(description="By the name the model was trained with.")
    left: float
    top: float
    width: float
    height: float
    probability: float | None = Field(default=None, description="A predicted box's; none for a true one.")


class HeldOutImage(BaseModel):
    id: str = Field(description="The image id of the manifest (and of the label store).")
    tags: list[str] = Field(description="Its true tags, by the names the model was trained with (a detector's: "
                                        "those of its boxes).")
    probabilities: list[float] = Field(description="The served model's probabilities, in the model's tag order (a "
                                                   "detector's: its most probable box of each tag, or 0).")
    regions: list[HeldOutBox] = Field(default_factory=list, description="A detector's: the true boxes.")
    boxes: list[HeldOutBox] = Field(default_factory=list, description="A detector's: the served model's boxes, most "
                                                                      "probable first.")


class HeldOut(BaseModel):
    threshold: float = Field(ge=0, le=1, description="The probability threshold the iteration was trained for.")
    tags: list[str] = Field(description="The model's tags, in its output order.")
    images: list[HeldOutImage] = Field(description="In the snapshot's order: upload order, oldest first.")

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(actual, probabilities): one row per image, one column per tag."""
        column = {tag: i for i, tag in enumerate(self.tags)}
        actual = np.zeros((len(self.images), len(self.tags)), dtype=bool)
        for row, image in enumerate(self.images):
            actual[row, [column[t] for t in image.tags if t in column]] = True
        probabilities = np.array([i.probabilities for i in self.images], dtype=np.float64).reshape(actual.shape)
        return actual, probabilities


@dataclass(frozen=True)
class Counted:
    """Precision and recall at one threshold: overall over every (image, tag) decision, and per tag."""

    precision: float
    recall: float
    tag_precision: list[float]
    tag_recall: list[float]


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros(np.shape(numerator)), where=denominator > 0)


def counted_at(actual: np.ndarray, probabilities: np.ndarray, threshold: float) -> Counted:
    """A tag is predicted when its probability reaches the threshold, as Custom Vision counts."""
    predicted = probabilities >= threshold
    true_positives = (predicted & actual).sum(axis=0)
    overall = _ratio(np.array([true_positives.sum(), true_positives.sum()]),
                     np.array([predicted.sum(), actual.sum()]))
    return Counted(float(overall[0]), float(overall[1]), _ratio(true_positives, predicted.sum(axis=0)).tolist(),
                   _ratio(true_positives, actual.sum(axis=0)).tolist())
