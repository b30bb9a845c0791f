"""What each value set installs: the components, their settings (named after the core settings fields), the
RBAC scope, the generated secrets, monitoring."""

from __future__ import annotations

import base64
import json
import re

import helm_python
import pytest
from chart import REPO, component, find, pod_spec, render, render_files, rendered

from kubevision.core.api import CustomVisionProject, Iteration
from kubevision.core.labels import labels
from kubevision.core.settings import GatewaySettings, LimitsSettings, MLflowSettings, OperatorSettings, S3Settings
from kubevision.core.training import TrainingRequest
from kubevision.operator import objects as operator_objects
from kubevision.operator import reconcile


def env(objects, name_component: str) -> dict[str, dict]:
    (deployment,) = find(objects, "Deployment", name_component)
    return {e["name"]: e for e in pod_spec(deployment)["containers"][0]["env"]}


def value(objects, name_component: str, variable: str) -> str:
    return env(objects, name_component)[variable]["value"]


def operator_settings(objects, monkeypatch) -> OperatorSettings:
    """The operator's settings as its pod reads them from the rendered environment."""
    for name, variable in env(objects, "operator").items():
        if name.startswith("KUBEVISION_OPERATOR_"):
            monkeypatch.setenv(name, variable["value"])
    return OperatorSettings()


def test_every_kubevision_variable_is_a_settings_field():
    known = {f"{cls.model_config['env_prefix']}{field}".upper() for cls in
             (OperatorSettings, GatewaySettings, S3Settings, MLflowSettings, LimitsSettings)
             for field in cls.model_fields}
    for name_component in ("operator", "gateway"):
        variables = {v for v in env(rendered("defaults"), name_component) if v.startswith("KUBEVISION_")}
        assert variables - known == set(), name_component


def test_the_operator_runs_as_a_single_replica():
    (deployment,) = find(rendered("defaults"), "Deployment", "operator")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"


