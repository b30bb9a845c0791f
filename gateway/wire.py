"""Custom Vision's wire models, as the official SDK (azure-cognitiveservices-vision-customvision 3.1.1) names their
fields: what the gateway answers, and the OpenAPI document that describes it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Base64Bytes, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class TagType(StrEnum):
    REGULAR = "Regular"
    NEGATIVE = "Negative"
    GENERAL_PRODUCT = "GeneralProduct"


class BoundingBox(Wire):
    """A region, each figure a fraction of the image's width or height."""

    left: float
    top: float
    width: float
    height: float


class Prediction(Wire):
    probability: float
    tag_id: str
    tag_name: str
    bounding_box: BoundingBox | None = None
    tag_type: TagType | None = None


class ImagePrediction(Wire):
    id: str
    project: str
    iteration: str
    created: datetime
    predictions: list[Prediction] = Field(description="Sorted by probability, highest first.")


class ImageUrl(Wire):
    url: str = Field(max_length=2048, description="http(s) URL of the image.")


class CustomVisionErrorBody(Wire):
    code: str
    message: str


# ----------------------------------------------------------------------------------------------------------------
# Training API (v3.3, v3.4-preview)


class ExportPlatform(StrEnum):
    ONNX = "ONNX"


class ModelInformation(Wire):
    estimated_model_size_in_megabytes: int | None = None
    description: str


class Domain(Wire):
    id: str
    name: str
    type: str = Field(description="Classification or ObjectDetection.")
    exportable: bool
    enabled: bool
    exportable_platforms: list[str]
    model_information: ModelInformation | None = None


class ProjectSettings(Wire):
    domain_id: str | None = None
    classification_type: str | None = Field(default=None, description="Multiclass or Multilabel.")
    target_export_platforms: list[str] = Field(default_factory=list)
    use_negative_set: bool | None = None
    detection_parameters: str | None = None
    image_processing_settings: dict | None = None
    export_model_container_uri: str | None = None
    notification_queue_uri: str | None = None


class Project(Wire):
    id: str | None = None
    name: str = Field(max_length=256)
    description: str = Field(default="", max_length=4096)
    settings: ProjectSettings | None = None
    created: datetime | None = None
    last_modified: datetime | None = None
    thumbnail_uri: str | None = None
    dr_mode_enabled: bool | None = None
    status: str | None = None


class Tag(Wire):
    id: str | None = None
    name: str = Field(max_length=256)
    description: str | None = Field(default=None, max_length=4096)
    type: TagType | None = None
    image_count: int | None = None


class ImageTag(Wire):
    tag_id: str
    tag_name: str
    created: datetime | None = None


class ImageRegion(Wire):
    region_id: str
    tag_name: str
    created: datetime
    tag_id: str
    left: float
    top: float
    width: float
    height: float


class Image(Wire):
    id: str
    created: datetime
    width: int
    height: int
    resized_image_uri: str
    thumbnail_uri: str
    original_image_uri: str
    tags: list[ImageTag] | None = None
    regions: list[ImageRegion] | None = None
    metadata: dict[str, str] | None = None


class ImageCreateResult(Wire):
    source_url: str | None = None
    status: str = Field(description="OK, OKDuplicate, ErrorSource, ErrorImageFormat, ErrorImageSize, ...")
    image: Image | None = None


class ImageCreateSummary(Wire):
    is_batch_successful: bool
    images: list[ImageCreateResult]


class Region(Wire):
    """A tagged box; the label store checks it lies in the image (BadRequestImageRegions)."""

    tag_id: str
    left: float
    top: float
    width: float
    height: float


Metadata = dict[str, str]


class ImageFileCreateEntry(Wire):
    name: str | None = Field(default=None, max_length=1024)
    contents: Base64Bytes | None = Field(default=None, description="The image, base64 encoded.")
    tag_ids: list[str] | None = None
    regions: list[Region] | None = None


class ImageFileCreateBatch(Wire):
    images: list[ImageFileCreateEntry] | None = None
    tag_ids: list[str] | None = None
    metadata: Metadata | None = None


class ImageUrlCreateEntry(Wire):
    url: str = Field(max_length=2048)
    tag_ids: list[str] | None = None
    regions: list[Region] | None = None


class ImageUrlCreateBatch(Wire):
    images: list[ImageUrlCreateEntry] | None = None
    tag_ids: list[str] | None = None
    metadata: Metadata | None = None


class ImageIdCreateEntry(Wire):
    id: str | None = Field(default=None, description="A stored prediction's id.")
    tag_ids: list[str] | None = None
    regions: list[Region] | None = None


class ImageIdCreateBatch(Wire):
    images: list[ImageIdCreateEntry] | None = None
    tag_ids: list[str] | None = None
    metadata: Metadata | None = None


class ImageRegionCreateEntry(Region):
    image_id: str


class ImageRegionCreateBatch(Wire):
    regions: list[ImageRegionCreateEntry] | None = None


class ImageRegionCreateResult(ImageRegionCreateEntry):
    region_id: str
    tag_name: str
    created: datetime


