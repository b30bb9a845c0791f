"""Reasons: the machine-readable words of conditions, events and the trainer's result, in one place.

Each says what a person can act on. A new reason is one member here; everything else reads it from this enum.
"""

from enum import StrEnum


class Reason(StrEnum):
    # dataset (project and trainer)
    DATASET_NOT_FOUND = "DatasetNotFound"  # no manifest or snapshot where the spec points
    NO_IMAGES = "NoImages"
    TOO_FEW_IMAGES = "TooFewImages"  # a tag has fewer than MIN_IMAGES_PER_TAG usable images
    TOO_FEW_TAGS = "TooFewTags"  # fewer than two classes to tell apart
    UNSUPPORTED_PROJECT_TYPE = "UnsupportedProjectType"
    # training
    TRAINING_SUCCEEDED = "TrainingSucceeded"
    TRAINING_FAILED = "TrainingFailed"  # the trainer crashed; its log says why


class SkipReason(StrEnum):
    """Why one image was left out of training; never fatal by itself."""

    UNSUPPORTED_FORMAT = "UnsupportedFormat"
    TOO_LARGE = "TooLarge"
    UNREADABLE = "Unreadable"
    MISSING = "Missing"  # listed in the snapshot, absent from S3
    CONFLICTING_TAGS = "ConflictingTags"  # several tags on an image of a Multiclass project
