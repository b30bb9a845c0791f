"""Kubernetes objects built from the reconcile core's plans: the training Job, and each project's Triton
Deployment and Service. Pure functions: the same plan gives the same object, so applying it again is a no-op."""

from __future__ import annotations

from typing import Any

from kubevision.core.api import CustomVisionProject, Iteration
from kubevision.core.labels import labels, triton_name
from kubevision.core.settings import OperatorSettings, S3Settings
from kubevision.core.storage import ModelRepositoryLayout
from kubevision.core.training import ExitCode, TrainingRequest
from kubevision.operator.reconcile import TrainingJob

GPU = "nvidia.com/gpu"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"  # the LocalQueue Kueue admits a Job through
# Beyond the training budget, time for the pod to start, load the data and export the model.
JOB_DEADLINE_MARGIN_SECONDS = 600
TRITON_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
# The users the images run as: KubeVision's own (images/Dockerfile) and NVIDIA's `triton-server` user of Triton's.
TRAINER_UID = 10001
TRITON_UID = 1000
# Every root filesystem is read-only: what a process writes goes to an emptyDir at /tmp, its home and caches too.
SCRATCH = "/tmp"
TRAINER_SCRATCH_LIMIT = "8Gi"  # the pretrained weights' cache, the exported model before its upload
TRITON_SCRATCH_LIMIT = "4Gi"  # the model repository, copied from S3 before it loads


def owner_reference(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """Makes the child go when its owner goes (Kubernetes garbage collection)."""
    return {
        "apiVersion": "kubevision.io/v1alpha1", "kind": kind, "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
    }


def _slim_request(request: TrainingRequest) -> str:
    """The request without status, managed fields or annotations: only what the trainer reads."""
    def slim(resource: CustomVisionProject | Iteration):
        meta = resource.metadata
        metadata = {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid, "generation": meta.generation}
        return type(resource).model_validate({"metadata": metadata, "spec": resource.spec.model_dump(by_alias=True)})

    return TrainingRequest(project=slim(request.project), iteration=slim(request.iteration)).model_dump_json(
        by_alias=True, exclude_none=True
    )


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _request_gpus(pod_spec: dict[str, Any], count: int, settings: OperatorSettings) -> None:
    """GPU limits on the pod's container, and the toleration of the GPU nodes' taint."""
    if count:
        pod_spec["containers"][0]["resources"]["limits"][GPU] = str(count)
        if settings.gpu_tolerations:
            pod_spec["tolerations"] = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]


def _restricted(pod_spec: dict[str, Any], uid: int, scratch_limit: str) -> None:
    """The Pod Security Standard "restricted" on the pod and each container: a fixed non-root user, the runtime's
    seccomp profile, no privilege escalation, no capabilities, a read-only root filesystem and writable scratch."""
    pod_spec["securityContext"] = {
        "runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod_spec["automountServiceAccountToken"] = False  # neither the trainer nor Triton calls the API server
    pod_spec["volumes"] = [{"name": "scratch", "emptyDir": {"sizeLimit": scratch_limit}}]
    for container in pod_spec["containers"]:
        container["securityContext"] = {
            "runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        container["volumeMounts"] = [{"name": "scratch", "mountPath": SCRATCH}]
        container["env"] += [{"name": "HOME", "value": SCRATCH}, {"name": "TMPDIR", "value": SCRATCH}]


def training_job(
    train: TrainingJob, iteration_body: dict[str, Any], settings: OperatorSettings, s3: S3Settings
) -> dict[str, Any]:
    project = train.request.project.metadata.name
    job_labels = labels("trainer", project, train.request.iteration.metadata.name)
    resources: dict[str, Any] = {
        "requests": {"cpu": settings.training_cpu, "memory": settings.training_memory},
        "limits": {"memory": settings.training_memory},
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{
            "name": "trainer",
            "image": settings.trainer_image,
            "command": ["python", "-m", "kubevision.trainer"],
            "env": [
                {"name": "KUBEVISION_TRAINING_REQUEST", "value": _slim_request(train.request)},
                {"name": "KUBEVISION_S3_ENDPOINT", "value": s3.endpoint},
                {"name": "KUBEVISION_S3_SECURE", "value": str(s3.secure).lower()},
                {"name": "KUBEVISION_S3_MODELS_BUCKET", "value": s3.models_bucket},
                _secret_env("KUBEVISION_S3_ACCESS_KEY", settings.s3_secret_name, "accessKey"),
                _secret_env("KUBEVISION_S3_SECRET_KEY", settings.s3_secret_name, "secretKey"),
                {"name": "KUBEVISION_MLFLOW_TRACKING_URI", "value": settings.mlflow_tracking_uri},
                {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
                # caches of the pretrained networks and of matplotlib, on the writable scratch volume
                {"name": "TORCH_HOME", "value": f"{SCRATCH}/torch"},
                {"name": "HF_HOME", "value": f"{SCRATCH}/huggingface"},
                {"name": "MPLCONFIGDIR", "value": f"{SCRATCH}/matplotlib"},
            ],
            "resources": resources,
            "terminationMessagePolicy": "File",  # the trainer writes its result there
        }],
    }
    _restricted(pod_spec, TRAINER_UID, TRAINER_SCRATCH_LIMIT)
    _request_gpus(pod_spec, train.gpus, settings)
    queue = settings.kueue_queue_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": train.name, "namespace": train.request.iteration.metadata.namespace,
            "labels": {**job_labels, KUEUE_QUEUE_LABEL: queue} if queue else job_labels,
            "ownerReferences": [owner_reference("Iteration", iteration_body)],
        },
        "spec": {
            # Kueue admits it by its ClusterQueue's quota, unsuspending it; the deadline counts from then on
            **({"suspend": True} if queue else {}),
            "backoffLimit": settings.training_backoff_limit,
            "activeDeadlineSeconds": train.options.budget_minutes * 60 + JOB_DEADLINE_MARGIN_SECONDS,
            "podFailurePolicy": {"rules": [
                # a dataset that cannot train fails at once: retrying cannot help
                {"action": "FailJob", "onExitCodes": {"containerName": "trainer", "operator": "In",
                                                      "values": [int(ExitCode.INVALID_DATASET)]}},
                # an evicted or preempted pod is not the trainer's fault: run it again, uncounted
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]},
            "template": {"metadata": {"labels": job_labels}, "spec": pod_spec},
        },
    }