class ImageRegionCreateSummary(Wire):
    created: list[ImageRegionCreateResult] | None = None
    duplicated: list[ImageRegionCreateEntry] | None = None
    exceeded: list[ImageRegionCreateEntry] | None = None


class ImageTagCreateEntry(Wire):
    image_id: str
    tag_id: str


class ImageTagCreateBatch(Wire):
    tags: list[ImageTagCreateEntry] | None = None


class ImageTagCreateSummary(Wire):
    created: list[ImageTagCreateEntry] | None = None
    duplicated: list[ImageTagCreateEntry] | None = None
    exceeded: list[ImageTagCreateEntry] | None = None


class ImageMetadataUpdateEntry(Wire):
    image_id: str
    status: str
    metadata: Metadata | None = None


class ImageMetadataUpdateSummary(Wire):
    is_batch_successful: bool
    images: list[ImageMetadataUpdateEntry]


class Iteration(Wire):
    id: str | None = None
    name: str = Field(max_length=256)
    status: str | None = Field(default=None, description="Training, Completed or Failed.")
    created: datetime | None = None
    last_modified: datetime | None = None
    trained_at: datetime | None = None
    project_id: str | None = None
    exportable: bool | None = None
    exportable_to: list[str] | None = None
    domain_id: str | None = None
    classification_type: str | None = None
    training_type: str | None = Field(default=None, description="Regular or Advanced.")
    reserved_budget_in_hours: int | None = None
    training_time_in_minutes: int | None = None
    publish_name: str | None = None
    original_publish_resource_id: str | None = None
    custom_base_model_info: dict | None = None
    training_error_details: str | None = None


class TrainingParameters(Wire):
    selected_tags: list[str] | None = None
    custom_base_model_info: dict | None = None


class TagPerformance(Wire):
    id: str
    name: str
    precision: float
    precision_std_deviation: float
    recall: float
    recall_std_deviation: float
    average_precision: float | None = None


class IterationPerformance(Wire):
    per_tag_performance: list[TagPerformance]
    precision: float
    precision_std_deviation: float
    recall: float
    recall_std_deviation: float
    average_precision: float | None = None


class ImagePerformance(Wire):
    """A held-out image of an iteration: its true tags and the iteration's predictions."""

    id: str
    created: datetime | None = None
    width: int | None = None
    height: int | None = None
    image_uri: str | None = None
    thumbnail_uri: str | None = None
    tags: list[ImageTag]
    regions: list[ImageRegion] | None = Field(default=None, description="A detector's held-out image: its true boxes.")
    predictions: list[Prediction] = Field(description="Sorted by probability, highest first.")


class ProjectExport(Wire):
    iteration_count: int
    image_count: int
    tag_count: int
    region_count: int
    estimated_import_time_in_ms: int = Field(serialization_alias="estimatedImportTimeInMS",
                                             validation_alias="estimatedImportTimeInMS")
    token: str


class SuggestedTags(Wire):
    """Custom Vision's SuggestedTagAndRegion: an image's tags (a detector's: tagged regions) as an iteration sees
    them."""

    id: str = Field(description="The image's id.")
    project: str
    iteration: str
    created: datetime
    predictions: list[Prediction] = Field(description="Sorted by probability, highest first.")
    prediction_uncertainty: float = Field(description="1 minus the highest probability (1 when nothing is found).")


class Export(Wire):
    platform: str
    status: str = Field(description="Exporting, Failed or Done.")
    download_uri: str | None = None
    flavor: str | None = None
    newer_version_available: bool = False


class PredictionQueryTag(Wire):
    id: str
    min_threshold: float = 0
    max_threshold: float = 1


class PredictionQueryToken(Wire):
    session: str | None = None
    continuation: str | None = Field(default=None, max_length=64)
    max_count: int | None = Field(default=None, ge=0)
    order_by: str | None = Field(default=None, description="Newest, Oldest or Suggested.")
    tags: list[PredictionQueryTag] | None = None
    iteration_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    application: str | None = Field(default=None, max_length=64)


class StoredImagePrediction(Wire):
    resized_image_uri: str
    thumbnail_uri: str
    original_image_uri: str
    domain: str
    id: str
    project: str
    iteration: str
    created: datetime
    predictions: list[Prediction]


class PredictionQueryResult(Wire):
    token: PredictionQueryToken
    results: list[StoredImagePrediction]


# KubeVision's own answers (no Custom Vision model has them)


class ProjectUsage(Wire):
    """What one project of the caller's namespace used in the window (core.usage.FIGURES)."""

    project: str = Field(description="The CustomVisionProject's name.")
    predictions_stored: int = 0
    predictions_not_stored: int = 0
    images_stored: int = 0
    image_bytes: int = 0
    exports: int = 0
    trainings: int = 0
    training_seconds: float = 0
    gpu_seconds: float = 0


class UsageReport(Wire):
    namespace: str
    since: datetime = Field(description="The window's start: calls are counted from the hour it falls in, "
                                        "trainings that ended after it.")
    projects: list[ProjectUsage]
