"""The KubeVision API: CustomVisionProject and Iteration, written once.

These pydantic models are the only definition of the two custom resources. `kubevision crds` turns them into
crds/*.yaml (see kubevision.core.crd); the operator, the trainer and local mode parse resources with them.
Field names are camelCase on the wire, as Kubernetes APIs are.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "kubevision.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "kubevision"

# A DNS-1123 label: what Kubernetes accepts as a resource name, and what a Triton model name may safely be.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class ApiModel(BaseModel):
    """Base of every API type: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", use_enum_values=True
    )


def cel_rules(*rules: tuple[str, str]) -> dict[str, Any]:
    """`x-kubernetes-validations` for a model's json_schema_extra: (CEL rule, message) pairs."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


# ----------------------------------------------------------------------------------------------------------------
# Enums shared with Azure Custom Vision


class ProjectType(StrEnum):
    CLASSIFICATION = "Classification"
    OBJECT_DETECTION = "ObjectDetection"


class ClassificationType(StrEnum):
    MULTICLASS = "Multiclass"
    MULTILABEL = "Multilabel"


class Domain(StrEnum):
    """Custom Vision's domains. A Compact domain trades accuracy for a model small enough for the edge."""

    GENERAL = "General"
    FOOD = "Food"
    LANDMARKS = "Landmarks"
    RETAIL = "Retail"
    GENERAL_COMPACT = "GeneralCompact"
    FOOD_COMPACT = "FoodCompact"
    LANDMARKS_COMPACT = "LandmarksCompact"
    RETAIL_COMPACT = "RetailCompact"


class TrainingType(StrEnum):
    QUICK = "Quick"  # frozen backbone, fitted head: minutes
    ADVANCED = "Advanced"  # fine-tuning within a time budget


class ProjectPhase(StrEnum):
    PENDING = "Pending"
    READY = "Ready"
    NOT_READY = "NotReady"


class IterationPhase(StrEnum):
    PENDING = "Pending"
    QUEUED = "Queued"  # ready to train, waiting for a turn: the namespace's concurrent trainings, or Kueue's quota
    TRAINING = "Training"
    TRAINED = "Trained"
    PUBLISHED = "Published"
    FAILED = "Failed"


# ----------------------------------------------------------------------------------------------------------------
# Shared parts


class Condition(ApiModel):
    """One aspect of a resource's state, in the form every Kubernetes condition takes (metav1.Condition)."""

    type: Annotated[
        str,
        Field(max_length=316, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
              r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
              description="Type of condition in CamelCase, e.g. Ready, DatasetReady, Trained, Published."),
    ]
    status: Literal["True", "False", "Unknown"] = Field(description="Whether the condition holds.")
    reason: Annotated[
        str,
        Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
              description="Machine-readable CamelCase reason for the last transition, e.g. TooFewImages."),
    ]
    message: str = Field(default="", max_length=32768, description="What happened, for a person to act on.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation that the condition was set against."
    )
    last_transition_time: datetime = Field(description="When the status last changed.")


Conditions = Annotated[
    list[Condition],
    Field(
        default_factory=list,
        description="The latest observations of the resource's state, one per type.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]


class Hyperparameters(ApiModel):
    """Knobs of training. Every field is optional: an unset one falls back to the project's training defaults,
    then to the trainer's own default given in its description."""

    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, description="Random seed (default 0).")
    learning_rate: float | None = Field(
        default=None, gt=0, le=1, description="Learning rate of the fine-tuned blocks (Advanced only; default 0.0003)."
    )
    batch_size: int | None = Field(default=None, ge=1, le=512, description="Images per training step (default 32).")
    max_epochs: int | None = Field(
        default=None, ge=1, le=1000, description="Upper bound on fine-tuning epochs (Advanced only; default 30)."
    )
    early_stopping_patience: int | None = Field(
        default=None, ge=1, le=100,
        description="Epochs without a lower held-out loss before fine-tuning stops (Advanced only; default 6).",
    )
    augmentation: bool | None = Field(
        default=None, description="Random crops, flips and colour jitter while fine-tuning (default true)."
    )


class TrainingDefaults(ApiModel):
    """How iterations of this project train unless they say otherwise."""

    training_type: TrainingType = Field(default=TrainingType.QUICK, description="Quick or Advanced training.")
    budget_minutes: int = Field(
        default=60, ge=1, le=2880,
        description="Wall-clock budget of one training run in minutes; the training Job is stopped after it.",
    )
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters, description="Default hyperparameters.")


