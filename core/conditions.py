"""Kubernetes-style conditions: one per type, lastTransitionTime moving only when the status flips."""

from __future__ import annotations

from datetime import datetime

from kubevision.core.api import Condition


def set_condition(
    conditions: list[Condition], type_: str, status: str, reason: str, message: str, generation: int | None,
    now: datetime,
) -> list[Condition]:
    """The list with `type_` set; its transition time is kept when only the reason or message changed."""
    old = find(conditions, type_)
    changed_at = old.last_transition_time if old is not None and old.status == status else now
    new = Condition(type=type_, status=status, reason=reason, message=message, observed_generation=generation,
                    last_transition_time=changed_at)
    return [c for c in conditions if c.type != type_] + [new] if old is None else [
        new if c.type == type_ else c for c in conditions
    ]


def find(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: str) -> bool:
    condition = find(conditions, type_)
    return condition is not None and condition.status == "True"