def test_the_gateway_probes_liveness_without_triton_and_readiness_on_its_catalog():
    (deployment,) = find(rendered("defaults"), "Deployment", "gateway")
    container = pod_spec(deployment)["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_defaults_are_a_self_contained_install():
    objects = rendered("defaults")
    assert {component(o) for o in find(objects, "StatefulSet")} == {"minio", "postgresql"}
    assert {component(o) for o in find(objects, "Deployment")} == {"operator", "gateway", "mlflow"}
    tracking = value(objects, "operator", "KUBEVISION_OPERATOR_MLFLOW_TRACKING_URI")
    assert tracking == "http://kubevision-mlflow.kubevision.svc:5000"
    assert value(objects, "gateway", "KUBEVISION_S3_ENDPOINT") == "kubevision-minio.kubevision.svc:9000"
    (mlflow_service,) = find(objects, "Service", "mlflow")
    assert mlflow_service["metadata"]["name"] == "kubevision-mlflow"


def test_the_operator_starts_triton_and_training_as_the_values_say(monkeypatch):
    objects = rendered("gpu")
    assert value(objects, "operator", "KUBEVISION_OPERATOR_TRITON_GPUS") == "1"
    assert value(objects, "operator", "KUBEVISION_OPERATOR_TRAINER_IMAGE") == "ghcr.io/kubevision/trainer:0.1.0"
    assert value(rendered("defaults"), "operator", "KUBEVISION_OPERATOR_TRITON_GPUS") == "0"
    settings = operator_settings(objects, monkeypatch)
    assert settings.triton_gpus == 1 and settings.namespaces == [] and settings.gpu_tolerations


def test_with_kueue_the_operator_queues_training_jobs_where_the_chart_made_the_queues(monkeypatch):
    """The LocalQueue of each namespace is the one the operator labels its Jobs with, and it feeds a ClusterQueue
    whose quota covers every resource a training Job requests, GPUs included (Kueue never admits a Job asking for
    a resource its ClusterQueue does not cover)."""
    objects = rendered("kueue")
    settings = operator_settings(objects, monkeypatch)
    assert settings.kueue_queue_name == "training"
    (flavor,) = find(objects, "ResourceFlavor")
    (cluster_queue,) = find(objects, "ClusterQueue")
    local_queues = find(objects, "LocalQueue")
    assert sorted(q["metadata"]["namespace"] for q in local_queues) == ["team-a", "team-b"]
    assert {(q["metadata"]["name"], q["spec"]["clusterQueue"]) for q in local_queues} == {
        ("training", cluster_queue["metadata"]["name"])}
    assert cluster_queue["spec"]["namespaceSelector"]["matchExpressions"][0]["values"] == ["team-a", "team-b"]
    (group,) = cluster_queue["spec"]["resourceGroups"]
    (flavor_quota,) = group["flavors"]
    assert flavor_quota["name"] == flavor["metadata"]["name"]
    assert [r["name"] for r in flavor_quota["resources"]] == group["coveredResources"]  # Kueue wants the same order
    assert {r["name"]: str(r["nominalQuota"]) for r in flavor_quota["resources"]} == {
        "cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "4"}

    project = CustomVisionProject(metadata={"name": "pets", "namespace": "team-a", "uid": "p-uid"},
                                  spec={"displayName": "Pets", "dataset": {"bucket": "data", "prefix": "team-a/pets/"}})
    body = {"metadata": {"name": "pets-1", "namespace": "team-a", "uid": "0a1b2c3d-uid"},
            "spec": {"projectRef": {"name": "pets"}, "resources": {"gpus": 2}}}
    iteration = Iteration.model_validate(body)
    train = reconcile.TrainingJob(name="pets-1-0a1b2c3d", gpus=2,
                                  options=reconcile.resolve_training(project, iteration),
                                  request=TrainingRequest(project=project, iteration=iteration))
    job = operator_objects.training_job(train, body, settings, S3Settings())
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "training" and job["spec"]["suspend"]
    resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert set(resources["requests"]) | set(resources["limits"]) <= set(group["coveredResources"])


def test_without_kueue_the_operator_queues_nothing_and_the_queues_need_namespaces(monkeypatch):
    assert operator_settings(render({"kueue": {"queueName": "training"}}), monkeypatch).kueue_queue_name == ""
    with pytest.raises(helm_python.HelmRenderError, match="kueue.createQueues needs kueue.namespaces"):
        render({"kueue": {"enabled": True, "createQueues": True}})  # every namespace: no list to make queues in
    only = render({"namespaces": ["team-a", "team-b"],
                   "kueue": {"enabled": True, "createQueues": True, "namespaces": ["team-b"]}})
    assert [q["metadata"]["namespace"] for q in find(only, "LocalQueue")] == ["team-b"]


def test_external_dependencies_replace_the_in_chart_ones():
    objects = rendered("external")
    assert find(objects, "StatefulSet") == [] and {component(o) for o in find(objects, "Deployment")} == {
        "operator", "gateway"}
    assert find(objects, "Secret") == []  # every credential is the platform team's own Secret
    assert value(objects, "operator", "KUBEVISION_OPERATOR_MLFLOW_TRACKING_URI") == "https://mlflow.example.com"
    assert value(objects, "operator", "KUBEVISION_OPERATOR_S3_SECRET_NAME") == "team-s3"
    gateway = env(objects, "gateway")
    assert gateway["KUBEVISION_S3_SECURE"]["value"] == "true"
    assert gateway["KUBEVISION_S3_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "team-s3"
    assert gateway["KUBEVISION_GATEWAY_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "kubevision-database", "key": "gatewayUrl"}


def test_cluster_wide_by_default_and_bound_per_namespace_with_a_list():
    assert len(find(rendered("defaults"), "ClusterRoleBinding")) == 2
    assert find(rendered("defaults"), "RoleBinding") == []
    objects = rendered("namespaced")
    assert find(objects, "ClusterRoleBinding") == []
    bindings = find(objects, "RoleBinding")
    assert sorted((b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings) == [
        ("team-a", "kubevision-gateway"), ("team-a", "kubevision-operator"),
        ("team-b", "kubevision-gateway"), ("team-b", "kubevision-operator")]
    assert all(b["subjects"][0]["namespace"] == "kubevision" for b in bindings)
    for name_component in ("operator", "gateway"):
        variable = f"KUBEVISION_{name_component.upper()}_NAMESPACES"
        assert json.loads(value(objects, name_component, variable)) == ["team-a", "team-b"]


def test_generated_s3_keys_are_one_pair_copied_to_each_project_namespace():
    secrets = [s for s in find(render({"namespaces": ["team-a", "team-b"]}), "Secret")
               if s["metadata"]["name"] == "kubevision-s3"]
    assert sorted(s["metadata"]["namespace"] for s in secrets) == ["kubevision", "team-a", "team-b"]
    assert len({json.dumps(s["data"], sort_keys=True) for s in secrets}) == 1
    other = next(s for s in find(render(), "Secret") if s["metadata"]["name"] == "kubevision-s3")
    assert other["data"] != secrets[0]["data"], "a new install gets new keys"


def test_database_urls_carry_the_generated_password():
    objects = render()
    password = next(s for s in find(objects, "Secret") if s["metadata"]["name"] == "kubevision-postgresql")
    urls = next(s for s in find(objects, "Secret") if s["metadata"]["name"] == "kubevision-database")
    secret = base64.b64decode(password["data"]["password"]).decode()
    assert len(secret) == 32
    assert urls["stringData"]["gatewayUrl"] == (  # the label store speaks psycopg 3, SQLAlchemy's default is psycopg2
        f"postgresql+psycopg://kubevision:{secret}@kubevision-postgresql.kubevision.svc:5432/kubevision")
    assert urls["stringData"]["mlflowUrl"].endswith("/mlflow")


def test_secrets_are_looked_up_before_they_are_generated():
    """Offline, lookup finds nothing; on a cluster it returns the Secret of the first install (kept on upgrade)."""
    helpers = (REPO / "charts" / "kubevision" / "templates" / "_helpers.tpl").read_text()
    assert re.search(r'lookup "v1" "Secret" \.ctx\.Release\.Namespace \.secret', helpers)
    values = (REPO / "charts" / "kubevision" / "values.yaml").read_text()
    assert not re.search(r"(?i)^\s*(password|secretKey|accessKey):", values, re.M), "no secret is a value"


def test_ingress_autoscaling_and_disruption_budget():
    objects = rendered("ingress")
    (ingress,) = find(objects, "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "cv.example.com"
    assert ingress["spec"]["tls"] == [{"hosts": ["cv.example.com"], "secretName": "cv-tls"}]
    (hpa,) = find(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "kubevision-gateway"
    (gateway,) = find(objects, "Deployment", "gateway")
    assert "replicas" not in gateway["spec"], "the autoscaler owns the replica count"
    assert len(find(objects, "PodDisruptionBudget")) == 1


def test_service_monitors_select_the_operator_the_gateway_and_every_triton():
    objects = rendered("monitoring")
    monitors = {m["metadata"]["name"]: m for m in find(objects, "ServiceMonitor")}
    for name, port in (("kubevision-operator", "metrics"), ("kubevision-gateway-metrics", "metrics")):
        (service,) = [s for s in find(objects, "Service") if s["metadata"]["name"] == name]
        assert monitors[name]["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert port in {p["name"] for p in service["spec"]["ports"]}
    triton = monitors["kubevision-triton"]["spec"]
    assert triton["selector"]["matchLabels"].items() <= labels("triton", "any").items()
    assert triton["namespaceSelector"] == {"any": True}


def test_the_gateway_serves_metrics_on_their_own_port_and_service_never_the_apis():
    objects = rendered("ingress")
    (deployment,) = find(objects, "Deployment", "gateway")
    container = pod_spec(deployment)["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    variables = {e["name"]: e.get("value") for e in container["env"]}
    assert int(variables["KUBEVISION_GATEWAY_METRICS_PORT"]) == ports["metrics"] != ports["http"]
    assert int(variables["KUBEVISION_GATEWAY_PORT"]) == ports["http"]
    services = {s["metadata"]["name"]: s for s in find(objects, "Service")}
    assert [p["targetPort"] for p in services["kubevision-gateway"]["spec"]["ports"]] == ["http"]
    assert (find(objects, "Ingress")[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
            == "kubevision-gateway")
    metrics = services["kubevision-gateway-metrics"]["spec"]
    assert metrics.get("type", "ClusterIP") == "ClusterIP" and [p["targetPort"] for p in metrics["ports"]] == [
        "metrics"]
    assert metrics["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_the_dashboard_charts_only_metrics_that_exist():
    (config_map,) = find(rendered("monitoring"), "ConfigMap", "dashboard")
    dashboard = json.loads(config_map["data"]["kubevision.json"])
    sources = (REPO / "operator" / "metrics.py").read_text() + (REPO / "gateway" / "metrics.py").read_text()
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    metrics = {m for e in expressions for m in re.findall(r"\b(kubevision_\w+|nv_\w+)", e)}
    assert any(m.startswith("nv_") for m in metrics), "Triton's own metrics"
    for metric in metrics:
        if metric.startswith("kubevision_"):
            assert f'"{re.sub(r"_(bucket|sum|count)$", "", metric)}"' in sources, metric


def test_notes_show_the_url_a_key_and_the_first_apply():
    notes = render_files({"gateway": {"service": {"type": "NodePort", "nodePort": 30080}}})[
        "kubevision/templates/NOTES.txt"]
    assert "nodePort" in notes and "kubevision-api-keys" in notes and "kubectl -n default apply -f" in notes
    assert "port-forward svc/kubevision-gateway 8080:80" in render_files()["kubevision/templates/NOTES.txt"]


def test_the_helm_test_checks_the_gateway_service():
    (pod,) = find(rendered("defaults"), "Pod", "gateway-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    assert "http://kubevision-gateway:80/readyz" in script and "Unauthorized" in script
    compile(script, "helm-test", "exec")
