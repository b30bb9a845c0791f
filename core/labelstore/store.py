"""The label store's operations on projects, tags and images, free of HTTP: the training API, `kubevision upload`
and the benchmarks call them alike.

Writes keep three promises. Bytes first: an image's bytes are in S3 before its row is committed, so no row ever names
missing bytes (a crash in between leaves an orphan object, harmless and collectable). Nothing lost: rows are inserted
with "on conflict do nothing" on keys derived from content and names, so concurrent writers of the same image or tag
converge on one row, and every change moves the project's labels_version, which the manifest export follows.
Limits hold: a write that adds tags or images counts them with the project's row locked (SQLite's writers take
turns anyway), so concurrent writers racing for the last slots of the namespace's limit never pass it together.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import String, any_, delete, func, literal, select, union_all, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from kubevision.core import dataset
from kubevision.core.images import ImageProblem, Inspected, inspect
from kubevision.core.labelstore import tables
from kubevision.core.labelstore.boxes import MAX_REGIONS_PER_IMAGE, fit_boxes
from kubevision.core.labelstore.database import Database
from kubevision.core.labelstore.errors import NotFound, StoreError
from kubevision.core.labelstore.metadata import MAX_METADATA, check_pairs
from kubevision.core.limits import LimitsSource
from kubevision.core.names import name_problem
from kubevision.core.storage import DatasetLayout, ObjectStore, dataset_prefix_problem
from kubevision.core.training import NEGATIVE_TAG

MAX_BATCH = 64  # images in one upload, as Custom Vision allows
MAX_TAGS_PER_IMAGE = 100
TAG_TYPES = ("Regular", "Negative", "GeneralProduct")
# Why the image policy refuses an upload, in Custom Vision's ImageCreateStatus.
IMAGE_STATUSES = {"bytes": "ErrorImageSize", "pixels": "ErrorImageDimensions", "format": "ErrorImageFormat",
                  "unreadable": "ErrorImageFormat"}
UPLOAD_THREADS = 8  # S3 writes of one batch in parallel
ANALYZE_EVERY = 5000  # images this store has added since PostgreSQL last gathered statistics at its request
# What a view needs of an image, read as plain rows: a page of ORM objects costs more than its query.
IMAGE_COLUMNS = (tables.Image.id, tables.Image.sha256, tables.Image.content_type, tables.Image.created,
                 tables.Image.width, tables.Image.height)


@dataclass(frozen=True)
class ProjectRef:
    """What the store needs of a CustomVisionProject: its uid, and where its dataset lives."""

    id: str
    namespace: str
    name: str
    bucket: str
    prefix: str

    def __post_init__(self) -> None:
        # Refused here, so that nothing the store does reaches another namespace's dataset.
        problem = dataset_prefix_problem(self.namespace, self.prefix)
        if problem is not None:
            raise StoreError(f"Project {self.namespace}/{self.name}: {problem}.", "ForbiddenUserResource", 403)

    @property
    def layout(self) -> DatasetLayout:
        return DatasetLayout(self.bucket, self.prefix)


@dataclass(frozen=True)
class RegionIn:
    tag_id: str
    left: float
    top: float
    width: float
    height: float


@dataclass
class NewImage:
    """One image of an upload batch: its bytes, or (from a stored prediction) the hash of bytes already stored."""

    data: bytes | None = None
    tag_ids: list[str] = field(default_factory=list)
    regions: list[RegionIn] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    source: str | None = None  # the URL it came from, reported back
    stored: tables.StoredPrediction | None = None


@dataclass(frozen=True)
class TagView:
    id: str
    name: str
    description: str
    type: str
    image_count: int


@dataclass
class ImageView:
    id: str
    sha256: str
    content_type: str
    created: datetime
    width: int
    height: int
    tags: list[tuple[str, str, datetime]] = field(default_factory=list)  # (tag id, name, created)
    regions: list[tuple[tables.Region, str]] = field(default_factory=list)  # (region, tag name)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Created:
    """One image's outcome, with Custom Vision's ImageCreateStatus."""

    status: str
    image: ImageView | None = None
    source: str | None = None


def now() -> datetime:
    return datetime.now(UTC)


def dialect_insert(session: Session):
    """The dialect's INSERT, which knows ON CONFLICT DO NOTHING."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def one_of(column, values: list[str], session: Session):
    """`column IN values`; on PostgreSQL as `column = ANY(array)`, one parameter: binding a page's 256 ids one
    parameter each costs more than the query that reads them."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(values, ARRAY(String)))
    return column.in_(values)


def touch(session: Session, project_id: str) -> None:
    """Record a change of labels; the last statement of a write, so the project's row is locked briefly."""
    moment = now()
    session.execute(update(tables.Project).where(tables.Project.id == project_id).values(
        labels_version=tables.Project.labels_version + 1, changed_at=moment,
        dirty_since=func.coalesce(tables.Project.dirty_since, moment)))


