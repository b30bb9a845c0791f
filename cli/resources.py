"""`kubevision apply`, `get`, `describe`, `logs` and `delete`: local mode's resources, as kubectl shows a
cluster's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubevision.cli.common import DataDir, Manifests, fail, platform, read_manifests, store

Kind = Annotated[str, typer.Argument(help="projects or iterations (or cvp, cvi)")]
Name = Annotated[str, typer.Argument(help="Resource name.")]
Output = Annotated[str | None, typer.Option(
    "--output", "-o", help="yaml, json, wide (also the columns of lower priority) or name.")]
Namespace = Annotated[str, typer.Option("--namespace", "-n", help="The namespace.")]
OUTPUTS = ("yaml", "json", "wide", "name")


def _kind(word: str) -> str:
    from kubevision.local.store import kind_of

    try:
        return kind_of(word)
    except ValueError as error:
        raise fail(str(error)) from error


def _require(resources, kind: str, namespace: str, name: str) -> dict:
    """The stored object, or kubectl's not-found error with the command that lists what there is."""
    from kubevision.core.crd import resource_for_kind

    body = resources.get(kind, namespace, name)
    if body is None:
        resource = resource_for_kind(kind)
        raise fail(f'{resource.name} "{name}" not found in namespace {namespace}; list what there is with: '
                   f"kubevision get {resource.plural} -n {namespace}")
    return body


def apply(files: Manifests, data_dir: DataDir = None) -> None:
    """Create or update resources in local mode, as `kubectl apply` does on a cluster."""
    from kubevision.core import validation

    resources = store(data_dir)
    refused = 0
    for path, document in read_manifests(files):
        try:
            body, action = resources.apply(document)
        except validation.InvalidManifest as error:
            refused += 1
            typer.secho(f"{path}: {error}", err=True, fg=typer.colors.RED)
            continue
        typer.echo(f"{body['kind'].lower()}.kubevision.io/{body['metadata']['name']} {action}")
    if refused:
        raise typer.Exit(1)


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

    from kubevision.cli import output as shapes

    if output not in (None, *OUTPUTS):
        raise fail(f"unknown output format {output!r}; use one of: {', '.join(OUTPUTS)}")
    resource_kind, resources = _kind(kind), store(data_dir)
    scope = None if all_namespaces else namespace

    def current() -> list[dict]:
        if name is not None:
            return [b for b in [resources.get(resource_kind, namespace, name)] if b is not None]
        return resources.list(resource_kind, scope)

    objects = [_require(resources, resource_kind, namespace, name)] if name is not None else current()
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


def describe(kind: Kind, name: Name, namespace: Namespace = "default", data_dir: DataDir = None) -> None:
    """Show a local resource in full: its spec, status, conditions with their reasons, metrics, MLflow run, training
    log and Events, as `kubectl describe` does."""
    from kubevision.cli.describe import describe as render

    resource_kind, resources = _kind(kind), store(data_dir)
    body = _require(resources, resource_kind, namespace, name)
    links = {}
    if resource_kind == "Iteration":
        links = _iteration_links(body, resources, data_dir)
    typer.echo(render(body, resources.events(body), links=links))


def _iteration_links(body: dict, resources, data_dir: Path | None) -> dict[str, str]:
    """Where to read more about an Iteration's training: its MLflow run and its log."""
    from kubevision.local.process import ServiceError

    links = {}
    status = body.get("status") or {}
    project = resources.get("CustomVisionProject", body["metadata"]["namespace"],
                            body["spec"]["projectRef"]["name"])
    experiment = ((project or {}).get("status") or {}).get("experimentId")
    if status.get("mlflowRunId") and experiment:
        try:
            uri = platform(data_dir).mlflow_settings().tracking_uri
            links["MLflow Run"] = f"{uri}/#/experiments/{experiment}/runs/{status['mlflowRunId']}"
        except (ServiceError, KeyError):  # no platform state, or MLflow not in it
            links["MLflow Run"] = f"{status['mlflowRunId']} (start the platform for a link: kubevision local up)"
    log = _training_log(body, resources, data_dir)
    links["Training Log"] = f"{log}" if log.is_file() else f"{log} (none yet)"
    return links


def _training_log(body: dict, resources, data_dir: Path | None) -> Path:
    from kubevision.core.api import Iteration
    from kubevision.core.training import iteration_id
    from kubevision.local.controller import LocalController

    trainings = LocalController(platform(data_dir), resources).trainings
    return trainings.log(iteration_id(Iteration.model_validate(body)))


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
    from kubevision.local import process

    if cluster:
        typer.echo(f"kubectl logs -n {namespace} -l {ITERATION_LABEL}={iteration} --tail=-1"
                   + (" --follow" if follow else ""))
        return
    resources = store(data_dir)
    body = _require(resources, "Iteration", namespace, iteration)
    log = _training_log(body, resources, data_dir)
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


def delete(kind: Kind, name: Name, namespace: Namespace = "default", data_dir: DataDir = None) -> None:
    """Delete a local resource; the local controller unloads its model and stops its training first."""
    resource_kind, resources = _kind(kind), store(data_dir)
    _require(resources, resource_kind, namespace, name)
    resources.mark_deleted(resource_kind, namespace, name)
    typer.echo(f"{resource_kind.lower()}.kubevision.io/{name} deleted")
