"""The objects the operator creates are valid Kubernetes objects, carry no inline credentials, and say what the
issue asks: deterministic names, owners, GPUs and tolerations, the budget as a deadline."""

import json
from datetime import UTC, datetime

import kubernetes_validate
import pytest

from kubevision.core.api import CustomVisionProject, Iteration
from kubevision.core.labels import model_name
from kubevision.core.settings import OperatorSettings, S3Settings
from kubevision.core.training import TrainingRequest
from kubevision.operator import objects, reconcile

SETTINGS = OperatorSettings()
S3 = S3Settings(endpoint="minio.kubevision.svc:9000")
PROJECT_BODY = {"apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject",
                "metadata": {"name": "pets", "namespace": "ml", "uid": "p-uid", "generation": 1,
                             "managedFields": [{"manager": "kubectl"}]},
                "spec": {"displayName": "Pets", "dataset": {"bucket": "data", "prefix": "ml/pets/"}},
                "status": {"phase": "Ready"}}
ITERATION_BODY = {"apiVersion": "kubevision.io/v1alpha1", "kind": "Iteration",
                  "metadata": {"name": "pets-1", "namespace": "ml", "uid": "0a1b2c3d-4444", "generation": 1,
                               "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
                  "spec": {"projectRef": {"name": "pets"}, "budgetMinutes": 20, "resources": {"gpus": 2}}}


def job(gpus: int = 2, settings: OperatorSettings = SETTINGS) -> dict:
    body = json.loads(json.dumps(ITERATION_BODY))
    body["spec"]["resources"]["gpus"] = gpus
    project = CustomVisionProject.model_validate(PROJECT_BODY)
    iteration = Iteration.model_validate(body)
    plan = reconcile.TrainingJob(name="pets-1-0a1b2c3d", gpus=gpus,
                                 options=reconcile.resolve_training(project, iteration),
                                 request=TrainingRequest(project=project, iteration=iteration))
    return objects.training_job(plan, body, settings, S3)


@pytest.mark.parametrize(
    "manifest",
    [job(), job(gpus=0), job(settings=OperatorSettings(kueue_queue_name="training")),
     objects.triton_deployment(PROJECT_BODY, ["pets-1"], SETTINGS, S3), objects.triton_service(PROJECT_BODY)],
    ids=["job-gpu", "job-cpu", "job-kueue", "deployment", "service"],
)
def test_objects_are_valid_kubernetes(manifest):
    kubernetes_validate.validate(manifest, "1.37.0", strict=True)


def test_the_training_job():
    manifest = job()
    assert manifest["metadata"]["name"] == "pets-1-0a1b2c3d"
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "0a1b2c3d-4444"
    assert manifest["spec"]["activeDeadlineSeconds"] == 20 * 60 + objects.JOB_DEADLINE_MARGIN_SECONDS
    pod = manifest["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "tolerations" not in job(gpus=0)["spec"]["template"]["spec"]
    rules = manifest["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["onExitCodes"]["values"] == [2] and rules[0]["action"] == "FailJob"


def test_with_kueue_the_job_is_created_suspended_in_the_local_queue():
    """Kueue admits a Job by unsuspending it; it finds the Job's LocalQueue in the Job's label (not its pods')."""
    queued = job(settings=OperatorSettings(kueue_queue_name="training"))
    assert queued["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "training"
    assert queued["spec"]["suspend"] is True
    assert "kueue.x-k8s.io/queue-name" not in queued["spec"]["template"]["metadata"]["labels"]
    plain = job()
    assert "kueue.x-k8s.io/queue-name" not in plain["metadata"]["labels"] and "suspend" not in plain["spec"]


@pytest.mark.parametrize("name", ["Training", "team_a", "a" * 64, "-queue"])
def test_a_kueue_queue_name_that_is_no_label_value_is_refused(name):
    with pytest.raises(ValueError, match="kueue_queue_name"):
        OperatorSettings(kueue_queue_name=name)


def test_credentials_are_secret_references_and_the_request_is_slim():
    env = {e["name"]: e for e in job()["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name in ("KUBEVISION_S3_ACCESS_KEY", "KUBEVISION_S3_SECRET_KEY"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"] == "kubevision-s3"
    request = json.loads(env["KUBEVISION_TRAINING_REQUEST"]["value"])
    assert set(request["project"]["metadata"]) == {"name", "namespace", "uid", "generation"}
    assert "status" not in request["iteration"] or request["iteration"]["status"] == {"conditions": []}
    assert TrainingRequest.model_validate(request).iteration.spec.resources.gpus == 2


def test_the_triton_deployment_serves_the_published_models_from_s3():
    deployment = objects.triton_deployment(PROJECT_BODY, ["pets-2", "pets-1"], SETTINGS, S3)
    assert deployment["metadata"]["name"] == "kv-triton-pets"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--model-repository=s3://minio.kubevision.svc:9000/kubevision-models/triton/ml/pets" in container["args"]
    assert objects.loaded_models(deployment) == ("pets-1", "pets-2")
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "8002"
    assert objects.triton_endpoint("pets", "ml") == "http://kv-triton-pets.ml.svc:8000"


def test_same_named_projects_of_two_namespaces_load_different_models():
    """Each Deployment loads its own Iterations' models, by uid: "pets-1" of ml and of another namespace (or of
    "pets" deleted and made again) are two models, in one Triton as in two."""
    trained = {"conditions": [{"type": "Trained", "status": "True"}]}

    def loaded(namespace: str, uid: str) -> tuple[str, ...]:
        project = {**PROJECT_BODY, "metadata": {**PROJECT_BODY["metadata"], "namespace": namespace}}
        iteration = {**ITERATION_BODY, "metadata": {**ITERATION_BODY["metadata"], "namespace": namespace, "uid": uid},
                     "spec": {**ITERATION_BODY["spec"], "publishName": "v1"}, "status": trained}
        return objects.loaded_models(objects.triton_deployment(project, reconcile.served_models([iteration]),
                                                               SETTINGS, S3))

    ours, theirs = loaded("ml", "0a1b2c3d-4444"), loaded("other", "9f8e7d6c-5555")
    assert ours == (model_name("0a1b2c3d-4444"),) and theirs == (model_name("9f8e7d6c-5555"),)
    assert ours != theirs and ours == loaded("ml", "0a1b2c3d-4444")  # stable for one Iteration


def test_the_job_is_named_after_the_iteration_object_so_a_retried_create_adopts_it():
    ready = CustomVisionProject.model_validate({**PROJECT_BODY, "status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "Ready", "lastTransitionTime": "2026-11-25T12:00:00Z"}]}})

    def planned_job(body: dict) -> dict:
        plan = reconcile.reconcile_iteration(Iteration.model_validate(body), reconcile.IterationObservation(
            project=ready), datetime(2026, 11, 25, 12, tzinfo=UTC))
        return objects.training_job(plan.train, body, SETTINGS, S3)

    first = planned_job(ITERATION_BODY)
    assert first["metadata"]["name"] == "pets-1-0a1b2c3d"  # the Iteration's name and the start of its uid
    assert planned_job(ITERATION_BODY) == first  # a retried reconcile builds the same Job: its create is a 409
    recreated = {**ITERATION_BODY, "metadata": {**ITERATION_BODY["metadata"], "uid": "9f8e7d6c-5555"}}
    assert planned_job(recreated)["metadata"]["name"] == "pets-1-9f8e7d6c"  # a new object trains anew
    long_name = {**ITERATION_BODY, "metadata": {**ITERATION_BODY["metadata"], "name": "n" * 253}}
    assert len(planned_job(long_name)["metadata"]["name"]) <= 63  # a Job name is a DNS label


def test_the_training_spec_hash_follows_what_training_reads():
    base = Iteration.model_validate(ITERATION_BODY)
    published = Iteration.model_validate({**ITERATION_BODY, "spec": {**ITERATION_BODY["spec"], "publishName": "v1"}})
    longer = Iteration.model_validate({**ITERATION_BODY, "spec": {**ITERATION_BODY["spec"], "budgetMinutes": 30}})
    assert reconcile.training_spec_hash(published) == reconcile.training_spec_hash(base)
    assert reconcile.training_spec_hash(longer) != reconcile.training_spec_hash(base)


# The Pod Security Standard "restricted" (kubernetes.io/docs/concepts/security/pod-security-standards), as the
# chart's own pods are held to it in test_chart_policy.py.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def restricted_violations(pod: dict) -> list[str]:
    """What in a pod spec the restricted profile refuses (empty: it is admitted)."""
    found = []
    security = pod.get("securityContext", {})
    if any(pod.get(host) for host in ("hostNetwork", "hostPID", "hostIPC")):
        found.append("host namespaces")
    found += [f"volume {v['name']}" for v in pod.get("volumes", []) if not set(v) - {"name"} <= RESTRICTED_VOLUMES]
    for container in pod.get("initContainers", []) + pod["containers"]:
        own = container.get("securityContext", {})
        where = container["name"]
        if not (own.get("runAsNonRoot", security.get("runAsNonRoot")) is True
                and own.get("runAsUser", security.get("runAsUser", 0)) > 0):
            found.append(f"{where}: may run as root")
        if own.get("seccompProfile", security.get("seccompProfile")) != {"type": "RuntimeDefault"}:
            found.append(f"{where}: no RuntimeDefault seccomp profile")
        if own.get("allowPrivilegeEscalation") is not False or own.get("privileged"):
            found.append(f"{where}: privilege escalation")
        if own.get("capabilities", {}).get("drop") != ["ALL"] or own.get("capabilities", {}).get("add"):
            found.append(f"{where}: capabilities")
        if own.get("readOnlyRootFilesystem") is not True:
            found.append(f"{where}: writable root filesystem")
        if any(p.get("hostPort") for p in container.get("ports", [])):
            found.append(f"{where}: host port")
    return found


def pod_spec(manifest: dict) -> dict:
    return manifest["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    "manifest",
    [job(), job(gpus=0), objects.triton_deployment(PROJECT_BODY, ["pets-1"], SETTINGS, S3)],
    ids=["job-gpu", "job-cpu", "deployment"],
)
def test_the_pods_the_operator_makes_are_restricted(manifest):
    assert restricted_violations(pod_spec(manifest)) == []
    assert pod_spec(manifest)["automountServiceAccountToken"] is False  # neither calls the API server


def test_the_restricted_check_refuses_a_privileged_pod():
    pod = pod_spec(job())
    pod["containers"][0]["securityContext"] = {"privileged": True}
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    assert len(restricted_violations(pod)) >= 4


@pytest.mark.parametrize(("manifest", "uid"), [
    (job(), 10001),  # images/Dockerfile's kubevision user
    (objects.triton_deployment(PROJECT_BODY, ["pets-1"], SETTINGS, S3), 1000),  # Triton image's triton-server
])
def test_each_pod_runs_as_its_image_user_and_writes_only_to_scratch(manifest, uid):
    pod = pod_spec(manifest)
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["runAsGroup"] == uid
    (container,) = pod["containers"]
    (mount,) = container["volumeMounts"]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "sizeLimit" in volume["emptyDir"]  # a runaway writer is evicted, not the node's disk filled
    env = {e["name"]: e.get("value") for e in container["env"]}
    writable = [name for name in ("HOME", "TMPDIR", "TORCH_HOME", "HF_HOME", "MPLCONFIGDIR") if name in env]
    assert {"HOME", "TMPDIR"} <= set(writable)
    for name in writable:
        assert env[name].startswith(mount["mountPath"]), name