def tag_name(name: str, type: str) -> str:
    """A tag's name as stored, or BadRequestTagName. The manifest names a Negative tag NEGATIVE_TAG, whatever its
    name, so no other tag may be called so (in any case or spacing): a regular tag is never merged with it."""
    name = name.strip()
    if not name or len(name) > 256:
        raise StoreError("A tag's name must have 1 to 256 characters.", "BadRequestTagName")
    problem = name_problem(name)
    if problem:
        raise StoreError(f"The tag name {name!r} {problem}.", "BadRequestTagName")
    if type != "Negative" and name.lower() == NEGATIVE_TAG.lower():
        raise StoreError(f"{NEGATIVE_TAG!r} names the project's Negative tag only; give this {type} tag another "
                         "name.", "BadRequestTagName")
    return name


def check_description(description: str) -> None:
    if len(description) > 4096 or "\x00" in description:  # PostgreSQL keeps no NUL
        raise StoreError("A tag's description must have at most 4096 characters, without NUL.",
                         "BadRequestTagDescription")


def locked_namespace(session: Session, project_id: str) -> str:
    """Lock the project's row until the transaction ends, so that writers adding to the project count its tags or
    images one after the other; returns its namespace. FOR NO KEY UPDATE: the row-level lock `touch` takes too,
    which leaves the foreign-key checks of concurrent inserts free (FOR UPDATE would deadlock two uploads)."""
    namespace = session.scalar(select(tables.Project.namespace).where(tables.Project.id == project_id)
                               .with_for_update(key_share=True))
    if namespace is None:
        raise NotFound(f"Project {project_id} not found.", "NotFoundProject")
    return namespace


