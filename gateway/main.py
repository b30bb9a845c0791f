"""The gateway application: one place that builds the app, includes every router and wires the services to the
mode (local or Kubernetes) that the settings name."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kubevision.core.labelstore.database import open_database
from kubevision.core.labelstore.export import ManifestExporter
from kubevision.core.labelstore.predictions import PredictionIndex
from kubevision.core.labelstore.store import LabelStore
from kubevision.core.labelstore.upload import local_database_url
from kubevision.core.settings import GatewaySettings, S3Settings
from kubevision.core.storage import ObjectStore
from kubevision.gateway import errors, portal
from kubevision.gateway.backends.triton import Classifier
from kubevision.gateway.services.images import LabellingService
from kubevision.gateway.services.manifests import export_forever
from kubevision.gateway.http.observe import Observe
from kubevision.gateway.services.predictions import PredictionRecorder, PredictionService
from kubevision.gateway.backends.resources import KubernetesResources, LocalResources, ResourceWriter
from kubevision.gateway.http.routers import files, prediction, training
from kubevision.gateway.backends.sources import CatalogSource, KubernetesSource, LocalSource
from kubevision.gateway.backends.trained import TrainedIterations
from kubevision.gateway.services.projects import Services, TrainingService
from kubevision.gateway.services.transfer import ProjectTransfer

log = logging.getLogger(__name__)


def s3_settings(settings: GatewaySettings) -> S3Settings:
    """Local mode reads the platform's S3 from its state file; on a cluster, KUBEVISION_S3_* say where it is."""
    if settings.mode == "local":
        from kubevision.core.local.platform import LocalPlatform
        from kubevision.core.settings import LocalSettings

        return LocalPlatform(LocalSettings(data_dir=settings.data_dir)).s3_settings()
    return S3Settings()


def resources(settings: GatewaySettings, source: CatalogSource) -> ResourceWriter:
    """Where the training API creates projects and iterations: the local store, or the Kubernetes API."""
    if settings.mode == "local":
        from kubevision.operator.local_store import LocalStore

        return LocalResources(LocalStore(Path(settings.data_dir) / "resources.db"))
    return KubernetesResources(source)


def create_app(settings: GatewaySettings | None = None, source: CatalogSource | None = None,
               s3: S3Settings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    if source is None:
        source = LocalSource(settings) if settings.mode == "local" else KubernetesSource(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = ObjectStore(s3 or s3_settings(settings))
        database = await asyncio.to_thread(open_database, settings.database_url
                                           or local_database_url(Path(settings.data_dir)))
        labels, index = LabelStore(database, store), PredictionIndex(database, store)
        exporter = ManifestExporter(database, store)
        classifier = Classifier(settings, store.labels)
        recorder = PredictionRecorder(store, labels, index)
        async with httpx.AsyncClient(timeout=settings.url_timeout_seconds, follow_redirects=False) as http:
            app.state.source = source
            trained = TrainedIterations(store, settings)
            app.state.predictions = PredictionService(settings, source, classifier, recorder, http, trained)
            services = Services(settings, source, resources(settings, source), labels, exporter, index, store, http,
                                trained)
            app.state.training, app.state.labelling = TrainingService(services), LabellingService(services)
            app.state.transfer = ProjectTransfer(app.state.training)
            await source.start()
            exports = asyncio.create_task(export_forever(exporter, settings), name="manifest exports")
            try:
                yield
            finally:
                exports.cancel()
                await asyncio.gather(exports, return_exceptions=True)
                await source.stop()
                await recorder.drain()
                await classifier.close()
                database.dispose()

    app = FastAPI(title="KubeVision Custom Vision API", version="3.4",
                  description="Azure Custom Vision's REST API: training on KubeVision's label store and iterations, "
                              "prediction from its published iterations.",
                  lifespan=lifespan)
    errors.install(app)
    for version in prediction.VERSIONS:
        app.include_router(prediction.router(version))
    for version in training.VERSIONS:
        app.include_router(training.router(version))
    app.include_router(files.router())
    portal.mount(app)

    @app.get("/healthz", tags=["Health"], include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers. Never calls Triton."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["Health"], include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: the catalog of projects, published iterations and keys has been loaded."""
        ready = request.app.state.source.ready
        return JSONResponse({"status": "ready" if ready else "loading"}, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(Observe)
    return app
