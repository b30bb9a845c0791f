from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kubevision.core import crd

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_crds_folder_equals_the_models():
    assert crd.drifted(CRDS) == [], "crds/ is stale: run `kubevision crds`"


def test_drift_is_detected(tmp_path):
    crd.write_all(tmp_path)
    path = tmp_path / crd.file_name(crd.RESOURCES[0])
    path.write_text(path.read_text().replace("Multilabel", "Multilabels"))
    assert crd.drifted(tmp_path) == [crd.file_name(crd.RESOURCES[0])]


def test_cli_check_passes_on_the_repository_and_fails_on_drift(tmp_path, kubevision_cli):
    assert kubevision_cli("crds", "--check", "--output-dir", str(CRDS)).returncode == 0
    result = kubevision_cli("crds", "--check", "--output-dir", str(tmp_path))
    assert result.returncode == 1
    assert "differ from the models" in result.stderr


@pytest.mark.parametrize("resource", crd.RESOURCES, ids=lambda r: r.kind)
def test_kubernetes_validate_accepts_the_crd(resource):
    manifest = yaml.safe_load((CRDS / crd.file_name(resource)).read_text())
    kubernetes_validate.validate(manifest, "1.37.0", strict=True)


def _fields_without_description(schema, path):
    for name, sub in schema.get("properties", {}).items():
        if path == "" and name in {"apiVersion", "kind", "metadata"}:
            continue
        if not sub.get("description"):
            yield f"{path}.{name}"
        yield from _fields_without_description(sub, f"{path}.{name}")
        if "items" in sub:
            yield from _fields_without_description(sub["items"], f"{path}.{name}[]")


@pytest.mark.parametrize("resource", crd.RESOURCES, ids=lambda r: r.kind)
def test_every_field_is_described(resource):
    schema = crd.custom_resource_definition(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert list(_fields_without_description(schema, "")) == []


@pytest.mark.parametrize("resource", crd.RESOURCES, ids=lambda r: r.kind)
def test_schema_is_structural(resource):
    """What the API server refuses in a structural schema: $ref, anyOf, additionalProperties beside properties."""
    text = crd.render(resource)
    for forbidden in ("$ref", "anyOf", "allOf", "oneOf", "title:"):
        assert forbidden not in text
    schema = crd.custom_resource_definition(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def walk(node):
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), node
        assert not ("properties" in node and "additionalProperties" in node)
        for sub in node.get("properties", {}).values():
            walk(sub)
        if "items" in node:
            walk(node["items"])

    walk(schema)


def test_names_and_printer_columns():
    project, iteration = (crd.custom_resource_definition(r)["spec"] for r in crd.RESOURCES)
    assert project["names"]["shortNames"] == ["cvp", "cvproject"]
    assert iteration["names"]["categories"] == ["kubevision"]
    columns = [c["name"] for c in iteration["versions"][0]["additionalPrinterColumns"]]
    assert {"Type", "Phase", "Precision", "Recall", "AP", "Published", "Age"} <= set(columns)
    assert iteration["versions"][0]["subresources"] == {"status": {}}
