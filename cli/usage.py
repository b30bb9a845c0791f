"""`kubevision usage`: what each team (namespace) used, and of which project, over a window.

Two sources, one table. On a cluster, `--prometheus URL`: the counters that the gateway's replicas and the operator
export, which Prometheus keeps through restarts and adds up across replicas. Without it, the usage ledger in local
mode's label store (its SQLite file in the data folder), which the local gateway writes; no Prometheus runs there."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from kubevision.cli.common import DataDir, fail, platform
from kubevision.cli.printing import aligned

if TYPE_CHECKING:
    from kubevision.core.usage import Usage


def usage(
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Only this namespace [default: every "
                                                                              "namespace].")] = None,
    since: Annotated[str, typer.Option(help="The window, as Prometheus writes ranges: 90m, 24h, 7d, 2w.")] = "24h",
    by_project: Annotated[bool, typer.Option("--by-project", help="A row a project, not a namespace.")] = False,
    prometheus: Annotated[str | None, typer.Option(help="A cluster's Prometheus URL: read the usage counters from "
                                                        "it [default: local mode's usage ledger].")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="json: the rows as JSON.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Tell who used what: predictions (stored, not stored), training images and their bytes, exports, trainings,
    training seconds and GPU seconds, per namespace (or project) over the window."""
    try:
        from kubevision.core.usage import parse_window

        window = parse_window(since)
    except ValueError as error:
        raise fail(f"--since: {error}") from error
    from kubevision.core.api import DNS_LABEL

    if namespace is not None and not re.fullmatch(DNS_LABEL, namespace):
        raise fail(f"--namespace: {namespace!r} is no namespace name (lower-case letters, digits and '-')")
    if output not in (None, "json"):
        raise fail(f"unknown output format {output!r}; use json, or none for the table")
    if prometheus:
        rows = _from_prometheus(prometheus, since.strip(), namespace, by_project)
    else:
        rows = _from_ledger(data_dir, datetime.now(UTC) - window, namespace, by_project)
    if output == "json":
        typer.echo(json.dumps([asdict(r) if by_project else {k: v for k, v in asdict(r).items() if k != "project"}
                               for r in rows], indent=2))
    elif rows:
        typer.echo(table(rows, by_project))
    else:
        typer.echo(f"No usage in the last {since}{f' in namespace {namespace}' if namespace else ''}.", err=True)


def _from_prometheus(url: str, since: str, namespace: str | None, by_project: bool) -> list[Usage]:
    import httpx

    from kubevision.cli import prometheus

    try:
        return prometheus.read(url, since, namespace, by_project)
    except (httpx.HTTPError, ValueError) as error:
        raise fail(f"{url}: {error}") from error


def _from_ledger(data_dir, start: datetime, namespace: str | None, by_project: bool) -> list[Usage]:
    from kubevision.core.labelstore.database import open_database
    from kubevision.core.labelstore.upload import local_database_url
    from kubevision.core.labelstore.usage import UsageLedger

    database = open_database(local_database_url(platform(data_dir).data_dir))
    try:
        return UsageLedger(database).totals(start, namespace, by_project)
    finally:
        database.dispose()


def table(rows: list[Usage], by_project: bool) -> str:
    from kubevision.core.usage import FIGURES

    header = ["NAMESPACE", *(["PROJECT"] if by_project else []), *(f.column for f in FIGURES)]
    cells = [[r.namespace, *([r.project] if by_project else []), *(_cell(getattr(r, f.field)) for f in FIGURES)]
             for r in rows]
    return "\n".join(aligned([header, *cells]))


def _cell(value: float) -> str:
    return str(round(value)) if isinstance(value, float) else str(value)
