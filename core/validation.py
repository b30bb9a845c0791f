"""Admission as the Kubernetes API server does it, for places without one (local mode, tests).

A manifest is checked against its generated CRD: structural defaults are applied, then the OpenAPI schema
(jsonschema), then the CEL rules in `x-kubernetes-validations` (cel-python). Each error names the field.
One rule more than the API server's: a project whose manifest names its namespace keeps its dataset under it
(core/storage.py); CEL at the CRD's root cannot read metadata.namespace, so on a cluster the operator refuses such a
project with a condition instead.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any

import celpy
import jsonschema

from kubevision.core import api, crd
from kubevision.core.storage import dataset_prefix_problem

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class InvalidManifest(ValueError):
    """A manifest the API server would refuse. `errors` holds one 'field: problem' line each."""

    def __init__(self, kind: str, name: str, errors: list[str]):
        self.errors = errors
        super().__init__(f'{kind} "{name}" is invalid: ' + "; ".join(errors))


@cache
def _schema(kind: str) -> dict[str, Any]:
    resource = crd.resource_for_kind(kind)
    if resource is None:
        raise KeyError(kind)
    return crd.custom_resource_definition(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def admit(manifest: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest with defaults applied, or InvalidManifest with every problem found.

    `old` is the stored object on an update, for transition rules (those that read oldSelf).
    """
    kind = manifest.get("kind", "")
    name = (manifest.get("metadata") or {}).get("name", "")
    if manifest.get("apiVersion") != api.API_VERSION or crd.resource_for_kind(kind) is None:
        supported = ", ".join(r.kind for r in crd.RESOURCES)
        raise InvalidManifest(kind or "<no kind>", name, [
            f"apiVersion/kind: {manifest.get('apiVersion')}/{kind} is not served here; "
            f"expected {api.API_VERSION} with kind one of {supported}"
        ])
    errors = []
    if not isinstance(name, str) or len(name) > 253 or not _NAME.match(name):
        errors.append(f"metadata.name: {name!r} must be a lowercase RFC 1123 subdomain")
    schema = _schema(kind)
    obj = copy.deepcopy(manifest)
    _apply_defaults(obj, schema)
    errors.extend(_unknown_fields(obj, schema, ""))
    validator = jsonschema.Draft4Validator(schema)
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        errors.append(f"{_path(error.absolute_path)}: {error.message}")
    if not errors:
        errors.extend(_cel_errors(obj, old, schema, ""))
    if not errors:
        errors.extend(_namespace_errors(obj))
    if errors:
        raise InvalidManifest(kind, name, errors)
    return obj


def _namespace_errors(obj: dict[str, Any]) -> list[str]:
    """A project's dataset outside its namespace, when the manifest names one (`kubevision validate` may not)."""
    namespace = obj["metadata"].get("namespace")
    if obj["kind"] != "CustomVisionProject" or not namespace:
        return []
    problem = dataset_prefix_problem(namespace, obj["spec"]["dataset"].get("prefix", ""))
    return [problem] if problem else []


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "<root>"


def _apply_defaults(value: Any, schema: dict[str, Any]) -> None:
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _apply_defaults(value[key], sub)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _apply_defaults(item, schema["items"])


def _unknown_fields(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Fields the schema does not know, refused as kubectl's strict field validation does."""
    if isinstance(value, list) and "items" in schema:
        return [e for i, item in enumerate(value) for e in _unknown_fields(item, schema["items"], f"{path}[{i}]")]
    if not isinstance(value, dict) or "properties" not in schema:
        return []
    errors = []
    for key, sub_value in value.items():
        sub_path = f"{path}.{key}".lstrip(".")
        if key not in schema["properties"]:
            errors.append(f"{sub_path}: unknown field")
        else:
            errors.extend(_unknown_fields(sub_value, schema["properties"][key], sub_path))
    return errors


def _cel_errors(value: Any, old: Any, schema: dict[str, Any], path: str) -> list[str]:
    errors = []
    for rule in schema.get("x-kubernetes-validations", []):
        is_transition = "oldSelf" in rule["rule"]
        if is_transition and old is None:
            continue  # transition rules only run on updates, as in Kubernetes
        if not _holds(rule["rule"], value, old if is_transition else None):
            errors.append(f"{path or '<root>'}: {rule['message']}")
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                old_sub = old.get(key) if isinstance(old, dict) else None
                errors.extend(_cel_errors(value[key], old_sub, sub, f"{path}.{key}".lstrip(".")))
    return errors


@cache
def _program(rule: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def _holds(rule: str, value: Any, old: Any) -> bool:
    activation = {"self": celpy.json_to_cel(value)}
    if old is not None:
        activation["oldSelf"] = celpy.json_to_cel(old)
    return bool(_program(rule).evaluate(activation))
