"""Custom Vision's project export and import (v3.3): `export_project` freezes a project's settings, tags and labelled
images in a package beside its dataset and answers a token; `import_project` creates a new project from the package a
token names. Iterations are not carried: the new project trains its own.

A token names the exported project (its uid), the package, the namespace that exported it, the one namespace that may
import it (the exporting one, unless the export named another with `importNamespace`) and when it expires
(`import_token_seconds`), signed (HMAC-SHA256) with the exporting namespace's Training-Key: it cannot be forged,
widened or pointed at another package, and rotating the key ends every token it signed. The package is read from the
project's dataset as the catalog has it now, so a token of a deleted project, or of one recreated under its name,
imports nothing. Image bytes are read from the exporting project's dataset and stored again, by content, in the new
project's, through the label store's ordinary upload."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import time
import uuid

from pydantic import BaseModel, ValidationError

from kubevision.core import dataset
from kubevision.core.labelstore.export import ManifestExporter
from kubevision.core.labelstore.store import MAX_BATCH, LabelStore, NewImage, RegionIn
from kubevision.core.settings import GatewaySettings
from kubevision.core.storage import STORAGE_FAULTS, DatasetLayout, ObjectStore
from kubevision.core.training import NEGATIVE_TAG
from kubevision.gateway import wire
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.errors import CustomVisionError
from kubevision.gateway.services.lookup import ProjectLookup
from kubevision.gateway.services.projects import ProjectService, project_wire

ESTIMATED_MS_PER_IMAGE = 50  # what an import takes per image here (read, inspect, store), for the estimate


class PackageTag(BaseModel):
    name: str
    description: str
    type: str


class Package(BaseModel):
    """What an export freezes; images as manifest records (core/dataset.ImageRecord), by tag name."""

    name: str
    description: str
    domain_id: str
    classification_type: str | None
    tags: list[PackageTag]
    images: list[dataset.ImageRecord]


class Token(BaseModel):
    namespace: str  # exported from; its Training-Key signs the token
    audience: str  # the namespace that may import it
    project: str  # the exported project's uid
    package: str  # the export id (DatasetLayout.export_key)
    expires: int  # seconds since the epoch


NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a Kubernetes namespace name


def _signature(key: str, payload: bytes) -> str:
    return hmac.new(key.encode(), payload, hashlib.sha256).hexdigest()


class ProjectTransfer:
    def __init__(self, settings: GatewaySettings, projects: ProjectService, lookup: ProjectLookup, labels: LabelStore,
                 exporter: ManifestExporter, objects: ObjectStore, source: CatalogSource):
        self.settings = settings  # import_token_seconds
        self.projects = projects  # an import creates its project as the training API does
        self.lookup = lookup
        self.labels = labels
        self.exporter = exporter
        self.objects = objects
        self.source = source

    async def export_project(self, namespace: str, project_id: str,
                             import_namespace: str | None = None) -> wire.ProjectExport:
        """`import_namespace`: the namespace that may import the token (KubeVision's own parameter); the exporting
        one when None."""
        audience = import_namespace or namespace
        if not NAMESPACE.match(audience):
            raise CustomVisionError(f"importNamespace {audience!r} is not a namespace name.", "BadRequest")
        ref = await self.lookup.labelled(namespace, project_id)
        await asyncio.to_thread(self.exporter.export, ref.id)  # the package is the current labels
        shown = project_wire(self.lookup.project(namespace, project_id))
        tags = await asyncio.to_thread(self.labels.tags, ref.id)
        records = await asyncio.to_thread(lambda: dataset.loads(self.objects.get(
            ref.bucket, ref.layout.manifest_key)))
        package = Package(name=shown.name, description=shown.description, domain_id=shown.settings.domain_id,
                          classification_type=shown.settings.classification_type,
                          tags=[PackageTag(name=t.name, description=t.description, type=t.type) for t in tags],
                          images=records)
        export_id = str(uuid.uuid4())
        await asyncio.to_thread(self.objects.put, ref.bucket, ref.layout.export_key(export_id),
                                package.model_dump_json().encode(), "application/json")
        payload = Token(namespace=namespace, audience=audience, project=ref.id, package=export_id,
                        expires=int(time.time()) + self.settings.import_token_seconds).model_dump_json()
        token = (base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=") + "."
                 + _signature(self.source.catalog.keys[namespace].training, payload.encode()))
        return wire.ProjectExport(iteration_count=0, image_count=len(records), tag_count=len(tags),
                                  region_count=sum(len(r.regions) for r in records),
                                  estimated_import_time_in_ms=len(records) * ESTIMATED_MS_PER_IMAGE, token=token)

    def _token(self, namespace: str, token: str) -> tuple[Token, DatasetLayout]:
        """The token's claims and the exported project's dataset, or BadRequestInvalidImportToken saying why."""
        def invalid(why: str) -> CustomVisionError:
            return CustomVisionError(f"The import token {why}.", "BadRequestInvalidImportToken")

        encoded, _, signature = token.strip().partition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            found = Token.model_validate_json(payload)
        except (ValueError, ValidationError) as error:
            raise invalid("is not valid") from error
        keys = self.source.catalog.keys.get(found.namespace)
        if keys is None or not keys.training or not hmac.compare_digest(
                _signature(keys.training, payload), signature):
            raise invalid("is not valid")
        if found.expires < time.time():
            raise invalid(f"expired {int(time.time()) - found.expires} s ago; export the project again")
        if found.audience != namespace:
            raise invalid(f"may be used in namespace {found.audience!r} only; export the project with "
                          f"importNamespace={namespace} to import it here")
        project = self.source.catalog.projects.get(found.project)
        if project is None or project.namespace != found.namespace:
            raise invalid("names a project that was deleted")
        return found, DatasetLayout(project.dataset_bucket, project.dataset_prefix)

    async def import_project(self, namespace: str, token: str, name: str | None) -> wire.Project:
        source, layout = self._token(namespace, token)
        try:
            package = Package.model_validate_json(
                await asyncio.to_thread(self.objects.get, layout.bucket, layout.export_key(source.package)))
        except STORAGE_FAULTS as error:
            raise CustomVisionError("The exported project cannot be read; export it again.",
                                    "BadRequestInvalidImportToken") from error
        self._check_limits(namespace, package)
        created = await self.projects.create_project(namespace, name or package.name, package.description,
                                                    package.domain_id, package.classification_type)
        ref = await self.lookup.labelled(namespace, created.id)
        tag_ids: dict[str, str] = {}
        for tag in package.tags:
            made = await asyncio.to_thread(self.labels.create_tag, ref.id, tag.name, tag.description, tag.type)
            tag_ids[NEGATIVE_TAG if tag.type == "Negative" else tag.name] = made.id  # as the manifest names it
        for first in range(0, len(package.images), MAX_BATCH):
            batch = await asyncio.gather(*(asyncio.to_thread(self._image, layout, record, tag_ids)
                                           for record in package.images[first:first + MAX_BATCH]))
            results = await asyncio.to_thread(self.labels.add_images, ref, batch)
            refused = [r.status for r in results if r.status not in ("OK", "OKDuplicate")]
            if refused:
                raise CustomVisionError(
                    f"The import stopped: images refused ({', '.join(sorted(set(refused)))}); project {created.id} "
                    "holds what came before.", "ErrorProjectImportRequestFailed")
        return created

    def _check_limits(self, namespace: str, package: Package) -> None:
        """A package the namespace's limits cannot hold is refused before its project is made: an import never
        stops halfway for a limit."""
        limits = self.projects.limits.for_namespace(namespace)
        self.projects.check_project_limit(namespace)  # checked again, in turn, when the project is made
        if limits.tags_per_project is not None and len(package.tags) > limits.tags_per_project:
            raise CustomVisionError(f"The exported project has {len(package.tags)} tags; a project of this namespace "
                                    f"may have {limits.tags_per_project}.", "BadRequestExceedTagPerProjectLimit")
        if limits.images_per_project is not None and len(package.images) > limits.images_per_project:
            raise CustomVisionError(f"The exported project has {len(package.images)} images; a project of this "
                                    f"namespace may have {limits.images_per_project}.",
                                    "BadRequestImageExceededCount")

    def _image(self, layout: DatasetLayout, record: dataset.ImageRecord, tag_ids: dict[str, str]) -> NewImage:
        return NewImage(data=self.objects.get(layout.bucket, layout.image_key(record.sha256)),
                        tag_ids=[tag_ids[t] for t in record.tags], metadata=dict(record.metadata),
                        regions=[RegionIn(tag_ids[r.tag], r.left, r.top, r.width, r.height) for r in record.regions])
