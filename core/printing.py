"""`kubectl get` tables from the CRDs' printer columns, for local mode's `kubevision get`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from kubevision.core import crd

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


def table(kind: str, objects: list[dict[str, Any]], now: datetime | None = None, wide: bool = False) -> str:
    resource = crd.resource_for_kind(kind)
    columns = [c for c in resource.printer_columns if wide or not c.get("priority")]
    now = now or datetime.now(UTC)
    rows = [["NAMESPACE", "NAME", *(c["name"].upper() for c in columns)]]
    for obj in objects:
        cells = [obj["metadata"]["namespace"], obj["metadata"]["name"]]
        for column in columns:
            value = json_path(obj, column["jsonPath"])
            if column["type"] == "date":
                cells.append(age(value, now))
            elif column["type"] == "number" and isinstance(value, int | float):
                cells.append(f"{value:.3f}")
            else:
                cells.append("" if value is None else str(value))
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
