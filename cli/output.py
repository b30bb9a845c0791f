"""`kubectl get`'s output shapes for local mode: the table (also -o wide), -o name, -o yaml and -o json, for one
object, a list, and the changes that --watch prints."""

from __future__ import annotations

import json
from typing import Any

import yaml

from kubevision.cli.printing import table
from kubevision.core.crd import resource_for_kind


def key(body: dict[str, Any]) -> tuple[str, str]:
    return body["metadata"]["namespace"], body["metadata"]["name"]


class Renderer:
    def __init__(self, kind: str, output: str | None, namespaces: bool):
        self.kind, self.output, self.namespaces = kind, output, namespaces

    def listing(self, objects: list[dict[str, Any]], single: bool) -> str:
        """What `get` prints first: one object as itself, several as a List (yaml, json) or a table with header."""
        if self.output in ("yaml", "json"):
            document = objects[0] if single else {
                "apiVersion": "v1", "items": objects, "kind": "List", "metadata": {"resourceVersion": ""}}
            return self._document(document)
        if self.output == "name":
            return self._names(objects)
        return table(self.kind, objects, wide=self.output == "wide", namespaces=self.namespaces)

    def changes(self, objects: list[dict[str, Any]]) -> str:
        """What --watch prints for objects that changed: rows without header, or one document each."""
        if self.output == "yaml":
            return "\n".join("---\n" + self._document(o) for o in objects)
        if self.output == "json":
            return "\n".join(self._document(o) for o in objects)
        if self.output == "name":
            return self._names(objects)
        return table(self.kind, objects, wide=self.output == "wide", namespaces=self.namespaces, header=False)

    def _document(self, document: dict[str, Any]) -> str:
        if self.output == "json":
            return json.dumps(document, indent=4)
        return yaml.safe_dump(document, sort_keys=False, width=120).rstrip("\n")

    def _names(self, objects: list[dict[str, Any]]) -> str:
        group = resource_for_kind(self.kind).name.split(".", 1)[1]
        return "\n".join(f"{self.kind.lower()}.{group}/{o['metadata']['name']}" for o in objects)