def _admitted_prefix(schema: dict) -> None:
    """The prefix as admission sees it: required, of two segments at least."""
    schema.pop("default", None)
    schema["pattern"] = r"^([A-Za-z0-9!_.*'()-]+/){2,}$"


class DatasetLocation(ApiModel):
    """Where the project's images and dataset manifest live in S3 (see docs/storage.md).

    Admission (the CRD's schema) wants a prefix of two segments at least; a project stored before that rule may have
    none, or one, so reading it still succeeds, and the operator refuses it by a condition (DatasetOutsideNamespace)
    instead of failing to parse it, or to delete it."""

    model_config = ConfigDict(json_schema_extra={"required": ["bucket", "prefix"]})

    bucket: str = Field(
        min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$", description="S3 bucket name."
    )
    prefix: str = Field(
        default="", max_length=512, pattern=r"^([A-Za-z0-9!_.*'()-]+/)*$",
        json_schema_extra=_admitted_prefix,
        description="Key prefix inside the bucket: the project's namespace and at least one more path segment, "
                    "each ending in '/' (e.g. team-a/trees/). The operator refuses a prefix outside the namespace.",
    )


# ----------------------------------------------------------------------------------------------------------------
# CustomVisionProject


class CustomVisionProjectSpec(ApiModel):
    """What a Custom Vision project is: its kind of model, its domain, where its labelled images are."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            ("self.type == 'Classification' || !has(self.classificationType)",
             "classificationType applies to Classification projects only"),
            ("self.type == 'Classification' || self.domain in ['General', 'GeneralCompact']",
             "ObjectDetection projects support the General and GeneralCompact domains only"),
        )
    )

    display_name: str = Field(min_length=1, max_length=256, description="Name shown to people.")
    description: str = Field(default="", max_length=4096, description="What the project is for.")
    type: ProjectType = Field(
        default=ProjectType.CLASSIFICATION,
        description="Classification (tags for a whole image) or ObjectDetection (tagged regions).",
        json_schema_extra=cel_rules(("self == oldSelf", "type is immutable")),
    )
    classification_type: ClassificationType | None = Field(
        default=None,
        description="Multiclass (one tag an image) or Multilabel (any number of tags). "
                    "Classification projects only; unset means Multiclass.",
    )
    domain: Domain = Field(
        default=Domain.GENERAL,
        description="The domain picks the pretrained backbone and input size; Compact domains give smaller models.",
    )
    dataset: DatasetLocation = Field(description="Location of the images and the dataset manifest in S3.")
    training_defaults: TrainingDefaults = Field(
        default_factory=TrainingDefaults, description="Training settings that iterations inherit."
    )


class TagCount(ApiModel):
    tag: str = Field(description="Tag name.")
    images: int = Field(ge=0, description="Images carrying the tag.")


class CustomVisionProjectStatus(ApiModel):
    """What the operator last saw of the project."""

    phase: ProjectPhase | None = Field(default=None, description="Pending, Ready or NotReady.")
    observed_generation: int | None = Field(default=None, ge=0, description="The generation last reconciled.")
    conditions: Conditions
    image_count: int | None = Field(default=None, ge=0, description="Images in the dataset manifest.")
    tags: list[TagCount] = Field(
        default_factory=list, description="Images per tag.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["tag"]},
    )
    experiment_id: str | None = Field(default=None, description="The project's MLflow experiment.")


# ----------------------------------------------------------------------------------------------------------------
# Iteration


class ProjectReference(ApiModel):
    name: str = Field(
        min_length=1, max_length=253, description="Name of a CustomVisionProject in the Iteration's namespace."
    )


class IterationResources(ApiModel):
    """Compute for the training Job."""

    gpus: int = Field(default=0, ge=0, le=8, description="NVIDIA GPUs for training (0 trains on CPU).")


class IterationSpec(ApiModel):
    """One training run of a project, and whether its model is published. Unset training fields come from the
    project's trainingDefaults."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            ("!has(self.hyperparameters) || !has(self.trainingType) || self.trainingType == 'Advanced' || "
             "(!has(self.hyperparameters.learningRate) && !has(self.hyperparameters.maxEpochs) && "
             "!has(self.hyperparameters.earlyStoppingPatience))",
             "learningRate, maxEpochs and earlyStoppingPatience apply to Advanced training, not Quick"),
        )
    )

    project_ref: ProjectReference = Field(
        description="The project to train.", json_schema_extra=cel_rules(("self == oldSelf", "projectRef is immutable"))
    )
    training_type: TrainingType | None = Field(default=None, description="Quick or Advanced training.")
    budget_minutes: int | None = Field(
        default=None, ge=1, le=2880, description="Wall-clock budget of training in minutes."
    )
    hyperparameters: Hyperparameters | None = Field(default=None, description="Hyperparameters for this run.")
    resources: IterationResources = Field(default_factory=IterationResources, description="Compute for training.")
    publish_name: str | None = Field(
        default=None, min_length=1, max_length=63, pattern=DNS_LABEL,
        description="When set, the trained model is served under this name (unique within the project); "
                    "removing it unpublishes.",
    )


