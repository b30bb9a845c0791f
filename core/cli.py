"""The `kubevision` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml

from kubevision.core import crd, validation
from kubevision.core.settings import LocalSettings

app = typer.Typer(
    help="KubeVision: train and serve image classifiers behind the Azure Custom Vision API, "
    "on Kubernetes or on one machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain output: errors are one "Error: ..." line that scripts and logs keep intact
)
local_app = typer.Typer(
    help="Run the platform's services (S3, MLflow, Triton) on this machine, without Kubernetes.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(local_app, name="local")


def main() -> None:
    """The console script. As with kubectl, a wrong command line exits 1, like every other error."""
    from typer.exceptions import TyperException

    from kubevision.core.local.process import ServiceError

    try:
        code = app(standalone_mode=False)
    except TyperException as error:  # typer's usage errors, each shown as typer shows it
        error.show()
        code = 1
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        code = 1
    except ServiceError as error:  # the local platform is not up, or a service of it failed: the message says
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)  # what to do
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


def fail(message: str) -> typer.Exit:
    """Print one clear line (plus detail lines if the message has them) and exit 1."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(1)


DataDir = Annotated[
    Path | None, typer.Option(help="Folder of local state and logs [default: $KUBEVISION_LOCAL_DATA_DIR or "
                                   "~/.local/share/kubevision].")
]
Kind = Annotated[str, typer.Argument(help="projects or iterations (or cvp, cvi)")]
Name = Annotated[str, typer.Argument(help="Resource name.")]


@app.command()
def crds(
    output_dir: Annotated[Path, typer.Option(help="Folder to write the CRD YAML files to.")] = Path("crds"),
    check: Annotated[bool, typer.Option(help="Write nothing; exit 1 if the folder differs from the models.")] = False,
) -> None:
    """Generate the CustomResourceDefinitions from the API models."""
    if check:
        stale = crd.drifted(output_dir)
        if stale:
            raise fail(f"{', '.join(stale)} in {output_dir} differ from the models; run: kubevision crds")
        typer.echo(f"{output_dir} is up to date")
        return
    for path in crd.write_all(output_dir):
        typer.echo(f"wrote {path}")


@app.command()
def validate(
    files: Annotated[list[Path], typer.Option("--filename", "-f", help="Manifest files (YAML, several documents).")],
) -> None:
    """Check manifests against the CRDs as the Kubernetes API server would (schema, defaults and CEL rules)."""
    invalid = 0
    for path in files:
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except (OSError, yaml.YAMLError) as error:
            raise fail(f"{path}: {error}") from error
        for document in documents:
            try:
                validation.admit(document)
                typer.echo(f"{path}: {document['kind']} {document['metadata']['name']} is valid")
            except validation.InvalidManifest as error:
                invalid += 1
                typer.secho(f"{path}: {error}", err=True, fg=typer.colors.RED)
    if invalid:
        raise typer.Exit(1)


@app.command()
def train(
    request: Annotated[Path, typer.Option(help="TrainingRequest JSON: the project and the iteration to train.")],
    local: Annotated[bool, typer.Option(help="Use the local platform's S3 and MLflow, not the environment's.")] = True,
    data_dir: DataDir = None,
) -> None:
    """Train one iteration, as a training Job does; exit 2 for a dataset that cannot train, 1 for a crash."""
    from kubevision.trainer.entrypoint import run  # the trainer extras are only needed here

    s3 = mlflow = None
    if local:
        platform = _platform(data_dir)
        s3, mlflow = platform.s3_settings(), platform.mlflow_settings()
    raise typer.Exit(int(run(request, s3, mlflow)))


def _read_manifests(files: list[Path]) -> list[tuple[Path, dict]]:
    documents = []
    for path in files:
        try:
            documents += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
        except (OSError, yaml.YAMLError) as error:
            raise fail(f"{path}: {error}") from error
    return documents


def _store(data_dir: Path | None):
    from kubevision.operator.local_store import LocalStore

    return LocalStore(_platform(data_dir).data_dir / "resources.db")


def _kind(word: str) -> str:
    from kubevision.operator.local_store import kind_of

    try:
        return kind_of(word)
    except ValueError as error:
        raise fail(str(error)) from error


@app.command()
def apply(
    files: Annotated[list[Path], typer.Option("--filename", "-f", help="Manifest files (YAML, several documents).")],
    data_dir: DataDir = None,
) -> None:
    """Create or update resources in local mode, as `kubectl apply` does on a cluster."""
    store = _store(data_dir)
    refused = 0
    for path, document in _read_manifests(files):
        try:
            body, action = store.apply(document)
        except validation.InvalidManifest as error:
            refused += 1
            typer.secho(f"{path}: {error}", err=True, fg=typer.colors.RED)
            continue
        typer.echo(f"{body['kind'].lower()}.kubevision.io/{body['metadata']['name']} {action}")
    if refused:
        raise typer.Exit(1)


