"""An iteration's ONNX export, free of HTTP: the exported model already in S3, behind a signed download link."""

from __future__ import annotations

from kubevision.core.api import Iteration
from kubevision.core.storage import model_onnx_key
from kubevision.gateway import wire
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.catalog import Project
from kubevision.gateway.errors import CustomVisionError, NotFound
from kubevision.gateway.links import Signer
from kubevision.gateway.services.iterations import trained_iteration, training_status
from kubevision.gateway.services.lookup import ProjectLookup
from kubevision.gateway.services.usage import UsageMeter


class ExportService:
    def __init__(self, source: CatalogSource, lookup: ProjectLookup, links: Signer, meter: UsageMeter | None = None):
        self.source = source
        self.meter = meter or UsageMeter()
        self.lookup = lookup
        self.links = links

    def _export(self, namespace: str, project: Project, iteration: Iteration, base_url: str,
                flavor: str | None) -> wire.Export:
        path = f"{project.uid}/models/{iteration.metadata.uid}.onnx"
        return wire.Export(platform="ONNX", status="Done", download_uri=self.links.link(namespace, base_url, path),
                           flavor=flavor, newer_version_available=False)

    def exports(self, namespace: str, project_id: str, iteration_id: str, base_url: str) -> list[wire.Export]:
        project = self.lookup.project(namespace, project_id)
        iteration = self.source.catalog.iteration(project, iteration_id)
        if training_status(iteration, "") != "Completed":
            return []
        return [self._export(namespace, project, iteration, base_url, None)]

    def export(self, namespace: str, project_id: str, iteration_id: str, platform: str, flavor: str | None,
               base_url: str) -> wire.Export:
        project = self.lookup.project(namespace, project_id)
        iteration = trained_iteration(self.source.catalog, project, iteration_id)
        if platform != "ONNX":
            raise CustomVisionError(f"Export to {platform} is not available: models are exported as ONNX.",
                                    "BadRequestProjectUnsupportedExportPlatform")
        if flavor not in (None, "ONNX10", "ONNX12"):
            raise CustomVisionError(f"ONNX exports have no flavor {flavor!r}.", "BadRequestNotSupported")
        export = self._export(namespace, project, iteration, base_url, flavor)
        self.meter.exported(namespace, project.name)
        return export

    def model_object(self, project: Project, iteration_uid: str) -> tuple[str, str]:
        """(bucket, key) of an iteration's ONNX model."""
        uri = self.source.catalog.iteration(project, iteration_uid).status.model_uri
        if not uri:
            raise NotFound("The iteration has no model.", "NotFoundIteration")
        return model_onnx_key(uri)

