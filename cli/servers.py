"""`kubevision operator` and `kubevision gateway`: the cluster's long-running servers, started in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubevision.cli.common import fail


def run_operator(
    config: Annotated[Path | None, typer.Option(help="YAML file of operator settings (fields of OperatorSettings); "
                                                     "KUBEVISION_OPERATOR_* variables override it.")] = None,
) -> None:
    """Run the Kubernetes operator (in its pod, or against your kubeconfig's cluster). Settings come from
    --config and KUBEVISION_OPERATOR_*, KUBEVISION_S3_* in the environment (docs/operator.md)."""
    from pydantic import ValidationError

    from kubevision.core.settings import OperatorSettings
    from kubevision.operator.main import run

    try:
        settings = OperatorSettings.from_file(config)
    except ValidationError as error:
        raise fail("operator settings: " + "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())) from error
    except (OSError, ValueError) as error:
        raise fail(f"operator settings: {error}") from error
    run(settings)


def run_gateway(
    local: Annotated[bool, typer.Option("--local", help="Serve local mode's resources and keys (from --data-dir) "
                                                        "instead of a cluster's.")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="Local mode's data folder.")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port to listen on.")] = None,
    metrics_port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port of the Prometheus metrics, "
                                                                            "apart from the API's (0: none).")] = None,
) -> None:
    """Serve the Custom Vision API (prediction) in front of Triton. Settings come from KUBEVISION_GATEWAY_* and,
    on a cluster, KUBEVISION_S3_* (see GatewaySettings in core/settings.py)."""
    import logging

    import uvicorn

    from kubevision.core.settings import GatewaySettings
    from kubevision.gateway import metrics
    from kubevision.gateway.http.server import server_config
    from kubevision.gateway.main import create_app

    overrides = {k: v for k, v in {"data_dir": data_dir, "host": host, "port": port,
                                   "metrics_port": metrics_port}.items() if v is not None}
    if local:  # one machine: images served by the user's own loopback servers are fair game
        overrides.update(mode="local", allow_loopback_urls=True)
    settings = GatewaySettings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.mode == "local":  # local mode's store, keys and S3 instead of a cluster's
        from kubevision.core.limits import local_limits
        from kubevision.local.gateway import LocalResources, LocalSource, s3_settings, store_of

        app = create_app(settings, LocalSource(settings), s3_settings(settings), LocalResources(store_of(settings)),
                         local_limits(Path(settings.data_dir)))
    else:
        app = create_app(settings)
    if settings.metrics_port:
        metrics.serve(settings.host, settings.metrics_port)
    server = uvicorn.Server(server_config(app, settings))  # uvicorn.run's one worker, with the gateway's timeouts
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        raise SystemExit(3)  # uvicorn's exit status for an app that failed to start
