"""The gateway application: one place that builds the app, includes every router and wires the services to the
mode (local or Kubernetes) that the settings name."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kubevision.core.settings import GatewaySettings, S3Settings
from kubevision.core.storage import ObjectStore
from kubevision.gateway import errors
from kubevision.gateway.inference import Classifier
from kubevision.gateway.observe import Observe
from kubevision.gateway.predictions import PredictionRecorder, PredictionService
from kubevision.gateway.routers import prediction
from kubevision.gateway.sources import CatalogSource, KubernetesSource, LocalSource

log = logging.getLogger(__name__)


def s3_settings(settings: GatewaySettings) -> S3Settings:
    """Local mode reads the platform's S3 from its state file; on a cluster, KUBEVISION_S3_* say where it is."""
    if settings.mode == "local":
        from kubevision.core.local.platform import LocalPlatform
        from kubevision.core.settings import LocalSettings

        return LocalPlatform(LocalSettings(data_dir=settings.data_dir)).s3_settings()
    return S3Settings()


def create_app(settings: GatewaySettings | None = None, source: CatalogSource | None = None,
               s3: S3Settings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    if source is None:
        source = LocalSource(settings) if settings.mode == "local" else KubernetesSource(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = ObjectStore(s3 or s3_settings(settings))
        classifier = Classifier(settings, store.labels)
        recorder = PredictionRecorder(store)
        async with httpx.AsyncClient(timeout=settings.url_timeout_seconds, follow_redirects=False) as http:
            app.state.source = source
            app.state.predictions = PredictionService(settings, source, classifier, recorder, http)
            await source.start()
            try:
                yield
            finally:
                await source.stop()
                await recorder.drain()
                await classifier.close()

    app = FastAPI(title="KubeVision Custom Vision API", version="3.1",
                  description="Azure Custom Vision's REST API, served from KubeVision's published iterations.",
                  lifespan=lifespan)
    errors.install(app)
    for version in prediction.VERSIONS:
        app.include_router(prediction.router(version))

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