@app.command()
def upload(
    project_file: Annotated[Path, typer.Option("--filename", "-f", help="The CustomVisionProject manifest.")],
    folder: Annotated[Path, typer.Argument(help="One subfolder per tag, holding that tag's images.")],
    data_dir: DataDir = None,
) -> None:
    """Add a folder of tagged images to a project through local mode's label store, then export the project's
    manifest. Each file is checked first (format, size, decodable); a refused file is listed with its reason and not
    stored, and the command then exits 1. An image stored already (same bytes) is skipped. The project is applied
    first if it is not yet."""
    from kubevision.core.labelstore.errors import StoreError
    from kubevision.core.labelstore.upload import tagged_files, upload_folders
    from kubevision.core.progress import progress
    from kubevision.core.storage import ObjectStore, StorageUnavailable, retrying

    documents = [d for _, d in _read_manifests([project_file]) if d.get("kind") == "CustomVisionProject"]
    if len(documents) != 1:
        raise fail(f"{project_file} holds {len(documents)} CustomVisionProjects; give the manifest of the one "
                   "project to add the images to")
    tag_folders = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    total = len(tagged_files(tag_folders))
    if not total:
        raise fail(f"{folder} holds no tag folders with files; put each tag's images in {folder}/<tag>/")
    platform = _platform(data_dir)
    s3 = platform.s3_settings()  # fails first when the platform is not up: nothing is applied then
    store = _store(data_dir)
    meta = documents[0].get("metadata") or {}
    body = store.get("CustomVisionProject", meta.get("namespace", "default"), meta.get("name", ""))
    if body is None:
        try:
            body, action = store.apply(documents[0])
        except validation.InvalidManifest as error:
            raise fail(f"{project_file}: {error}") from error
        typer.echo(f"customvisionproject.kubevision.io/{body['metadata']['name']} {action}")
    project = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
    objects = ObjectStore(s3)
    try:
        retrying(lambda: objects.ensure_bucket(body["spec"]["dataset"]["bucket"]), "the dataset's bucket")
    except StorageUnavailable as error:
        raise fail(f"project {project}: S3 is not answering ({error}); check it with: kubevision local status") \
            from error
    try:
        with progress("uploading", total, "files") as advance:
            report = upload_folders(platform.data_dir, objects, body, tag_folders, advance)
    except StoreError as error:
        raise fail(f"project {project}: {error.message}") from error
    location = f"s3://{body['spec']['dataset']['bucket']}/{body['spec']['dataset'].get('prefix', '')}"
    typer.echo(f"{report.added} added, {report.present} already present: project {project} ({location})")
    for refused in report.refused:
        typer.secho(f"refused {folder / refused.file}: {refused.reason}", err=True, fg=typer.colors.RED)
    if report.refused:
        raise fail(f"{len(report.refused)} of {total} files refused, not stored in project {project}; fix or "
                   "remove them and run the same upload again (images stored already are skipped)")


Output = Annotated[str | None, typer.Option(
    "--output", "-o", help="yaml, json, wide (also the columns of lower priority) or name.")]
Namespace = Annotated[str, typer.Option("--namespace", "-n", help="The namespace.")]
OUTPUTS = ("yaml", "json", "wide", "name")


def _require(store, kind: str, namespace: str, name: str) -> dict:
    """The stored object, or kubectl's not-found error with the command that lists what there is."""
    from kubevision.core.crd import resource_for_kind

    body = store.get(kind, namespace, name)
    if body is None:
        resource = resource_for_kind(kind)
        raise fail(f'{resource.name} "{name}" not found in namespace {namespace}; list what there is with: '
                   f"kubevision get {resource.plural} -n {namespace}")
    return body


@app.command()
def get(
    kind: Kind,
    name: Annotated[str | None, typer.Argument(help="Only this one.")] = None,
    namespace: Namespace = "default",
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")] = False,
    output: Output = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="After listing, print each change until Ctrl-C.")]
    = False,
    data_dir: DataDir = None,
) -> None:
    """List local resources as `kubectl get` shows them on a cluster, with its output formats."""
    import time

    from kubevision.core import output as shapes

    if output not in (None, *OUTPUTS):
        raise fail(f"unknown output format {output!r}; use one of: {', '.join(OUTPUTS)}")
    resource_kind, store = _kind(kind), _store(data_dir)
    scope = None if all_namespaces else namespace

    def current() -> list[dict]:
        if name is not None:
            return [b for b in [store.get(resource_kind, namespace, name)] if b is not None]
        return store.list(resource_kind, scope)

    objects = [_require(store, resource_kind, namespace, name)] if name is not None else current()
    render = shapes.Renderer(resource_kind, output, namespaces=all_namespaces)
    if objects:
        typer.echo(render.listing(objects, single=name is not None and not watch))
    else:
        typer.echo(f"No resources found{'' if all_namespaces else f' in {namespace} namespace'}.", err=True)
    seen = {shapes.key(b): b for b in objects}
    while watch:  # the local store has no watch API: look every second, print what changed
        time.sleep(1)
        now = {shapes.key(b): b for b in current()}
        changed = [b for k, b in now.items() if seen.get(k) != b] + [b for k, b in seen.items() if k not in now]
        if changed:
            typer.echo(render.changes(changed))
        seen = now


