"""The chart's NetworkPolicies, asked flow by flow (tests/network_policy.py holds their semantics): the flows
docs/install.md lists pass, and nothing else reaches a project's Triton and training pods, the databases or the
metrics; one value turns them off."""

from __future__ import annotations

import pytest
from chart import NAMESPACE, VALUE_SETS, find, render, rendered, workloads
from network_policy import Address, Pod, allowed, pods_of, selected_by
from test_operator_objects import PROJECT_BODY, S3, SETTINGS, job

from kubevision.operator import objects as made

TEAM, OTHER_TEAM = "team-a", "team-b"  # the "namespaced" value set's project namespaces
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
INTERNET_CLIENT = Address("203.0.113.7")
PUBLIC_WEB_SERVER = Address("93.184.216.34")
CLOUD_METADATA = Address("169.254.169.254")
PRIVATE_SERVER = Address("10.1.2.3")
API_SERVER = Address("172.18.0.2")


def project_pods(namespace: str) -> dict[str, Pod]:
    """The training and Triton pods the operator makes for a project of `namespace`."""
    triton = made.triton_deployment({**PROJECT_BODY, "metadata": {**PROJECT_BODY["metadata"], "namespace": namespace}},
                                    ["pets-1"], SETTINGS, S3)
    pods = pods_of([job(), triton], namespace)
    return {name: Pod(namespace, pod.labels, pod.ports, pod.name) for name, pod in pods.items()}


class Platform:
    """One value set's objects and every pod that matters to them."""

    def __init__(self, objects):
        self.objects = objects
        self.pods = pods_of(objects, NAMESPACE)
        self.team, self.other = project_pods(TEAM), project_pods(OTHER_TEAM)
        self.stranger = Pod(OTHER_TEAM, {"app": "anything"})  # another team's own pod
        # another team's pod dressed as the gateway: labels are the team's to choose, namespaces are not
        self.forged_gateway = Pod(OTHER_TEAM, self.pods["gateway"].labels, self.pods["gateway"].ports)

    def can(self, source, destination, port: int | str) -> bool:
        if isinstance(port, str):
            port = destination.ports[port]
        return allowed(self.objects, source, destination, port)


@pytest.fixture(scope="module")
def platform() -> Platform:
    return Platform(rendered("namespaced"))


def test_the_flows_install_md_lists_pass(platform):
    p, team = platform.pods, platform.team
    flows = [
        (INTERNET_CLIENT, p["gateway"], "http"), (p["gateway-test"], p["gateway"], "http"),
        (p["gateway"], team["triton"], "http"), (p["gateway"], team["triton"], "grpc"),
        (p["gateway"], p["minio"], "s3"), (p["gateway"], p["postgresql"], "postgresql"),
        (p["gateway"], API_SERVER, 6443), (p["gateway"], PUBLIC_WEB_SERVER, 443),
        (p["operator"], API_SERVER, 443), (p["operator"], p["minio"], "s3"), (p["operator"], p["mlflow"], "http"),
        (p["mlflow"], p["postgresql"], "postgresql"), (p["mlflow"], p["minio"], "s3"),
        (p["minio-buckets"], p["minio"], "s3"),
        (team["trainer"], p["minio"], "s3"), (team["trainer"], p["mlflow"], "http"),
        (team["triton"], p["minio"], "s3"),
        (PROMETHEUS, p["gateway"], "metrics"), (PROMETHEUS, p["operator"], "metrics"),
        (PROMETHEUS, team["triton"], "metrics"),
    ]
    assert [(s, d.name, port) for s, d, port in flows if not platform.can(s, d, port)] == []
    for source in (p["gateway"], p["operator"], team["trainer"], team["triton"]):  # DNS, from everything
        assert allowed(platform.objects, source, Pod("kube-system", {"k8s-app": "kube-dns"}), 53, "UDP")


def test_a_projects_triton_answers_the_gateway_alone(platform):
    p, triton = platform.pods, platform.team["triton"]
    strangers = [platform.stranger, platform.forged_gateway, platform.other["triton"], platform.other["trainer"],
                 platform.team["trainer"], Pod(TEAM, {"app": "the team's own"}), p["operator"], p["mlflow"],
                 p["minio"], PROMETHEUS, INTERNET_CLIENT]
    for port in ("http", "grpc"):
        assert [s for s in strangers if platform.can(s, triton, port)] == []
    assert [s for s in strangers[:-2] if platform.can(s, triton, "metrics")] == []  # Prometheus alone
    assert platform.can(p["gateway"], platform.other["triton"], "http")  # every team's, for the gateway


def test_a_training_pod_answers_nobody(platform):
    trainer = platform.team["trainer"]
    for source in (platform.pods["gateway"], platform.pods["operator"], platform.stranger, PROMETHEUS,
                   platform.team["triton"]):
        assert not platform.can(source, trainer, 8080)


