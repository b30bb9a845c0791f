"""Custom Vision's wire models, as the official SDK (azure-cognitiveservices-vision-customvision 3.1.1) names their
fields: what the gateway answers, and the OpenAPI document that describes it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
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