@app.command()
def describe(
    kind: Kind,
    name: Name,
    namespace: Namespace = "default",
    data_dir: DataDir = None,
) -> None:
    """Show a local resource in full: its spec, status, conditions with their reasons, metrics, MLflow run, training
    log and Events, as `kubectl describe` does."""
    from kubevision.core.describe import describe as render

    resource_kind, store = _kind(kind), _store(data_dir)
    body = _require(store, resource_kind, namespace, name)
    links = {}
    if resource_kind == "Iteration":
        links = _iteration_links(body, store, data_dir)
    typer.echo(render(body, store.events(body), links=links))


def _iteration_links(body: dict, store, data_dir: Path | None) -> dict[str, str]:
    """Where to read more about an Iteration's training: its MLflow run and its log."""
    from kubevision.core.local.process import ServiceError

    links = {}
    status = body.get("status") or {}
    project = store.get("CustomVisionProject", body["metadata"]["namespace"], body["spec"]["projectRef"]["name"])
    experiment = ((project or {}).get("status") or {}).get("experimentId")
    if status.get("mlflowRunId") and experiment:
        try:
            uri = _platform(data_dir).mlflow_settings().tracking_uri
            links["MLflow Run"] = f"{uri}/#/experiments/{experiment}/runs/{status['mlflowRunId']}"
        except (ServiceError, KeyError):  # no platform state, or MLflow not in it
            links["MLflow Run"] = f"{status['mlflowRunId']} (start the platform for a link: kubevision local up)"
    log = _training_log(body, store, data_dir)
    links["Training Log"] = f"{log}" if log.is_file() else f"{log} (none yet)"
    return links


def _training_log(body: dict, store, data_dir: Path | None) -> Path:
    from kubevision.core.api import Iteration
    from kubevision.core.training import iteration_id
    from kubevision.operator.local_controller import LocalController

    trainings = LocalController(_platform(data_dir), store).trainings
    return trainings.log(iteration_id(Iteration.model_validate(body)))


