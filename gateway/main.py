"""The gateway application: one place that builds the app, includes every router and wires the services to the
catalog source and resource writer it is given (the Kubernetes API's by default)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from kubevision.core.labelstore.database import open_database
from kubevision.core.labelstore.export import ManifestExporter
from kubevision.core.labelstore.predictions import PredictionIndex
from kubevision.core.labelstore.rates import windows_for
from kubevision.core.labelstore.store import LabelStore
from kubevision.core.labelstore.upload import local_database_url
from kubevision.core.labelstore.usage import UsageLedger
from kubevision.core.limits import LimitsSource, limits_source
from kubevision.core.settings import GatewaySettings, S3Settings
from kubevision.core.storage import ObjectStore
from kubevision.gateway import portal
from kubevision.gateway.backends.resources import KubernetesResources, ResourceWriter
from kubevision.gateway.backends.sources import CatalogSource, KubernetesSource
from kubevision.gateway.backends.trained import TrainedIterations
from kubevision.gateway.backends.triton import Classifier
from kubevision.gateway.http import errors
from kubevision.gateway.http.guard import Guard
from kubevision.gateway.http.observe import Observe
from kubevision.gateway.http.routers import files, manifests, prediction, training, usage
from kubevision.gateway.images import ImageFetcher
from kubevision.gateway.links import Signer
from kubevision.gateway.rate_limits import RateLimiter
from kubevision.gateway.services.exports import ExportService
from kubevision.gateway.services.images import LabellingService
from kubevision.gateway.services.iterations import IterationService
from kubevision.gateway.services.lookup import ProjectLookup
from kubevision.gateway.services.manifests import export_forever
from kubevision.gateway.services.performance import PerformanceService
from kubevision.gateway.services.predictions import PredictionRecorder, PredictionService
from kubevision.gateway.services.projects import ProjectService
from kubevision.gateway.services.signed_files import SignedFiles
from kubevision.gateway.services.stored_predictions import StoredPredictionService
from kubevision.gateway.services.tags import TagService
from kubevision.gateway.services.transfer import ProjectTransfer
from kubevision.gateway.services.usage import UsageMeter, UsageService

log = logging.getLogger(__name__)


def wire_training(app: FastAPI, settings: GatewaySettings, source: CatalogSource, resources: ResourceWriter,
                  labels: LabelStore, exporter: ManifestExporter, index: PredictionIndex, objects: ObjectStore,
                  fetcher: ImageFetcher, trained: TrainedIterations, usage: UsageService) -> None:
    """The training API's services, each given the collaborators it uses, on app.state for the routes. The label
    store keeps the limits of tags and images, the services those of projects and iterations."""
    lookup, links = ProjectLookup(source, labels), Signer(settings, source)
    state = app.state
    state.projects = ProjectService(settings, source, resources, lookup, labels, objects, labels.limits)
    state.tags = TagService(lookup, labels)
    state.iterations = IterationService(settings, source, resources, lookup, labels, exporter, labels.limits, usage)
    state.performance = PerformanceService(source, lookup, labels, trained, links)
    state.exports = ExportService(source, lookup, links, usage.meter)
    state.labelling = LabellingService(settings, source, lookup, labels, index, objects, fetcher, trained, links,
                                       usage.meter)
    state.stored_predictions = StoredPredictionService(lookup, index, links)
    state.transfer = ProjectTransfer(settings, state.projects, lookup, labels, exporter, objects, source)


def limits_of(settings: GatewaySettings) -> LimitsSource:
    """Each namespace's limits: from KUBEVISION_LIMITS_FILE, or local mode's limits.yaml, or Azure's S0 defaults."""
    return limits_source(Path(settings.data_dir) if settings.mode == "local" else None)


def create_app(settings: GatewaySettings | None = None, source: CatalogSource | None = None,
               s3: S3Settings | None = None, resources: ResourceWriter | None = None,
               limits: LimitsSource | None = None) -> FastAPI:
    """The app over the catalog `source`, the resource writer `resources` and the namespaces' `limits` its starter
    hands in (local mode's come from `kubevision gateway --local`); on a cluster, by default, the Kubernetes API's,
    the S3 that KUBEVISION_S3_* name and the limits file KUBEVISION_LIMITS_FILE names."""
    settings = settings or GatewaySettings()
    limits = limits or limits_of(settings)  # read now: a wrong file stops the start, naming it
    rates = RateLimiter(limits)
    if source is None:
        if settings.mode == "local":
            raise ValueError("A local gateway is started with local mode's catalog source (kubevision gateway "
                             "--local).")
        source = KubernetesSource(settings)
    if resources is None:
        resources = KubernetesResources(source)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = ObjectStore(s3 or S3Settings())
        database = await asyncio.to_thread(open_database, settings.database_url
                                           or local_database_url(Path(settings.data_dir)))
        labels, index = LabelStore(database, store, limits=limits), PredictionIndex(database, store)
        exporter = ManifestExporter(database, store)
        classifier = Classifier(settings, store.labels)
        recorder = PredictionRecorder(store, labels, index)
        ledger = UsageLedger(database)
        meter = UsageMeter(ledger)
        rates.use(windows_for(database))
        async with httpx.AsyncClient(timeout=settings.url_timeout_seconds, follow_redirects=False) as http:
            app.state.source, app.state.objects, app.state.limits = source, store, limits
            app.state.files = SignedFiles(source, store)
            fetcher = ImageFetcher(settings, http, app.state.files, source.platform_ports)
            trained = TrainedIterations(store, settings)
            app.state.predictions = PredictionService(settings, source, classifier, recorder, fetcher, trained,
                                                      meter)
            app.state.usage = UsageService(source, ledger, meter)
            wire_training(app, settings, source, resources, labels, exporter, index, store, fetcher, trained,
                          app.state.usage)
            await source.start()
            exports = asyncio.create_task(export_forever(exporter, settings, source), name="manifest exports")
            usage = asyncio.create_task(app.state.usage.keep_forever(settings.usage_write_seconds), name="usage")
            sweeps = asyncio.create_task(rates.sweep_forever(), name="rate window sweeps")
            try:
                yield
            finally:
                exports.cancel()
                usage.cancel()
                sweeps.cancel()
                await asyncio.gather(exports, usage, sweeps, return_exceptions=True)
                await source.stop()
                await recorder.drain()
                try:
                    await app.state.usage.keep()  # the last batch of counts
                except Exception as error:
                    log.warning("usage not written at shutdown: %s", error)
                await classifier.close()
                rates.windows.close()
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
    app.include_router(usage.router(training.ERRORS))
    app.include_router(manifests.router(training.ERRORS))
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

    app.add_middleware(Guard, source=source, settings=settings, rates=rates)  # inside Observe: paths lower-cased,
    # refusals counted
    app.add_middleware(Observe)
    return app
