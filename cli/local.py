"""`kubevision local ...`: the platform's services (S3, MLflow, Triton, the controller, the gateway) on this
machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubevision.cli.common import DataDir, fail, platform, store

Port = Annotated[int | None, typer.Option(min=0, max=65535, show_default=False)]


def _print_status(statuses) -> bool:
    from kubevision.local.memory import megabytes

    all_healthy = True
    for status in statuses:
        all_healthy &= status.state == "healthy"
        color = typer.colors.GREEN if status.state == "healthy" else typer.colors.RED
        endpoints = "  ".join(f"{k}={v}" for k, v in status.endpoints.items())
        size = megabytes(status.memory_bytes) if status.memory_bytes is not None else ""
        typer.echo(f"{status.name:<10} " + typer.style(f"{status.state:<9}", fg=color) + f" {size:>9}  {endpoints}")
        if status.detail:
            typer.echo("           " + status.detail.replace("\n", "\n           "))
    return all_healthy


def up(
    data_dir: DataDir = None,
    s3_port: Port = None,
    mlflow_port: Port = None,
    triton_http_port: Port = None,
    triton_grpc_port: Port = None,
    triton_metrics_port: Port = None,
    gateway_port: Port = None,
) -> None:
    """Start S3 (SeaweedFS), MLflow, Triton, the local controller and the Custom Vision API gateway; print their
    endpoints. A port of 0 means any free port."""
    from kubevision.local.process import ServiceError

    local_platform = platform(
        data_dir, s3_port=s3_port, mlflow_port=mlflow_port, triton_http_port=triton_http_port,
        triton_grpc_port=triton_grpc_port, triton_metrics_port=triton_metrics_port, gateway_port=gateway_port,
    )
    typer.echo(f"starting the local platform in {local_platform.data_dir} ...")
    try:
        statuses = local_platform.up()
    except ServiceError as error:
        raise fail(str(error)) from error
    _print_status(statuses)
    s3 = local_platform.s3_settings()
    typer.echo(f"S3 credentials: access key {s3.access_key}, secret key in {local_platform.state_path}")


def demo(
    examples: Annotated[Path, typer.Option(help="The repository's examples folder.")] = Path("examples"),
    data_dir: DataDir = None,
) -> None:
    """Train and publish the trees project from the sample photos in examples/ (once), then print how to
    classify the test photo with curl and with the Custom Vision Python SDK."""
    from kubevision.local import demo as quickstart
    from kubevision.local.process import ServiceError

    try:
        result = quickstart.run(platform(data_dir), examples, progress=typer.echo)
    except (ServiceError, RuntimeError, OSError) as error:
        raise fail(str(error)) from error
    typer.echo(result.instructions())


def keys(
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="The namespace the keys open.")] = "default",
    data_dir: DataDir = None,
) -> None:
    """Print the Prediction-Key and Training-Key of a namespace (made on first use). A key sees only its own
    namespace's projects."""
    from kubevision.local import api_keys

    found = api_keys.ensure(platform(data_dir).data_dir, namespace)
    typer.echo(f"namespace:      {namespace}\nPrediction-Key: {found['predictionKey']}\n"
               f"Training-Key:   {found['trainingKey']}")


def down(data_dir: DataDir = None) -> None:
    """Stop every local service that `up` started, and any training still running (it fails)."""
    stopped = platform(data_dir).down()
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def controller(
    data_dir: DataDir = None,
    metrics_port: Annotated[int, typer.Option(min=0, max=65535, help="Prometheus metrics port (0: none).")] = 0,
) -> None:
    """Run the local controller in the foreground: it trains and publishes what `kubevision apply` stored.
    `kubevision local up` starts it in the background."""
    import logging

    from prometheus_client import start_http_server

    from kubevision.local.controller import LocalController

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    local_platform = platform(data_dir)
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1")
    LocalController(local_platform, store(data_dir)).run()


def status(data_dir: DataDir = None) -> None:
    """Show each local service: healthy, unhealthy, crashed (with its log's tail) or stopped, and the resident
    memory of a running one (its processes together). Exit 1 unless all are healthy."""
    if not _print_status(platform(data_dir).status()):
        raise typer.Exit(1)