class TagMetrics(ApiModel):
    tag: str = Field(description="Tag name.")
    precision: float = Field(ge=0, le=1, description="Precision at the probability threshold.")
    recall: float = Field(ge=0, le=1, description="Recall at the probability threshold.")
    average_precision: float = Field(ge=0, le=1, description="Average precision over all thresholds.")


class IterationMetrics(ApiModel):
    """Held-out performance, computed as Custom Vision does."""

    probability_threshold: float = Field(ge=0, le=1, description="Threshold used for precision and recall.")
    precision: float = Field(ge=0, le=1, description="Precision over all tags.")
    recall: float = Field(ge=0, le=1, description="Recall over all tags.")
    average_precision: float = Field(ge=0, le=1, description="Mean average precision over tags.")
    per_tag: list[TagMetrics] = Field(
        default_factory=list, description="The same figures for each tag.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["tag"]},
    )


class IterationStatus(ApiModel):
    """Where the iteration stands: training, its results, and serving."""

    phase: IterationPhase | None = Field(
        default=None, description="Pending, Queued, Training, Trained, Published or Failed."
    )
    observed_generation: int | None = Field(default=None, ge=0, description="The generation last reconciled.")
    conditions: Conditions
    dataset_snapshot: str | None = Field(
        default=None, description="S3 URI of the immutable dataset manifest this iteration trains on."
    )
    training_job: str | None = Field(default=None, description="Name of the training Job.")
    training_spec_hash: str | None = Field(
        default=None,
        description="Hash of the spec fields that training used; a later change to them is reported, not retrained.",
    )
    training_started: datetime | None = Field(default=None, description="When training started.")
    training_finished: datetime | None = Field(default=None, description="When training ended.")
    metrics: IterationMetrics | None = Field(default=None, description="Held-out metrics of the trained model.")
    mlflow_run_id: str | None = Field(default=None, description="The MLflow run that recorded training.")
    model_uri: str | None = Field(default=None, description="S3 URI of the exported model in the Triton repository.")
    published_name: str | None = Field(default=None, description="Name the model is served under, when published.")
    endpoint: str | None = Field(default=None, description="Inference endpoint of the serving Triton.")


# ----------------------------------------------------------------------------------------------------------------
# The resources and their CRD metadata


class ObjectMeta(BaseModel):
    """The part of metadata the operator reads; the rest passes through untouched."""

    model_config = ConfigDict(extra="allow")

    name: str
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None


class CustomVisionProject(ApiModel):
    """A Custom Vision project: a labelled dataset and how models are trained from it."""

    api_version: Literal["kubevision.io/v1alpha1"] = API_VERSION
    kind: Literal["CustomVisionProject"] = "CustomVisionProject"
    metadata: ObjectMeta
    spec: CustomVisionProjectSpec
    status: CustomVisionProjectStatus = Field(default_factory=CustomVisionProjectStatus)


class Iteration(ApiModel):
    """One training run of a CustomVisionProject, optionally published for prediction."""

    api_version: Literal["kubevision.io/v1alpha1"] = API_VERSION
    kind: Literal["Iteration"] = "Iteration"
    metadata: ObjectMeta
    spec: IterationSpec
    status: IterationStatus = Field(default_factory=IterationStatus)