def test_databases_storage_and_mlflow_answer_only_their_clients(platform):
    p, team = platform.pods, platform.team
    refused = [
        (p["operator"], p["postgresql"], "postgresql"), (team["trainer"], p["postgresql"], "postgresql"),
        (platform.stranger, p["postgresql"], "postgresql"), (team["triton"], p["postgresql"], "postgresql"),
        (platform.stranger, p["minio"], "s3"), (Pod(TEAM, {"app": "x"}), p["minio"], "s3"),
        (p["gateway"], p["mlflow"], "http"), (team["triton"], p["mlflow"], "http"),
        (platform.stranger, p["mlflow"], "http"), (INTERNET_CLIENT, p["minio"], "s3"),
    ]
    assert [(s, d.name) for s, d, port in refused if platform.can(s, d, port)] == []


def test_metrics_are_for_prometheus_and_the_api_for_everyone(platform):
    p = platform.pods
    for metrics in (p["gateway"], p["operator"]):
        assert not platform.can(platform.stranger, metrics, "metrics")
        assert not platform.can(INTERNET_CLIENT, metrics, "metrics")
    assert platform.can(platform.stranger, p["gateway"], "http")  # the API is public; each route checks its key
    narrowed = Platform(render({**VALUE_SETS["namespaced"], "networkPolicies": {
        "gatewayFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]}}))
    assert narrowed.can(Pod("ingress-nginx", {"app": "controller"}), narrowed.pods["gateway"], "http")
    assert not narrowed.can(narrowed.stranger, narrowed.pods["gateway"], "http")
    assert narrowed.can(narrowed.pods["gateway-test"], narrowed.pods["gateway"], "http")  # `helm test` still works


def test_each_pod_reaches_out_only_to_what_it_calls(platform):
    p, team = platform.pods, platform.team
    refused = [
        (p["gateway"], CLOUD_METADATA, 80), (p["gateway"], PRIVATE_SERVER, 80), (p["gateway"], p["operator"], 8080),
        (team["trainer"], p["postgresql"], "postgresql"), (team["trainer"], p["gateway"], "http"),
        (team["trainer"], PUBLIC_WEB_SERVER, 443), (team["triton"], PUBLIC_WEB_SERVER, 443),
        (team["triton"], p["gateway"], "http"), (p["minio"], PUBLIC_WEB_SERVER, 443),
        (p["postgresql"], PUBLIC_WEB_SERVER, 443), (p["mlflow"], PUBLIC_WEB_SERVER, 80),
        (p["operator"], team["triton"], "http"),
    ]
    assert [(s.name, getattr(d, "name", d)) for s, d, port in refused if platform.can(s, d, port)] == []
    opened = Platform(render({**VALUE_SETS["namespaced"], "gateway": {"allowPrivateUrls": True}}))
    assert opened.can(opened.pods["gateway"], PRIVATE_SERVER, 80)


def test_external_dependencies_are_reached_on_their_ports():
    external = Platform(rendered("external"))  # S3 on 443, MLflow over HTTPS, PostgreSQL outside
    p = external.pods
    outside = Address("198.51.100.20")
    assert external.can(p["gateway"], outside, 5432) and external.can(p["operator"], outside, 443)
    assert not external.can(p["operator"], outside, 5432)  # the operator has no database
    assert {"minio", "mlflow", "postgresql"} & set(p) == set()


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_pod_of_the_chart_is_denied_all_but_what_its_policies_allow(value_set):
    objects = rendered(value_set)
    for obj, _ in workloads(objects):
        pod = pods_of([obj], NAMESPACE)
        (pod,) = pod.values()
        assert selected_by(objects, pod, "Ingress") and selected_by(objects, pod, "Egress"), obj["metadata"]["name"]


def test_every_project_namespace_gets_the_policies_of_its_operator_made_pods(platform):
    for namespace in (TEAM, OTHER_TEAM):
        for pod in project_pods(namespace).values():
            assert selected_by(platform.objects, pod, "Ingress") and selected_by(platform.objects, pod, "Egress")
    # the namespace's other pods are the team's business
    assert selected_by(platform.objects, Pod(TEAM, {"app": "x"}), "Ingress") == []


def test_one_value_turns_them_off_and_then_every_flow_passes():
    objects = render({**VALUE_SETS["namespaced"], "networkPolicies": {"enabled": False}})
    assert find(objects, "NetworkPolicy") == []
    open_platform = Platform(objects)  # what the policies stop, the cluster would otherwise let through
    assert open_platform.can(open_platform.forged_gateway, open_platform.team["triton"], "http")
    assert open_platform.can(open_platform.stranger, open_platform.pods["postgresql"], "postgresql")