def triton_deployment(
    project_body: dict[str, Any], models: list[str], settings: OperatorSettings, s3: S3Settings
) -> dict[str, Any]:
    """One Triton a project, reading the project's model repository from S3 and loading the published models."""
    meta = project_body["metadata"]
    name = triton_name(meta["name"])
    selector = {"app.kubernetes.io/name": "kubevision-triton", "kubevision.io/project": meta["name"]}
    repository = ModelRepositoryLayout(s3.models_bucket, meta["namespace"], meta["name"])
    args = [
        f"--model-repository={repository.triton_uri(s3)}",
        "--model-control-mode=explicit",
        *(f"--load-model={model}" for model in sorted(models)),
        "--disable-auto-complete-config",
    ]
    resources: dict[str, Any] = {
        "requests": {"cpu": settings.triton_cpu, "memory": settings.triton_memory},
        "limits": {"memory": settings.triton_memory},
    }
    pod_spec: dict[str, Any] = {
        "containers": [{
            "name": "triton",
            "image": settings.triton_image,
            "command": ["tritonserver"],
            "args": args,
            "env": [
                _secret_env("AWS_ACCESS_KEY_ID", settings.s3_secret_name, "accessKey"),
                _secret_env("AWS_SECRET_ACCESS_KEY", settings.s3_secret_name, "secretKey"),
                {"name": "AWS_DEFAULT_REGION", "value": "us-east-1"},
            ],
            "ports": [{"name": port, "containerPort": number} for port, number in TRITON_PORTS.items()],
            "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 5},
            "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 15,
                              "failureThreshold": 4},
            "resources": resources,
        }],
    }
    _restricted(pod_spec, TRITON_UID, TRITON_SCRATCH_LIMIT)
    _request_gpus(pod_spec, settings.triton_gpus, settings)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name, "namespace": meta["namespace"], "labels": labels("triton", meta["name"]),
            "ownerReferences": [owner_reference("CustomVisionProject", project_body)],
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": labels("triton", meta["name"]),
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8002",
                                    "prometheus.io/path": "/metrics"},
                },
                "spec": pod_spec,
            },
        },
    }


def triton_service(project_body: dict[str, Any]) -> dict[str, Any]:
    meta = project_body["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": triton_name(meta["name"]), "namespace": meta["namespace"], "labels": labels("triton", meta["name"]),
            "ownerReferences": [owner_reference("CustomVisionProject", project_body)],
        },
        "spec": {
            "selector": {"app.kubernetes.io/name": "kubevision-triton", "kubevision.io/project": meta["name"]},
            "ports": [{"name": port, "port": number, "targetPort": port} for port, number in TRITON_PORTS.items()],
        },
    }


def triton_endpoint(project: str, namespace: str) -> str:
    return f"http://{triton_name(project)}.{namespace}.svc:{TRITON_PORTS['http']}"


def loaded_models(deployment: dict[str, Any]) -> tuple[str, ...]:
    """The models a Triton Deployment is asked to load, read back from its arguments."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return tuple(a.removeprefix("--load-model=") for a in container.get("args", []) if a.startswith("--load-model="))


def drifted(wanted: Any, actual: Any) -> bool:
    """Whether `actual` lost or changed anything of `wanted`. What the API server adds (defaults, status) is no
    drift, so a real cluster's objects compare equal to the ones built here."""
    if isinstance(wanted, dict):
        return not isinstance(actual, dict) or any(drifted(value, actual.get(key)) for key, value in wanted.items())
    if isinstance(wanted, list):
        return not isinstance(actual, list) or len(wanted) != len(actual) or any(
            drifted(w, a) for w, a in zip(wanted, actual, strict=True))
    return wanted != actual
