"""Manifests are checked as the API server checks them: schema, defaults, unknown fields and CEL rules."""

from pathlib import Path

import jsonschema
import pytest
import yaml

from kubevision.core import api, crd, validation

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
INVALID = sorted((EXAMPLES / "invalid").glob("*.yaml"))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def expected_error(path: Path) -> str:
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# expect: "), f"{path.name} must say which error it expects"
    return first_line.removeprefix("# expect: ")


def openapi_schema(kind: str) -> dict:
    definition = crd.custom_resource_definition(crd.resource_for_kind(kind))
    return definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("name", ["project.yaml", "iteration.yaml"])
def test_valid_examples_are_admitted_and_parse(name):
    manifest = load(EXAMPLES / name)
    jsonschema.Draft4Validator(openapi_schema(manifest["kind"])).validate(manifest)
    admitted = validation.admit(manifest)
    model = api.CustomVisionProject if manifest["kind"] == "CustomVisionProject" else api.Iteration
    assert model.model_validate(admitted).metadata.name == manifest["metadata"]["name"]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_examples_are_rejected_naming_the_field(path):
    with pytest.raises(validation.InvalidManifest) as caught:
        validation.admit(load(path))
    assert any(error.startswith(expected_error(path)) for error in caught.value.errors), caught.value.errors


def test_there_are_several_invalid_examples():
    assert len(INVALID) >= 5


def test_defaults_are_applied():
    manifest = {
        "apiVersion": api.API_VERSION, "kind": "CustomVisionProject", "metadata": {"name": "p"},
        "spec": {"displayName": "P", "dataset": {"bucket": "data", "prefix": "default/p/"}},
    }
    spec = validation.admit(manifest)["spec"]
    assert spec["type"] == "Classification"
    assert spec["domain"] == "General"
    assert "classificationType" not in spec  # unset means Multiclass, and stays unset so that CEL can tell


@pytest.mark.parametrize("prefix", ["team-a/trees/", "team-b-2/trees/"])
def test_a_project_naming_its_namespace_keeps_its_dataset_under_it(prefix):
    project = load(EXAMPLES / "project.yaml")
    project["metadata"]["namespace"] = "team-b"
    project["spec"]["dataset"]["prefix"] = prefix
    with pytest.raises(validation.InvalidManifest, match="outside the project's namespace"):
        validation.admit(project)
    project["spec"]["dataset"]["prefix"] = "team-b/trees/"
    validation.admit(project)
    project["metadata"].pop("namespace")
    project["spec"]["dataset"]["prefix"] = prefix
    validation.admit(project)  # `kubevision validate` of a manifest that names none: applied, it is checked


@pytest.mark.parametrize("prefix", ["team-b/", "trees/", "", None])
def test_the_schema_wants_a_namespace_and_one_more_segment_at_least(prefix):
    """What the schema can say, it says (CEL at the root cannot read metadata.namespace: the rest is the operator's)."""
    project = load(EXAMPLES / "project.yaml")
    project["metadata"]["namespace"] = "team-b"
    if prefix is None:
        project["spec"]["dataset"].pop("prefix")
    else:
        project["spec"]["dataset"]["prefix"] = prefix
    with pytest.raises(validation.InvalidManifest, match="spec.dataset"):
        validation.admit(project)


def test_transition_rules_run_on_update_only():
    project = load(EXAMPLES / "project.yaml")
    changed = yaml.safe_load(yaml.safe_dump(project))
    changed["spec"]["type"] = "ObjectDetection"
    changed["spec"].pop("classificationType")
    validation.admit(changed)  # a new object may have any type
    with pytest.raises(validation.InvalidManifest, match="spec.type: type is immutable"):
        validation.admit(changed, old=validation.admit(project))


def test_object_detection_domains_are_limited():
    project = load(EXAMPLES / "project.yaml")
    project["spec"].update(type="ObjectDetection", domain="Food")
    project["spec"].pop("classificationType")
    with pytest.raises(validation.InvalidManifest, match="General and GeneralCompact domains only"):
        validation.admit(project)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"apiVersion": "kubevision.io/v1"}, "is not served here"),
        ({"kind": "Project"}, "is not served here"),
        ({"metadata": {"name": "Trees"}}, "metadata.name: 'Trees' must be a lowercase RFC 1123 subdomain"),
    ],
)
def test_wrong_identity_is_rejected(change, message):
    manifest = {**load(EXAMPLES / "project.yaml"), **change}
    with pytest.raises(validation.InvalidManifest, match=message):
        validation.admit(manifest)


def test_cli_validate_reports_each_invalid_document(tmp_path, kubevision_cli):
    bundle = tmp_path / "bundle.yaml"
    bundle.write_text("---\n".join(p.read_text() for p in [EXAMPLES / "project.yaml", *INVALID[:2]]))
    result = kubevision_cli("validate", "-f", str(bundle))
    assert result.returncode == 1
    assert "CustomVisionProject trees is valid" in result.stdout
    assert result.stderr.count("is invalid") == 2


def test_every_domain_has_a_backbone():
    from kubevision.core.domains import BACKBONES

    assert set(BACKBONES) == set(api.Domain)
    assert all(b.input_size >= 224 for b in BACKBONES.values())
