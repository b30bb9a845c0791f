"""Reasons: the machine-readable words of conditions, events and the trainer's result, in one place.

Each says what a person can act on. A new reason is one member here; everything else reads it from this enum.
"""

from enum import StrEnum


class Reason(StrEnum):
    # dataset (project and trainer)
    DATASET_NOT_FOUND = "DatasetNotFound"  # no manifest or snapshot where the spec points
    DATASET_OUTSIDE_NAMESPACE = "DatasetOutsideNamespace"  # spec.dataset.prefix is not under the project's namespace
    NO_IMAGES = "NoImages"
    MANIFEST_INVALID = "ManifestInvalid"  # a manifest line is no image record; the message names it
    TOO_FEW_IMAGES = "TooFewImages"  # a tag has fewer than MIN_IMAGES_PER_TAG usable images
    TOO_FEW_TAGS = "TooFewTags"  # fewer than two classes to tell apart
    UNSUPPORTED_PROJECT_TYPE = "UnsupportedProjectType"
    STORAGE_UNAVAILABLE = "StorageUnavailable"  # S3 cannot be reached; retried with backoff
    ENOUGH_IMAGES = "EnoughImages"
    DATASET_NOT_REMOVED = "DatasetNotRemoved"  # a deleted project's dataset: S3 failed; the deletion waits for it
    # project readiness
    READY = "Ready"
    DATASET_NOT_READY = "DatasetNotReady"
    TRACKING_UNAVAILABLE = "TrackingUnavailable"  # MLflow cannot be reached; retried with backoff
    PROJECT_LIMIT = "ProjectLimitExceeded"  # the namespace holds as many older projects as its limit allows
    # iteration: project and training
    PROJECT_NOT_FOUND = "ProjectNotFound"
    PROJECT_NOT_READY = "ProjectNotReady"
    ITERATION_LIMIT = "IterationLimitExceeded"  # the project keeps as many older iterations as its namespace allows
    CONCURRENT_TRAINING_LIMIT = "ConcurrentTrainingLimit"  # the namespace's trainings at once run; starts when one ends
    QUEUED = "Queued"  # Kueue has not admitted the training Job yet; the message has Kueue's reason
    INADMISSIBLE = "Inadmissible"  # Kueue cannot admit the Job: its LocalQueue or ClusterQueue is missing or stopped
    TRAINING = "Training"
    IMAGE_PULL_FAILED = "ImagePullFailed"  # the trainer image cannot be pulled; waits for a fix
    TRAINING_SUCCEEDED = "TrainingSucceeded"
    TRAINING_FAILED = "TrainingFailed"  # the trainer crashed; its log says why
    BUDGET_EXCEEDED = "BudgetExceeded"  # the Job ran past budgetMinutes
    NO_RESULT = "NoResult"  # the trainer ended without writing its result
    RECONCILE_FAILED = "ReconcileFailed"  # an unforeseen error in this resource alone; retried
    SPEC_CURRENT = "SpecCurrent"
    SPEC_CHANGED_AFTER_TRAINING = "SpecChangedAfterTraining"  # not retrained: create a new Iteration
    # iteration: publishing
    NOT_PUBLISHED = "NotPublished"
    PUBLISHING = "Publishing"
    PUBLISHED = "Published"
    PUBLISH_NAME_CONFLICT = "PublishNameConflict"  # another Iteration of the project holds the name
    SERVING_NOT_READY = "ServingNotReady"
    MODEL_NOT_FOUND = "ModelNotFound"  # the trained model is not in the project's model repository
    NOT_TRAINED = "NotTrained"


class SkipReason(StrEnum):
    """Why one image was left out of training; never fatal by itself."""

    UNSUPPORTED_FORMAT = "UnsupportedFormat"
    TOO_LARGE = "TooLarge"
    UNREADABLE = "Unreadable"
    MISSING = "Missing"  # listed in the snapshot, absent from S3
    CONFLICTING_TAGS = "ConflictingTags"  # several tags on an image of a Multiclass project