@app.command()
def logs(
    iteration: Annotated[str, typer.Argument(help="The Iteration whose training log to print.")],
    namespace: Namespace = "default",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the training ends.")] = False,
    cluster: Annotated[bool, typer.Option(help="Print the kubectl command for an Iteration on a cluster.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Print the trainer's log of an Iteration (local mode: its file; with --cluster, the `kubectl logs` line)."""
    import time

    from kubevision.core.labels import ITERATION_LABEL
    from kubevision.core.local import process

    if cluster:
        typer.echo(f"kubectl logs -n {namespace} -l {ITERATION_LABEL}={iteration} --tail=-1"
                   + (" --follow" if follow else ""))
        return
    store = _store(data_dir)
    body = _require(store, "Iteration", namespace, iteration)
    log = _training_log(body, store, data_dir)
    if not log.is_file():
        phase = (body.get("status") or {}).get("phase") or "not seen by the controller yet"
        raise fail(f'iteration "{iteration}" has not started training (phase: {phase}); see why with: '
                   f"kubevision describe iteration {iteration} -n {namespace}")
    pid_file = log.parent / "pid"
    with open(log, errors="replace") as stream:
        while True:
            # Asked before reading, so that the last read has everything the trainer wrote before it ended.
            running = follow and pid_file.is_file() and process.is_running(*process.recorded(log.parent))
            typer.echo(stream.read(), nl=False)
            if not running:
                return
            time.sleep(0.5)


@app.command()
def delete(
    kind: Kind,
    name: Name,
    namespace: Namespace = "default",
    data_dir: DataDir = None,
) -> None:
    """Delete a local resource; the local controller unloads its model and stops its training first."""
    resource_kind, store = _kind(kind), _store(data_dir)
    _require(store, resource_kind, namespace, name)
    store.mark_deleted(resource_kind, namespace, name)
    typer.echo(f"{resource_kind.lower()}.kubevision.io/{name} deleted")


@app.command("operator")
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


@app.command("gateway")
def run_gateway(
    local: Annotated[bool, typer.Option("--local", help="Serve local mode's resources and keys (from --data-dir) "
                                                        "instead of a cluster's.")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="Local mode's data folder.")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port to listen on.")] = None,
) -> None:
    """Serve the Custom Vision API (prediction) in front of Triton. Settings come from KUBEVISION_GATEWAY_* and,
    on a cluster, KUBEVISION_S3_* (see GatewaySettings in core/settings.py)."""
    import logging

    import uvicorn

    from kubevision.core.settings import GatewaySettings
    from kubevision.gateway.main import create_app

    overrides = {k: v for k, v in {"data_dir": data_dir, "host": host, "port": port}.items() if v is not None}
    if local:  # one machine: images served by the user's own loopback servers are fair game
        overrides.update(mode="local", allow_loopback_urls=True)
    settings = GatewaySettings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.mode == "local":  # local mode's store, keys and S3 instead of a cluster's
        from kubevision.local.gateway import LocalResources, LocalSource, s3_settings, store_of

        app = create_app(settings, LocalSource(settings), s3_settings(settings), LocalResources(store_of(settings)))
    else:
        app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, access_log=False,
                log_config=None, timeout_graceful_shutdown=10)


Port = Annotated[int | None, typer.Option(min=0, max=65535, show_default=False)]


def _platform(data_dir: Path | None, **ports: int | None):
    from kubevision.core.local.platform import LocalPlatform  # the local extras are only needed here

    overrides = {k: v for k, v in {"data_dir": data_dir, **ports}.items() if v is not None}
    return LocalPlatform(LocalSettings(**overrides))


def _print_status(statuses) -> bool:
    from kubevision.core.local.memory import megabytes

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


@local_app.command()
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
    from kubevision.core.local.process import ServiceError

    platform = _platform(
        data_dir, s3_port=s3_port, mlflow_port=mlflow_port, triton_http_port=triton_http_port,
        triton_grpc_port=triton_grpc_port, triton_metrics_port=triton_metrics_port, gateway_port=gateway_port,
    )
    typer.echo(f"starting the local platform in {platform.data_dir} ...")
    try:
        statuses = platform.up()
    except ServiceError as error:
        raise fail(str(error)) from error
    _print_status(statuses)
    s3 = platform.s3_settings()
    typer.echo(f"S3 credentials: access key {s3.access_key}, secret key in {platform.state_path}")


@local_app.command()
def demo(
    examples: Annotated[Path, typer.Option(help="The repository's examples folder.")] = Path("examples"),
    data_dir: DataDir = None,
) -> None:
    """Train and publish the trees project from the sample photos in examples/ (once), then print how to
    classify the test photo with curl and with the Custom Vision Python SDK."""
    from kubevision.core.local import demo as quickstart
    from kubevision.core.local.process import ServiceError

    try:
        result = quickstart.run(_platform(data_dir), examples, progress=typer.echo)
    except (ServiceError, RuntimeError, OSError) as error:
        raise fail(str(error)) from error
    typer.echo(result.instructions())


@local_app.command()
def keys(
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="The namespace the keys open.")] = "default",
    data_dir: DataDir = None,
) -> None:
    """Print the Prediction-Key and Training-Key of a namespace (made on first use). A key sees only its own
    namespace's projects."""
    from kubevision.core.local import api_keys

    platform = _platform(data_dir)
    found = api_keys.ensure(platform.data_dir, namespace)
    typer.echo(f"namespace:      {namespace}\nPrediction-Key: {found['predictionKey']}\n"
               f"Training-Key:   {found['trainingKey']}")


@local_app.command()
def down(data_dir: DataDir = None) -> None:
    """Stop every local service that `up` started, and any training still running (it fails)."""
    stopped = _platform(data_dir).down()
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@local_app.command()
def controller(
    data_dir: DataDir = None,
    metrics_port: Annotated[int, typer.Option(min=0, max=65535, help="Prometheus metrics port (0: none).")] = 0,
) -> None:
    """Run the local controller in the foreground: it trains and publishes what `kubevision apply` stored.
    `kubevision local up` starts it in the background."""
    import logging

    from prometheus_client import start_http_server

    from kubevision.operator.local_controller import LocalController

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    platform = _platform(data_dir)
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1")
    LocalController(platform, _store(data_dir)).run()


@local_app.command()
def status(data_dir: DataDir = None) -> None:
    """Show each local service: healthy, unhealthy, crashed (with its log's tail) or stopped, and the resident
    memory of a running one (its processes together). Exit 1 unless all are healthy."""
    if not _print_status(_platform(data_dir).status()):
        raise typer.Exit(1)
