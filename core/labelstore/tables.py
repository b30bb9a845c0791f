"""The label store's tables, the only definition of its schema: the migrations under migrations/ are checked against
these models by a test. Image bytes are not here: an image row names its S3 object by content hash."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

UUID = String(36)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC on the way out, whatever the database keeps (SQLite keeps naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    # Named constraints, so that migrations can name what they change on SQLite and PostgreSQL alike.
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Project(Base):
    """A CustomVisionProject whose labels live here, and the state of its manifest export."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(UUID, primary_key=True, comment="The CustomVisionProject's uid.")
    namespace: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(253))
    bucket: Mapped[str] = mapped_column(String(63))
    prefix: Mapped[str] = mapped_column(String(512))
    created: Mapped[datetime]
    labels_version: Mapped[int] = mapped_column(Integer, default=0, comment="Moves with every change of labels.")
    changed_at: Mapped[datetime | None]
    dirty_since: Mapped[datetime | None] = mapped_column(comment="First change not yet exported.")
    exported_version: Mapped[int] = mapped_column(Integer, default=0)
    manifest_etag: Mapped[str | None] = mapped_column(String(128), comment="ETag of the manifest this store wrote.")
    export_holder: Mapped[str | None] = mapped_column(String(64), comment="Who is exporting now (a lease).")
    export_lease_until: Mapped[datetime | None]
    export_conflict: Mapped[str | None] = mapped_column(Text, comment="Why exports stopped: a manifest written "
                                                                       "by someone else.")


def _in_project(*columns: str, table: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["project_id", *columns], [f"{table}.project_id", *(f"{table}.id" for _ in columns)],
                                ondelete="CASCADE")


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (
        ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        Index(None, "project_id", "name", unique=True),
    )

    project_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    id: Mapped[str] = mapped_column(UUID, primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[str] = mapped_column(String(16), default="Regular", comment="Regular, Negative or GeneralProduct.")
    created: Mapped[datetime]


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (
        ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        Index(None, "project_id", "created", "id"),  # pages in upload order, newest or oldest first
    )

    project_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    id: Mapped[str] = mapped_column(UUID, primary_key=True, comment="Derived from sha256: one image per content.")
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime]


class ImageTag(Base):
    __tablename__ = "image_tags"
    __table_args__ = (
        _in_project("image_id", table="images"),
        _in_project("tag_id", table="tags"),
        Index(None, "project_id", "tag_id", "image_id"),
    )

    project_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    image_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    tag_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    created: Mapped[datetime]


class Region(Base):
    """A tagged box, each figure a fraction of the image's width or height."""

    __tablename__ = "regions"
    __table_args__ = (
        _in_project("image_id", table="images"),
        _in_project("tag_id", table="tags"),
        Index(None, "project_id", "image_id"),
    )

    id: Mapped[str] = mapped_column(UUID, primary_key=True)
    project_id: Mapped[str] = mapped_column(UUID)
    image_id: Mapped[str] = mapped_column(UUID)
    tag_id: Mapped[str] = mapped_column(UUID)
    left: Mapped[float] = mapped_column(Float)
    top: Mapped[float] = mapped_column(Float)
    width: Mapped[float] = mapped_column(Float)
    height: Mapped[float] = mapped_column(Float)
    created: Mapped[datetime]


class ImageMetadata(Base):
    __tablename__ = "image_metadata"
    __table_args__ = (_in_project("image_id", table="images"),)

    project_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    image_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class StoredPrediction(Base):
    """A prediction the gateway kept: the index of its record in S3 (predictions/<date>/<id>.json)."""

    __tablename__ = "predictions"
    __table_args__ = (
        ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        Index(None, "project_id", "created"),
    )

    project_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    id: Mapped[str] = mapped_column(UUID, primary_key=True)
    iteration_id: Mapped[str] = mapped_column(UUID)
    published_name: Mapped[str] = mapped_column(String(256))
    created: Mapped[datetime]
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    application: Mapped[str | None] = mapped_column(String(64))
    predictions: Mapped[list[Any]] = mapped_column(comment="[{tag_id, tag_name, probability}], highest first.")
    object_key: Mapped[str] = mapped_column(String(1024))


class UsageCount(Base):
    """What the gateway counted of one project in one hour (UTC): replicas add their counts to the same row."""

    __tablename__ = "usage_counts"
    __table_args__ = (Index(None, "hour"),)

    namespace: Mapped[str] = mapped_column(String(63), primary_key=True)
    project: Mapped[str] = mapped_column(String(253), primary_key=True, comment="The CustomVisionProject's name.")
    hour: Mapped[datetime] = mapped_column(primary_key=True, comment="The hour's start.")
    predictions_stored: Mapped[int] = mapped_column(BigInteger, default=0)
    predictions_not_stored: Mapped[int] = mapped_column(BigInteger, default=0)
    images_stored: Mapped[int] = mapped_column(BigInteger, default=0)
    image_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    exports: Mapped[int] = mapped_column(BigInteger, default=0)


class TrainingUsage(Base):
    """One ended training, once: keyed by its Iteration's uid, so every gateway that sees it records the same row."""

    __tablename__ = "training_usage"
    __table_args__ = (Index(None, "finished"),)

    iteration_uid: Mapped[str] = mapped_column(UUID, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(63))
    project: Mapped[str] = mapped_column(String(253), comment="The CustomVisionProject's name.")
    iteration: Mapped[str] = mapped_column(String(253))
    finished: Mapped[datetime]
    seconds: Mapped[float] = mapped_column(Float)
    gpus: Mapped[int] = mapped_column(Integer)
    advanced: Mapped[bool] = mapped_column(Boolean, comment="An Advanced training: counted against the namespace's "
                                                            "Advanced budget.")


class RateWindow(Base):
    """The calls one rate counter (a namespace's kind of call) took in its current window, shared by every gateway
    replica (gateway/rate_limits.py). One row per counter, reused window after window: the table holds the counters
    in use, never their history."""

    __tablename__ = "rate_windows"

    key: Mapped[str] = mapped_column(String(128), primary_key=True,
                                     comment="<namespace>/<kind of call>/<window seconds>.")
    started: Mapped[int] = mapped_column(BigInteger, comment="When the window began, epoch seconds.")
    calls: Mapped[int] = mapped_column(Integer, comment="Calls counted in that window.")
    ends: Mapped[int] = mapped_column(BigInteger, comment="When the window ends, epoch seconds; old rows are swept.")
