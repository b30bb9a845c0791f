"""The chart renders, for every value set, objects that the Kubernetes versions it supports accept; its CRDs are the
generated ones; a wrong value fails at install with the field named."""

from __future__ import annotations

import json

import helm_python
import kubernetes_validate
import pytest
import yaml
from chart import CHART, REPO, VALUE_SETS, find, render, render_files, rendered

from kubevision.core import crd

# Chart.yaml's kubeVersion (>=1.31) up to the newest schema that kubernetes-validate carries.
KUBERNETES_VERSIONS = ["1.31.0", "1.33.0", "1.35.0", "1.37.0"]
# Kinds outside Kubernetes itself, whose schemas kubernetes-validate does not carry (Kueue's are checked in
# test_chart_components.py against what the operator's Jobs request).
CUSTOM_KINDS = {"ServiceMonitor", "ResourceFlavor", "ClusterQueue", "LocalQueue"}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "ResourceFlavor", "ClusterQueue"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_object_is_valid_kubernetes(value_set, version):
    objects = rendered(value_set)
    assert objects
    for obj in objects:
        if obj["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_custom_kinds_appear_only_when_asked_for():
    assert {o["kind"] for o in rendered("defaults")} & CUSTOM_KINDS == set()
    assert len(find(rendered("monitoring"), "ServiceMonitor")) == 3  # operator, gateway, Triton
    assert {o["kind"] for o in rendered("kueue")} & CUSTOM_KINDS == {"ResourceFlavor", "ClusterQueue", "LocalQueue"}
    assert {o["kind"] for o in render({"kueue": {"enabled": True}})} & CUSTOM_KINDS == set()  # its own queues


def test_names_are_unique_per_kind_and_namespace():
    for value_set in VALUE_SETS:
        keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in rendered(value_set)]
        assert len(keys) == len(set(keys)), value_set


def test_the_chart_crds_are_the_generated_ones():
    chart_crds = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert chart_crds == sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    for name in chart_crds:
        assert (CHART / "crds" / name).read_text() == (REPO / "crds" / name).read_text(), "run `make crds`"
    assert crd.drifted(CHART / "crds") == []


def test_helm_lint_finds_nothing_to_fix():
    report = helm_python.lint(CHART, strict=True, kube_version="v1.31.0")
    findings = [m for m in report["messages"] if m["error"] != "icon is recommended"]
    assert report["errors"] == [] and findings == []


@pytest.mark.parametrize(("values", "named"), [
    ({"gateway": {"replicas": "two"}}, "/gateway/replicas"),
    ({"gateway": {"replica": 2}}, "'replica' not allowed"),
    ({"operator": {"replicas": 2}}, "/operator/replicas"),
    ({"image": {"tag": "latest"}}, "/image/tag"),
    ({"triton": {"image": "nvcr.io/nvidia/tritonserver:latest"}}, "/triton/image"),
    ({"namespaces": ["Team_A"]}, "/namespaces/0"),
    ({"minio": {"enabled": False}}, "/s3/endpoint"),
    ({"postgresql": {"enabled": False}}, "/postgresql/existingSecret"),
    ({"mlflow": {"enabled": False}}, "/mlflow/trackingUri"),
    ({"gateway": {"service": {"type": "NodePort", "nodePort": 80}}}, "/gateway/service/nodePort"),
    ({"kueue": {"queueName": "Training_Queue"}}, "/kueue/queueName"),
    ({"kueue": {"quota": {"gpus": -1}}}, "/kueue/quota/gpus"),
    ({"kueue": {"quota": {"memory": "lots"}}}, "/kueue/quota/memory"),
])
def test_a_wrong_value_fails_naming_the_field(values, named):
    with pytest.raises(helm_python.HelmValuesError, match=named.replace("/", "/")):
        render(values)


def test_every_value_has_a_described_schema_entry():
    """Down to the leaves, except resources, which take Kubernetes' own shape."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(values, node, path):
        assert node.get("description"), f"{path or 'the root'} has no description"
        if node.get("type") == "object" and "properties" in node and not path.endswith("resources"):
            assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
            assert set(values) <= set(node["properties"]), path
            for key, sub in node["properties"].items():
                assert key in values, f"{path}.{key} is in the schema but not in values.yaml"
                walk(values[key], sub, f"{path}.{key}".lstrip("."))

    walk(defaults, {**schema, "description": schema["title"]}, "")


def test_the_rendered_text_is_yaml_helm_would_apply():
    for path, text in render_files().items():
        if path.endswith(".yaml"):
            for document in yaml.safe_load_all(text):
                assert document is None or {"apiVersion", "kind", "metadata"} <= set(document), path


def test_every_namespaced_object_names_its_namespace():
    """As `helm template | kubectl apply` and Argo CD need: nothing lands in whatever namespace is current."""
    for value_set in VALUE_SETS:
        for obj in rendered(value_set):
            if obj["kind"] not in CLUSTER_SCOPED:
                assert obj["metadata"].get("namespace"), f"{value_set}: {obj['kind']} {obj['metadata']['name']}"
    assert {o["metadata"].get("namespace") for o in rendered("defaults")} == {"kubevision", None}