class LabelStore:
    def __init__(self, database: Database, objects: ObjectStore, analyze_every: int = ANALYZE_EVERY,
                 limits: LimitsSource | None = None):
        self.db = database
        self.objects = objects
        self.limits = limits or LimitsSource()  # the namespaces' limits of tags and images; Azure's S0 by default
        self._known: set[str] = set()
        self._analyze_every = analyze_every
        self._added = 0  # images added since the last ANALYZE; approximate under concurrent uploads, as it may be

    def _added_images(self, count: int) -> None:
        """After a bulk load, PostgreSQL's planner has no statistics until autovacuum runs (up to a minute later),
        and plans a page as a sort of the whole project (400 ms at 50,000 images). So the store gathers them itself
        once it has added many images: ANALYZE samples a fixed number of rows and takes well under a second."""
        self._added += count
        if self._added < self._analyze_every or self.db.dialect != "postgresql":
            return
        self._added = 0
        with self.db.writer.connect() as connection:
            connection.exec_driver_sql("ANALYZE images, image_tags, regions")
            connection.commit()

    # ------------------------------------------------------------------------------------------------------------
    # projects

    def ensure_project(self, ref: ProjectRef) -> None:
        """Register a project on first use. A manifest already in S3 (from an earlier upload, a pipeline) is
        imported in the same transaction and becomes the store's to export (docs/storage.md)."""
        if ref.id in self._known:
            return
        with self.db.writing() as session:
            inserted = session.execute(dialect_insert(session)(tables.Project).values(
                id=ref.id, namespace=ref.namespace, name=ref.name, bucket=ref.bucket, prefix=ref.prefix,
                created=now(), labels_version=0, exported_version=0,
            ).on_conflict_do_nothing().returning(tables.Project.id)).first()
            adopted = self._adopt(session, ref) if inserted else 0
        self._added_images(adopted)
        self._known.add(ref.id)

    def _adopt(self, session: Session, ref: ProjectRef) -> int:
        """Import the manifest found in S3, if any; returns how many images it held."""
        layout = ref.layout
        etag = self.objects.etag(layout.bucket, layout.manifest_key)
        if etag is None:
            return 0
        records = dataset.loads(self.objects.get(layout.bucket, layout.manifest_key))
        names = {name for r in records for name in [*r.tags, *(g.tag for g in r.regions)]}
        moment = now()
        ids = {name: dataset.tag_id(ref.id, name) for name in names}
        for name, tag in ids.items():
            session.add(tables.Tag(project_id=ref.id, id=tag, name=name, description="", created=moment,
                                   type="Negative" if name == NEGATIVE_TAG else "Regular"))
        seen: set[str] = set()
        for record in records:
            if record.id in seen:
                continue
            seen.add(record.id)
            session.add(tables.Image(project_id=ref.id, id=record.id, sha256=record.sha256, size=record.size,
                                     content_type=record.content_type, width=0, height=0, created=record.created))
            session.flush()
            for name in dict.fromkeys(record.tags):
                session.add(tables.ImageTag(project_id=ref.id, image_id=record.id, tag_id=ids[name], created=moment))
            for region in record.regions:
                session.add(tables.Region(id=str(uuid.uuid4()), project_id=ref.id, image_id=record.id,
                                          tag_id=ids[region.tag], left=region.left, top=region.top,
                                          width=region.width, height=region.height, created=moment))
            for key, value in record.metadata.items():
                session.add(tables.ImageMetadata(project_id=ref.id, image_id=record.id, key=key, value=value))
        session.execute(update(tables.Project).where(tables.Project.id == ref.id).values(
            labels_version=1, exported_version=1, manifest_etag=etag))
        return len(seen)

    def delete_project(self, project_id: str) -> None:
        """Forget a project's labels; its bytes stay in S3, where snapshots may still name them."""
        with self.db.writing() as session:
            for table in (tables.ImageMetadata, tables.Region, tables.ImageTag, tables.StoredPrediction,
                          tables.Image, tables.Tag, tables.Project):
                column = table.project_id if table is not tables.Project else table.id
                session.execute(delete(table).where(column == project_id))
        self._known.discard(project_id)

    def project(self, project_id: str) -> tables.Project:
        with self.db.reading() as session:
            row = session.get(tables.Project, project_id)
        if row is None:
            raise NotFound(f"Project {project_id} not found.", "NotFoundProject")
        return row

    # ------------------------------------------------------------------------------------------------------------
    # tags

    def create_tag(self, project_id: str, name: str, description: str = "", type: str = "Regular") -> TagView:
        if type not in TAG_TYPES:
            raise StoreError(f"A tag's type is one of {', '.join(TAG_TYPES)}.", "BadRequestTagType")
        name = tag_name(name, type)
        check_description(description)
        with self.db.writing() as session:
            limit = self.limits.for_namespace(locked_namespace(session, project_id)).tags_per_project
            if session.scalar(select(tables.Tag.id).where(tables.Tag.project_id == project_id,
                                                          func.lower(tables.Tag.name) == name.lower())):
                raise StoreError(f"A tag named {name!r} exists already.", "BadRequestTagNameNotUnique")
            if limit is not None and session.scalar(select(func.count()).select_from(tables.Tag).where(
                    tables.Tag.project_id == project_id)) >= limit:
                raise StoreError(f"The project has {limit} tags, as many as its namespace's limit allows; delete "
                                 "one first.", "BadRequestExceedTagPerProjectLimit")
            if type != "Regular" and session.scalar(select(tables.Tag.id).where(
                    tables.Tag.project_id == project_id, tables.Tag.type == type)):
                code = "BadRequestMultipleNegativeTag" if type == "Negative" else "BadRequestMultipleGeneralProductTag"
                raise StoreError(f"The project has a {type} tag already.", code)
            # The id derived from the name, as every component names a tag it has never looked up; a random one
            # when a renamed tag holds it already (an id never changes with the name).
            tag_id = dataset.tag_id(project_id, name)
            if session.get(tables.Tag, (project_id, tag_id)) is not None:
                tag_id = str(uuid.uuid4())
            created = session.execute(dialect_insert(session)(tables.Tag).values(
                project_id=project_id, id=tag_id, name=name, description=description, type=type, created=now(),
            ).on_conflict_do_nothing().returning(tables.Tag.id)).first()
            if created is None:  # another writer created it since the check above
                raise StoreError(f"A tag named {name!r} exists already.", "BadRequestTagNameNotUnique")
            touch(session, project_id)
        return TagView(tag_id, name, description, type, 0)

    def tags(self, project_id: str) -> list[TagView]:
        with self.db.reading() as session:
            counts = self._tag_counts(session, project_id)
            rows = session.scalars(select(tables.Tag).where(tables.Tag.project_id == project_id)
                                   .order_by(tables.Tag.created, tables.Tag.name)).all()
        return [TagView(t.id, t.name, t.description, t.type, counts.get(t.id, 0)) for t in rows]

    def tag(self, project_id: str, tag_id: str) -> TagView:
        found = next((t for t in self.tags(project_id) if t.id == tag_id.lower()), None)
        if found is None:
            raise NotFound(f"Tag {tag_id} not found.", "NotFoundTag")
        return found

    def update_tag(self, project_id: str, tag_id: str, name: str | None, description: str | None,
                   type: str | None) -> TagView:
        current = self.tag(project_id, tag_id)
        if type is not None and type != current.type and type != "Regular":
            if any(t.type == type for t in self.tags(project_id)):
                raise StoreError(f"The project has a {type} tag already.", "BadRequestMultipleNegativeTag")
        if type is not None and type not in TAG_TYPES:
            raise StoreError(f"A tag's type is one of {', '.join(TAG_TYPES)}.", "BadRequestTagType")
        name = tag_name(name or current.name, type or current.type)
        if description is not None:
            check_description(description)
        with self.db.writing() as session:
            if name.lower() != current.name.lower() and session.scalar(select(tables.Tag.id).where(
                    tables.Tag.project_id == project_id, func.lower(tables.Tag.name) == name.lower())):
                raise StoreError(f"A tag named {name!r} exists already.", "BadRequestTagNameNotUnique")
            session.execute(update(tables.Tag).where(tables.Tag.project_id == project_id,
                                                     tables.Tag.id == current.id).values(
                name=name, description=current.description if description is None else description,
                type=type or current.type))
            touch(session, project_id)
        return self.tag(project_id, current.id)

    def delete_tag(self, project_id: str, tag_id: str) -> None:
        current = self.tag(project_id, tag_id)
        with self.db.writing() as session:
            for table in (tables.ImageTag, tables.Region, tables.Tag):
                column = table.tag_id if table is not tables.Tag else table.id
                session.execute(delete(table).where(table.project_id == project_id, column == current.id))
            touch(session, project_id)

    @staticmethod
    def _tag_counts(session: Session, project_id: str) -> dict[str, int]:
        """Images per tag, each image once per tag whether the tag is on the image or on its regions."""
        pairs = select(tables.ImageTag.tag_id, tables.ImageTag.image_id).where(
            tables.ImageTag.project_id == project_id).union(
            select(tables.Region.tag_id, tables.Region.image_id).where(tables.Region.project_id == project_id)
        ).subquery()
        return dict(session.execute(select(pairs.c.tag_id, func.count()).group_by(pairs.c.tag_id)).all())

    # ------------------------------------------------------------------------------------------------------------
    # images: writes

    def add_images(self, project: ProjectRef, batch: Sequence[NewImage]) -> list[Created]:
        """Store a batch: bytes first, then every accepted image's rows in one transaction. Each image gets its
        own status; a refused image changes nothing."""
        if len(batch) > MAX_BATCH:
            raise StoreError(f"A batch holds at most {MAX_BATCH} images; this one has {len(batch)}.",
                             "BadRequestImageBatch")
        if not batch:
            raise StoreError("The batch holds no image.", "BadRequestImageBatch")
        for item in batch:
            check_pairs(item.metadata)
        batch = [replace(item, regions=fit_boxes([(f"image {n} ({item.source or 'no name'})", region)
                                                  for region in item.regions]))
                 for n, item in enumerate(batch)]
        with self.db.reading() as session:  # ids and types only: counting images would grow with the project
            tags = {t.id: TagView(t.id, t.name, t.description, t.type, 0) for t in session.scalars(
                select(tables.Tag).where(tables.Tag.project_id == project.id))}
        results: list[Created] = [Created("OK", source=item.source) for item in batch]
        accepted: list[tuple[int, NewImage, str, Inspected, int]] = []
        for index, item in enumerate(batch):
            status = self._check_labels(item, tags)
            if status:
                results[index].status = status
                continue
            if item.stored is not None:
                known = Inspected(item.stored.content_type, 0, 0)
                accepted.append((index, item, item.stored.sha256, known, item.stored.size))
                continue
            if not item.data:
                results[index].status = "ErrorSource"
                continue
            try:
                inspected = inspect(item.data)
            except ImageProblem as problem:
                results[index].status = IMAGE_STATUSES[problem.kind]
                continue
            accepted.append((index, item, dataset.content_hash(item.data), inspected, len(item.data)))
        limit = self.limits.for_namespace(project.namespace).images_per_project
        if limit is not None and accepted:  # before the bytes: an image refused here leaves nothing in S3
            accepted = self._within_limit(project.id, accepted, results, limit)
        try:
            self._put_bytes(project, [(sha, item.data, found.content_type) for _, item, sha, found, _ in accepted
                                      if item.data is not None])
        except Exception:
            for index, *_ in accepted:
                results[index].status = "ErrorStorage"
            return results
        if not accepted:
            return results
        moment = now()
        with self.db.writing() as session:
            insert = dialect_insert(session)
            rows = {sha: dict(project_id=project.id, id=dataset.image_id(sha), sha256=sha, size=size, created=moment,
                              content_type=found.content_type, width=found.width, height=found.height)
                    for _, _, sha, found, size in accepted}
            new = set(session.scalars(insert(tables.Image).values(list(rows.values())).on_conflict_do_nothing()
                                      .returning(tables.Image.id)).all())
            over = set()
            if new and limit is not None:  # again, counted in turn: a concurrent upload may have taken the slots
                over = self._past_limit(session, project.id, [dataset.image_id(a[2]) for a in accepted], new, limit)
                new -= over
            for index, item, sha, _, _ in accepted:
                image_id = dataset.image_id(sha)
                if image_id in over:
                    results[index].status = "ErrorLimitExceed"
                    continue
                if image_id not in new or image_id in {r.image.id for r in results if r.image}:
                    results[index].status = "OKDuplicate"
                    results[index].image = ImageView(image_id, sha, "", moment, 0, 0)
                    continue
                results[index].image = ImageView(image_id, sha, "", moment, 0, 0)
                self._label(session, project.id, image_id, item, moment)
            if new:
                touch(session, project.id)
        self._added_images(len(new))
        views = {v.id: v for v in self.images_by_ids(project.id, [r.image.id for r in results if r.image])}
        for result in results:
            if result.image:
                result.image = views.get(result.image.id, result.image)
        return results

    def _within_limit(self, project_id: str, accepted: list, results: list[Created], limit: int) -> list:
        """The accepted images that fit the project's image limit, in batch order; each new image past it is
        answered ErrorLimitExceed (Custom Vision's status for an image over its project's quota). An image the
        project holds already stays accepted: it is OKDuplicate, and adds nothing."""
        ids = {dataset.image_id(sha) for _, _, sha, _, _ in accepted}
        with self.db.reading() as session:
            held = set(session.scalars(select(tables.Image.id).where(
                tables.Image.project_id == project_id, one_of(tables.Image.id, list(ids), session))).all())
            free = limit - session.scalar(select(func.count()).select_from(tables.Image).where(
                tables.Image.project_id == project_id))
        kept, taken = [], set()
        for entry in accepted:
            image_id = dataset.image_id(entry[2])
            if image_id not in held and image_id not in taken:
                if len(taken) >= free:
                    results[entry[0]].status = "ErrorLimitExceed"
                    continue
                taken.add(image_id)
            kept.append(entry)
        return kept

    @staticmethod
    def _past_limit(session: Session, project_id: str, batch: list[str], new: set[str], limit: int) -> set[str]:
        """Of the images this transaction has just inserted (`new`), those past the limit, counted with the
        project's row locked: the last of the batch, removed again before anything is linked to them."""
        locked_namespace(session, project_id)
        over = session.scalar(select(func.count()).select_from(tables.Image).where(
            tables.Image.project_id == project_id)) - limit
        if over <= 0:
            return set()
        inserted = [image_id for image_id in dict.fromkeys(batch) if image_id in new]
        refused = set(inserted[-over:])
        session.execute(delete(tables.Image).where(tables.Image.project_id == project_id,
                                                   tables.Image.id.in_(list(refused))))
        return refused

    @staticmethod
    def _check_labels(item: NewImage, tags: dict[str, TagView]) -> str | None:
        wanted = [*item.tag_ids, *(r.tag_id for r in item.regions)]
        if any(t not in tags for t in wanted):
            return "ErrorInvalidTag"
        if len(set(item.tag_ids)) > MAX_TAGS_PER_IMAGE:
            return "ErrorTagLimitExceed"
        if len(item.regions) > MAX_REGIONS_PER_IMAGE:
            return "ErrorRegionLimitExceed"
        types = {tags[t].type for t in item.tag_ids}
        if "Negative" in types and len(types) > 1:
            return "ErrorNegativeAndRegularTagOnSameImage"
        if len(item.metadata) > MAX_METADATA:
            return "ErrorLimitExceed"
        return None

    def _put_bytes(self, project: ProjectRef, items: list[tuple[str, bytes, str]]) -> None:
        layout = project.layout
        unique = {sha: (data, content_type) for sha, data, content_type in items}

        def put(sha: str) -> None:
            key = layout.image_key(sha)
            if not self.objects.exists(layout.bucket, key):
                self.objects.put(layout.bucket, key, *unique[sha])

        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            list(pool.map(put, unique))

    @staticmethod
    def _label(session: Session, project_id: str, image_id: str, item: NewImage, moment: datetime) -> None:
        for tag_id in dict.fromkeys(item.tag_ids):
            session.add(tables.ImageTag(project_id=project_id, image_id=image_id, tag_id=tag_id, created=moment))
        for region in item.regions:
            session.add(tables.Region(id=str(uuid.uuid4()), project_id=project_id, image_id=image_id,
                                      tag_id=region.tag_id, left=region.left, top=region.top, width=region.width,
                                      height=region.height, created=moment))
        for key, value in item.metadata.items():
            session.add(tables.ImageMetadata(project_id=project_id, image_id=image_id, key=key, value=value))

    def tag_images(self, project_id: str, pairs: Iterable[tuple[str, str]]) -> tuple[list, list]:
        """Add (image id, tag id) links; returns those created and those that existed."""
        pairs = list(dict.fromkeys((i.lower(), t.lower()) for i, t in pairs))
        self._require(project_id, images=[i for i, _ in pairs], tags=[t for _, t in pairs])
        with self.db.writing() as session:
            created = [tuple(row) for row in session.execute(dialect_insert(session)(tables.ImageTag).values(
                [dict(project_id=project_id, image_id=i, tag_id=t, created=now()) for i, t in pairs]
            ).on_conflict_do_nothing().returning(tables.ImageTag.image_id, tables.ImageTag.tag_id))]
            if created:
                touch(session, project_id)
        return created, [p for p in pairs if p not in set(created)]

    def untag_images(self, project_id: str, image_ids: list[str], tag_ids: list[str]) -> None:
        with self.db.writing() as session:
            session.execute(delete(tables.ImageTag).where(
                tables.ImageTag.project_id == project_id, tables.ImageTag.image_id.in_([i.lower() for i in image_ids]),
                tables.ImageTag.tag_id.in_([t.lower() for t in tag_ids])))
            touch(session, project_id)

    def delete_images(self, project_id: str, image_ids: list[str] | None) -> None:
        """Remove images (all of them when `image_ids` is None) from the labels. Their bytes stay: a snapshot may
        name them, and an orphan object is harmless."""
        with self.db.writing() as session:
            for table in (tables.ImageMetadata, tables.Region, tables.ImageTag, tables.Image):
                column = table.image_id if table is not tables.Image else table.id
                statement = delete(table).where(table.project_id == project_id)
                if image_ids is not None:
                    statement = statement.where(column.in_([i.lower() for i in image_ids]))
                session.execute(statement)
            touch(session, project_id)

    def update_metadata(self, project_id: str, image_ids: list[str], metadata: dict[str, str]) -> dict[str, str]:
        """Set metadata pairs on images, within the limits of an upload; returns a status per image id (an image
        that would carry more than MAX_METADATA pairs is ErrorLimitExceed, and left as it was)."""
        check_pairs(metadata)
        wanted = [i.lower() for i in image_ids]
        with self.db.writing() as session:
            found = set(session.scalars(select(tables.Image.id).where(
                tables.Image.project_id == project_id, tables.Image.id.in_(wanted))).all())
            keys: dict[str, set[str]] = defaultdict(set)
            for image_id, key in session.execute(select(tables.ImageMetadata.image_id, tables.ImageMetadata.key)
                                                 .where(tables.ImageMetadata.project_id == project_id,
                                                        tables.ImageMetadata.image_id.in_(list(found)))):
                keys[image_id].add(key)
            full = {i for i in found if len(keys[i] | set(metadata)) > MAX_METADATA}
            for image_id in found - full:
                for key, value in metadata.items():
                    session.merge(tables.ImageMetadata(project_id=project_id, image_id=image_id, key=key,
                                                       value=value))
            if found - full:
                touch(session, project_id)
        return {i: "OK" if i in found - full else "ErrorLimitExceed" if i in full else "ErrorImageNotFound"
                for i in wanted}

    def _require(self, project_id: str, images: list[str], tags: list[str]) -> None:
        with self.db.reading() as session:
            known_images = set(session.scalars(select(tables.Image.id).where(
                tables.Image.project_id == project_id, tables.Image.id.in_(set(images)))).all())
            known_tags = set(session.scalars(select(tables.Tag.id).where(
                tables.Tag.project_id == project_id, tables.Tag.id.in_(set(tags)))).all())
        missing = sorted(set(images) - known_images) + sorted(set(tags) - known_tags)
        if missing:
            raise StoreError(f"Unknown image or tag ids: {', '.join(missing[:10])}.", "BadRequestInvalidIds")

    # ------------------------------------------------------------------------------------------------------------
    # images: reads

    @staticmethod
    def _filtered(project_id: str, tagged: bool | None, tag_ids: Sequence[str] | None):
        statement = select(*IMAGE_COLUMNS).where(tables.Image.project_id == project_id)
        if tagged is None:
            return statement
        linked = select(literal(1)).where(tables.ImageTag.project_id == tables.Image.project_id,
                                          tables.ImageTag.image_id == tables.Image.id)
        boxed = select(literal(1)).where(tables.Region.project_id == tables.Image.project_id,
                                         tables.Region.image_id == tables.Image.id)
        if tag_ids:
            ids = [t.lower() for t in tag_ids]
            linked = linked.where(tables.ImageTag.tag_id.in_(ids))
            boxed = boxed.where(tables.Region.tag_id.in_(ids))
        # One EXISTS over both, not EXISTS OR EXISTS: PostgreSQL then probes the indexes image by image, in the
        # order of the page, instead of hashing every link of the project first.
        labelled = union_all(linked.correlate(tables.Image), boxed.correlate(tables.Image)).exists()
        return statement.where(labelled if tagged else ~labelled)

    def images(self, project_id: str, tagged: bool | None = None, tag_ids: Sequence[str] | None = None,
               newest: bool = True, skip: int = 0, take: int = 50) -> list[ImageView]:
        order = (tables.Image.created.desc(), tables.Image.id.desc()) if newest else (tables.Image.created,
                                                                                      tables.Image.id)
        page = self._filtered(project_id, tagged, tag_ids).order_by(*order).offset(skip).limit(take)
        with self.db.reading() as session:
            return self._views(session, project_id, session.execute(page).all())

    def count(self, project_id: str, tagged: bool | None = None, tag_ids: Sequence[str] | None = None) -> int:
        with self.db.reading() as session:
            return session.scalar(select(func.count()).select_from(
                self._filtered(project_id, tagged, tag_ids).subquery()))

    def images_by_ids(self, project_id: str, image_ids: Sequence[str]) -> list[ImageView]:
        with self.db.reading() as session:
            rows = session.execute(select(*IMAGE_COLUMNS).where(
                tables.Image.project_id == project_id, one_of(tables.Image.id, [i.lower() for i in image_ids],
                                                              session))).all()
            return self._views(session, project_id, rows)

    @staticmethod
    def _views(session: Session, project_id: str, rows: Sequence) -> list[ImageView]:
        ids = [r.id for r in rows]
        tags: dict[str, list] = defaultdict(list)
        for image_id, tag_id, name, created in session.execute(
                select(tables.ImageTag.image_id, tables.ImageTag.tag_id, tables.Tag.name, tables.ImageTag.created)
                .join(tables.Tag, (tables.Tag.project_id == tables.ImageTag.project_id)
                      & (tables.Tag.id == tables.ImageTag.tag_id))
                .where(tables.ImageTag.project_id == project_id, one_of(tables.ImageTag.image_id, ids, session))):
            tags[image_id].append((tag_id, name, created))
        regions: dict[str, list] = defaultdict(list)
        for region, name in session.execute(
                select(tables.Region, tables.Tag.name)
                .join(tables.Tag, (tables.Tag.project_id == tables.Region.project_id)
                      & (tables.Tag.id == tables.Region.tag_id))
                .where(tables.Region.project_id == project_id, one_of(tables.Region.image_id, ids, session))):
            regions[region.image_id].append((region, name))
        metadata: dict[str, dict] = defaultdict(dict)
        for entry in session.scalars(select(tables.ImageMetadata).where(
                tables.ImageMetadata.project_id == project_id, one_of(tables.ImageMetadata.image_id, ids, session))):
            metadata[entry.image_id][entry.key] = entry.value
        return [ImageView(r.id, r.sha256, r.content_type, r.created, r.width, r.height, tags[r.id], regions[r.id],
                          metadata[r.id]) for r in rows]
