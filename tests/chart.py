"""The Helm chart rendered as `helm template` renders it: Helm's own Go code (helm-python-sdk carries it as a library),
so values.schema.json is enforced and the templates behave as on a real install, with no cluster and no helm binary.
`lookup` finds nothing offline, so generated secrets are new on every render."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import helm_python
import yaml

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "kubevision"
RELEASE, NAMESPACE = "kubevision", "kubevision"

# The value sets every chart test renders: what a platform team sets for each kind of install.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "gpu": {"triton": {"gpus": 1}, "trainer": {"gpuTolerations": True}},
    "external": {
        "minio": {"enabled": False},
        "s3": {"endpoint": "s3.eu-west-1.amazonaws.com:443", "secure": True, "existingSecret": "team-s3"},
        "mlflow": {"enabled": False, "trackingUri": "https://mlflow.example.com"},
        "postgresql": {"enabled": False, "existingSecret": "kubevision-database"},
    },
    "namespaced": {"namespaces": ["team-a", "team-b"]},
    "ingress": {"gateway": {"ingress": {"enabled": True, "className": "nginx", "host": "cv.example.com",
                                        "tlsSecretName": "cv-tls"},
                            "autoscaling": {"enabled": True}}},
    "monitoring": {"monitoring": {"serviceMonitor": {"enabled": True}, "dashboard": {"enabled": True}}},
    "kind": yaml.safe_load((REPO / "deploy" / "kind" / "values.yaml").read_text()),
    "kueue": {"namespaces": ["team-a", "team-b"],
              "kueue": {"enabled": True, "createQueues": True, "queueName": "training", "quota": {"gpus": 4}}},
}


def render_files(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included). Raises helm_python.HelmValuesError for values the
    schema refuses."""
    with helm_python.Chart.load(CHART) as chart:
        return chart.render(values or {}, name=RELEASE, namespace=namespace)


def render(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """Every object the chart renders (with hooks and the `helm test` Pod, as `helm template` prints them)."""
    return [document for path, text in sorted(render_files(values, namespace).items()) if path.endswith(".yaml")
            for document in yaml.safe_load_all(text) if document]


@cache
def rendered(value_set: str) -> tuple[dict[str, Any], ...]:
    """One value set's objects, rendered once per test run."""
    return tuple(render(VALUE_SETS[value_set]))


def component(obj: dict[str, Any]) -> str | None:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def find(objects, kind: str, name_component: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name_component is None or component(o) == name_component)]


def role_rules(name_component: str) -> list[dict[str, Any]]:
    """The rules of a component's ClusterRole, as the chart renders it with its defaults."""
    (role,) = find(rendered("defaults"), "ClusterRole", name_component)
    return role["rules"]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return obj["spec"]["template"]["spec"]
    return None


def workloads(objects) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(object, pod spec) of everything that runs pods."""
    return [(o, spec) for o in objects if (spec := pod_spec(o)) is not None]
