"""The contract between the operator and the trainer: what one training run is asked to do, and what it returns.

The operator (or local mode) writes a TrainingRequest as JSON; the trainer writes a TrainingResult where the
operator reads it (the Job's termination message, with the whole result in S3 when it is too big for one; the
MLflow run; standard output). kubevision.core.results carries it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kubevision.core.api import (
    ClassificationType,
    CustomVisionProject,
    Hyperparameters,
    Iteration,
    IterationMetrics,
    ProjectType,
    TrainingType,
)
from kubevision.core.reasons import Reason, SkipReason

# Custom Vision's rules for a trainable dataset.
MIN_IMAGES_PER_TAG = 5
MIN_REGION_IMAGES_PER_TAG = 15  # object detection: images with at least one region of the tag
NEGATIVE_TAG = "Negative"  # Custom Vision's name for images that carry none of the tags
SUMMARY_MESSAGE_CHARACTERS = 1024  # a summary's message: a dataset error may name every tag


class ExitCode(IntEnum):
    """How the trainer's process ends; a Job controller tells a bad dataset (no retry) from a crash (retry)."""

    SUCCEEDED = 0
    CRASHED = 1
    INVALID_DATASET = 2


class ResolvedTraining(BaseModel):
    """Training settings after the iteration's fields, the project's defaults and the built-in defaults merged."""

    model_config = ConfigDict(frozen=True)

    training_type: TrainingType
    budget_minutes: int
    seed: int = 0
    learning_rate: float = 0.0003
    batch_size: int = 32
    max_epochs: int = 30
    early_stopping_patience: int = 6
    augmentation: bool = True
    probability_threshold: float = 0.5


def resolve_training(project: CustomVisionProject, iteration: Iteration) -> ResolvedTraining:
    defaults = project.spec.training_defaults
    chosen: dict = {}
    for source in (defaults.hyperparameters, iteration.spec.hyperparameters or Hyperparameters()):
        chosen.update(source.model_dump(exclude_none=True))
    return ResolvedTraining(
        training_type=iteration.spec.training_type or defaults.training_type,
        budget_minutes=iteration.spec.budget_minutes or defaults.budget_minutes,
        **chosen,
    )


def min_images_per_tag(project_type: ProjectType) -> int:
    """Custom Vision's minimum of images a tag, by project type (a detector's tag counts images with its boxes)."""
    return MIN_REGION_IMAGES_PER_TAG if project_type == ProjectType.OBJECT_DETECTION else MIN_IMAGES_PER_TAG


def classification_type(project: CustomVisionProject) -> ClassificationType:
    return ClassificationType(project.spec.classification_type or ClassificationType.MULTICLASS)


def iteration_id(iteration: Iteration) -> str:
    """Unique to one Iteration object (a recreated Iteration of the same name gets a new one), and short enough
    to name its training Job (63 characters). Names its dataset snapshot too."""
    uid = iteration.metadata.uid or "local"
    return f"{iteration.metadata.name[:54]}-{uid[:8]}"


class TrainingRequest(BaseModel):
    project: CustomVisionProject
    iteration: Iteration


class SkippedImage(BaseModel):
    id: str
    reason: SkipReason
    detail: str = ""


class TrainingResult(BaseModel):
    outcome: Literal["Succeeded", "InvalidDataset", "Failed"]
    reason: Reason
    message: str
    tags: list[str] = Field(default_factory=list, description="Labels in the model's output order.")
    images_used: int = 0
    skipped_count: int = 0
    skipped: list[SkippedImage] = Field(default_factory=list)
    metrics: IterationMetrics | None = None
    mlflow_run_id: str | None = None
    model_uri: str | None = None
    registered_model: str | None = None
    registered_version: str | None = None
    seconds: float | None = None
    served: str | None = Field(
        default=None, description="Advanced: the model it serves, Quick's or the fine-tuned network (FineTuned), "
                                  "whichever scored better by cross-validation on the training images.")
    full_result: str | None = Field(
        default=None, description="Set on a summary: the S3 URI of the whole result, whose lists it leaves out.")

    @property
    def exit_code(self) -> ExitCode:
        return {
            "Succeeded": ExitCode.SUCCEEDED, "InvalidDataset": ExitCode.INVALID_DATASET, "Failed": ExitCode.CRASHED
        }[self.outcome]

    def summary(self, full_result: str | None) -> TrainingResult:
        """The result without its lists (tags, skipped images, per-tag metrics), which grow with the dataset:
        what always fits in a termination message."""
        metrics = self.metrics.model_copy(update={"per_tag": []}) if self.metrics else None
        return self.model_copy(update={"tags": [], "skipped": [], "metrics": metrics, "full_result": full_result,
                                       "message": self.message[:SUMMARY_MESSAGE_CHARACTERS]})
