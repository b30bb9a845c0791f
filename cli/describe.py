"""`kubectl describe` for KubeVision's resources: what the object asks for, where it stands and why, what happened.

Pure rendering: the caller passes the object, its Events and, in local mode, the MLflow run link and training log.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from kubevision.cli.printing import age

INDENT = "  "


def describe(body: dict[str, Any], events: list[dict[str, Any]], now: datetime | None = None,
             links: dict[str, str] | None = None) -> str:
    """`links`: extra labelled lines (the MLflow run, the training log), shown after the status."""
    now = now or datetime.now(UTC)
    meta, status = body["metadata"], dict(body.get("status") or {})
    created = meta.get("creationTimestamp")
    lines = _pairs([
        ("Name", meta["name"]), ("Namespace", meta["namespace"]), ("Kind", body["kind"]),
        ("UID", meta.get("uid", "")), ("Generation", meta.get("generation", "")),
        ("Created", f"{created} ({age(created, now)} ago)" if created else "<unknown>"),
    ], "")
    if meta.get("deletionTimestamp"):
        lines += _pairs([("Deleting since", meta["deletionTimestamp"])], "")
    lines += ["Spec:", *_fields(body.get("spec") or {}, INDENT)]
    conditions = status.pop("conditions", [])
    lines += ["Status:", *(_fields(status, INDENT) or [INDENT + "<none yet: the controller has not seen it>"])]
    lines += ["Conditions:", *(_table(
        ["Type", "Status", "Reason", "Age", "Message"],
        [[c["type"], c["status"], c["reason"], age(c.get("lastTransitionTime"), now), c.get("message", "")]
         for c in conditions], INDENT) if conditions else [INDENT + "<none>"])]
    lines += _pairs(list((links or {}).items()), "")
    lines += ["Events:", *(_table(
        ["Type", "Reason", "Age", "From", "Message"],
        [[e["type"], e["reason"], _event_age(e, now), e["source"], e["message"]] for e in events], INDENT)
        if events else [INDENT + "<none>"])]
    return "\n".join(lines)


def _event_age(event: dict[str, Any], now: datetime) -> str:
    """As kubectl shows a repeated Event: `2m (x3 over 10m)`."""
    last = age(event["lastTimestamp"], now)
    if event["count"] <= 1:
        return last
    return f"{last} (x{event['count']} over {age(event['firstTimestamp'], now)})"


def title(key: str) -> str:
    """camelCase to Title Case, as kubectl describe labels fields: averagePrecision -> Average Precision."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key)
    return spaced[:1].upper() + spaced[1:]


def _fields(value: dict[str, Any], indent: str) -> list[str]:
    lines: list[str] = []
    scalars = [(title(k), v) for k, v in value.items() if not isinstance(v, dict | list)]
    lines += _pairs(scalars, indent)
    for key, sub in value.items():
        if isinstance(sub, dict):
            lines += [f"{indent}{title(key)}:", *(_fields(sub, indent + INDENT) or [indent + INDENT + "<none>"])]
        elif isinstance(sub, list) and sub and all(isinstance(item, dict) for item in sub):
            headers = list(dict.fromkeys(k for item in sub for k in item))
            lines += [f"{indent}{title(key)}:",
                      *_table([title(h) for h in headers], [[item.get(h, "") for h in headers] for item in sub],
                              indent + INDENT)]
        elif isinstance(sub, list):
            lines += _pairs([(title(key), ", ".join(map(str, sub)) or "<none>")], indent)
    return lines


def _pairs(pairs: list[tuple[str, Any]], indent: str) -> list[str]:
    if not pairs:
        return []
    width = max(len(label) for label, _ in pairs) + 2
    return [f"{indent}{(label + ':').ljust(width)}{_scalar(value)}".rstrip() for label, value in pairs]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]], indent: str) -> list[str]:
    cells = [headers, ["-" * len(h) for h in headers], *[[_scalar(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
