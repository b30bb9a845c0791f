"""CustomResourceDefinitions generated from the pydantic models in kubevision.core.api.

Pydantic writes JSON Schema; Kubernetes wants a *structural* OpenAPI v3 schema: no $ref, no anyOf for optional
fields, no additionalProperties beside properties, no titles. `structural()` makes the one from the other.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from kubevision.core import api

_DROPPED_KEYS = {"title", "$defs"}
_KEY_ORDER = {"description": 0, "type": 1}


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model, as a CRD embeds it."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions = schema.get("$defs", {})
    return _convert(schema, definitions)


def _convert(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:  # inline the definition; keys beside $ref (description, default) win
        target = copy.deepcopy(definitions[node.pop("$ref").rsplit("/", 1)[-1]])
        node = {**target, **node}
    if "anyOf" in node:  # Optional[X] is anyOf [X, null]: the field is optional already, keep X
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"unions other than Optional cannot be expressed in a CRD: {variants}")
        inner = _convert(variants[0], definitions)
        node = {**inner, **node}
        if node.get("default", ...) is None:
            del node["default"]
    if "const" in node:  # Literal with one value
        node["enum"] = [node.pop("const")]
    if "properties" in node:
        node.pop("additionalProperties", None)  # structural schemas prune unknown fields instead
        node["properties"] = {k: _convert(v, definitions) for k, v in node["properties"].items()}
        node.setdefault("type", "object")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = _convert(node[key], definitions)
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node[bound], bool):
            node[limit], node[bound] = node[bound], True  # OpenAPI 3.0 spells exclusive bounds as flags
    if isinstance(node.get("description"), str):
        node["description"] = " ".join(node["description"].split())
    node = {k: v for k, v in node.items() if k not in _DROPPED_KEYS}
    # description and type first: the generated YAML is read by people too
    return dict(sorted(node.items(), key=lambda item: _KEY_ORDER.get(item[0], len(_KEY_ORDER))))


@dataclass(frozen=True)
class ResourceInfo:
    model: type[BaseModel]
    kind: str
    plural: str
    short_names: tuple[str, ...]
    printer_columns: tuple[dict[str, str], ...]

    @property
    def name(self) -> str:
        return f"{self.plural}.{api.GROUP}"


def _column(name: str, json_path: str, type_: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": type_, "jsonPath": json_path}
    if priority:
        column["priority"] = priority
    return column


# Why a resource is not ready, at a glance: the Ready condition's reason in every listing, its message with -o wide.
READY_REASON = _column("Reason", '.status.conditions[?(@.type=="Ready")].reason')
READY_MESSAGE = _column("Message", '.status.conditions[?(@.type=="Ready")].message', priority=1)

RESOURCES = (
    ResourceInfo(
        model=api.CustomVisionProject,
        kind="CustomVisionProject",
        plural="customvisionprojects",
        short_names=("cvp", "cvproject"),
        printer_columns=(
            _column("Type", ".spec.type"),
            _column("Classification", ".spec.classificationType"),
            _column("Domain", ".spec.domain"),
            _column("Phase", ".status.phase"),
            READY_REASON,
            _column("Images", ".status.imageCount", "integer"),
            _column("Age", ".metadata.creationTimestamp", "date"),
            READY_MESSAGE,
        ),
    ),
    ResourceInfo(
        model=api.Iteration,
        kind="Iteration",
        plural="iterations",
        short_names=("cvi", "cviteration"),
        printer_columns=(
            _column("Project", ".spec.projectRef.name"),
            _column("Type", ".spec.trainingType"),
            _column("Phase", ".status.phase"),
            READY_REASON,
            _column("Precision", ".status.metrics.precision", "number"),
            _column("Recall", ".status.metrics.recall", "number"),
            _column("AP", ".status.metrics.averagePrecision", "number"),
            _column("Published", ".status.publishedName"),
            _column("Age", ".metadata.creationTimestamp", "date"),
            READY_MESSAGE,
        ),
    ),
)


def _openapi_schema(resource: ResourceInfo) -> dict[str, Any]:
    schema = structural(resource.model)
    # apiVersion, kind and metadata are the API server's; the CRD only declares them.
    schema["properties"]["apiVersion"] = {"type": "string", "description": "The API version: kubevision.io/v1alpha1."}
    schema["properties"]["kind"] = {"type": "string", "description": f"Always {resource.kind}."}
    schema["properties"]["metadata"] = {"type": "object"}
    schema["required"] = ["spec"]
    return schema


def custom_resource_definition(resource: ResourceInfo) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": resource.name},
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.kind.lower(),
                "shortNames": list(resource.short_names),
                "categories": [api.CATEGORY],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(resource.printer_columns),
                    "schema": {"openAPIV3Schema": _openapi_schema(resource)},
                }
            ],
        },
    }


HEADER = "# Generated by `kubevision crds` from kubevision/core/api.py. Do not edit.\n"


def render(resource: ResourceInfo) -> str:
    return HEADER + yaml.safe_dump(custom_resource_definition(resource), sort_keys=False, width=120)


def file_name(resource: ResourceInfo) -> str:
    return f"{resource.name}.yaml"


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for resource in RESOURCES:
        path = directory / file_name(resource)
        path.write_text(render(resource))
        written.append(path)
    return written


def drifted(directory: Path) -> list[str]:
    """Files in `directory` that differ from what the models generate."""
    return [
        file_name(r) for r in RESOURCES
        if not (directory / file_name(r)).is_file() or (directory / file_name(r)).read_text() != render(r)
    ]


def resource_for_kind(kind: str) -> ResourceInfo | None:
    return next((r for r in RESOURCES if r.kind == kind), None)
