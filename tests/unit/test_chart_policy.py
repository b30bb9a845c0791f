"""Policy on everything the chart runs, for every value set: non-root, read-only root, no capabilities, the runtime's
seccomp profile, resources, probes on long-running containers, pinned images, and secrets only from Secrets."""

from __future__ import annotations

import re

import pytest
from chart import VALUE_SETS, rendered, workloads

LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}  # Jobs and the `helm test` Pod run to completion
# Variables that hold a credential (a variable that names a Secret, *_SECRET_NAME, holds none).
SECRET_NAMES = re.compile(r"SECRET(?!_NAME$)|PASSWORD|TOKEN|ACCESS_KEY|DATABASE_URL|BACKEND_STORE_URI")


def containers(value_set):
    for obj, spec in workloads(rendered(value_set)):
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield obj, spec, container


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_pods_run_as_non_root_with_the_default_seccomp_profile(value_set):
    for obj, spec in workloads(rendered(value_set)):
        security = spec.get("securityContext", {})
        assert security.get("runAsNonRoot") is True and security.get("runAsUser", 0) > 0, obj["metadata"]["name"]
        assert security.get("seccompProfile") == {"type": "RuntimeDefault"}, obj["metadata"]["name"]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_containers_are_read_only_and_drop_every_capability(value_set):
    for obj, _, container in containers(value_set):
        security = container.get("securityContext", {})
        where = f"{obj['metadata']['name']}/{container['name']}"
        assert security.get("readOnlyRootFilesystem") is True, where
        assert security.get("allowPrivilegeEscalation") is False, where
        assert security.get("capabilities", {}).get("drop") == ["ALL"], where
        assert not security.get("capabilities", {}).get("add"), where
        assert not security.get("privileged"), where


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_container_has_resources(value_set):
    for obj, _, container in containers(value_set):
        resources = container.get("resources", {})
        where = f"{obj['metadata']['name']}/{container['name']}"
        assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
        assert "memory" in resources.get("limits", {}), where


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_long_running_containers_have_liveness_and_readiness_probes(value_set):
    for obj, _, container in containers(value_set):
        if obj["kind"] in LONG_RUNNING:
            assert "livenessProbe" in container and "readinessProbe" in container, obj["metadata"]["name"]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_images_are_pinned_never_latest(value_set):
    for _, _, container in containers(value_set):
        image = container["image"]
        assert re.search(r":[\w][\w.-]*$|@sha256:[0-9a-f]{64}$", image.rsplit("/", 1)[-1]), image
        assert not image.endswith(":latest"), image


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_secret_values_come_from_secrets_never_plain_env(value_set):
    for obj, _, container in containers(value_set):
        for variable in container.get("env", []):
            if SECRET_NAMES.search(variable["name"]):
                assert "value" not in variable and "secretKeyRef" in variable.get("valueFrom", {}), (
                    f"{obj['metadata']['name']}: {variable['name']}")


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_pods_that_never_call_the_api_server_carry_no_token(value_set):
    for obj, spec in workloads(rendered(value_set)):
        if "serviceAccountName" not in spec:
            assert spec.get("automountServiceAccountToken") is False, obj["metadata"]["name"]
