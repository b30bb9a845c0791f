"""The operator's and the gateway's deployment manifests are valid Kubernetes objects, and each kustomization lists
every manifest of its folder."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FOLDERS = [REPO / "operator" / "deploy", REPO / "gateway" / "deploy"]
FILES = sorted(p for folder in FOLDERS for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_manifests_are_valid(path):
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, "1.37.0", strict=True)


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.parent.name)
def test_the_kustomization_lists_every_manifest(folder):
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in folder.glob("*.yaml")
                                                        if p.name != "kustomization.yaml")


def test_the_operator_runs_as_a_single_replica():
    documents = yaml.safe_load_all((REPO / "operator" / "deploy" / "operator.yaml").read_text())
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"


def test_the_gateway_probes_liveness_without_triton_and_readiness_on_its_catalog():
    documents = yaml.safe_load_all((REPO / "gateway" / "deploy" / "gateway.yaml").read_text())
    container = next(d for d in documents if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
