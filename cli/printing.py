"""`kubectl get` tables from the CRDs' printer columns, for local mode's `kubevision get`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

_FILTER = re.compile(r'^(?P<list>[\w.]+)\[\?\(@\.(?P<key>\w+)=="(?P<value>[^"]*)"\)\]\.(?P<field>\w+)$')


def json_path(obj: dict[str, Any], path: str) -> Any:
    """The subset of JSONPath that printer columns use here: `.a.b` and `.list[?(@.k=="v")].field`."""
    match = _FILTER.match(path.lstrip("."))
    if match:
        items = json_path(obj, match["list"]) or []
        hit = next((i for i in items if i.get(match["key"]) == match["value"]), None)
        return hit.get(match["field"]) if hit else None
    value: Any = obj
    for part in path.lstrip(".").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def age(timestamp: str | None, now: datetime) -> str:
    if not timestamp:
        return ""
    seconds = int((now - datetime.fromisoformat(timestamp.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(kind: str, objects: list[dict[str, Any]], now: datetime | None = None, wide: bool = False,
          namespaces: bool = True, header: bool = True) -> str:
    """The rows `kubectl get` prints: NAMESPACE (when listing every namespace), NAME, then the printer columns
    (those of priority 1 too with `wide`)."""
    columns = printer_columns(kind, wide)
    now = now or datetime.now(UTC)
    rows = [(["NAMESPACE"] if namespaces else []) + ["NAME", *(c["name"].upper() for c in columns)]]
    for obj in objects:
        cells = ([obj["metadata"]["namespace"]] if namespaces else []) + [obj["metadata"]["name"]]
        cells += [cell(obj, column, now) for column in columns]
        rows.append(cells)
    lines = aligned(rows)
    return "\n".join(lines if header else lines[1:])


def aligned(rows: list[list[str]]) -> list[str]:
    """Rows of cells as kubectl prints them: each column as wide as its widest cell, three spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def printer_columns(kind: str, wide: bool = False) -> list[dict[str, Any]]:
    """The CRD's additionalPrinterColumns, as kubectl picks them: priority 0, or all with -o wide."""
    from kubevision.core import crd

    return [c for c in crd.resource_for_kind(kind).printer_columns if wide or not c.get("priority")]


def cell(obj: dict[str, Any], column: dict[str, Any], now: datetime) -> str:
    value = json_path(obj, column["jsonPath"])
    if column["type"] == "date":
        return age(value, now)
    if column["type"] == "number" and isinstance(value, int | float):
        return f"{value:.3f}"
    return "" if value is None else str(value)
