"""Names and labels of the objects KubeVision creates, from one place."""

from __future__ import annotations

PART_OF = "kubevision"
MANAGED_BY = "kubevision-operator"
PROJECT_LABEL = "kubevision.io/project"
ITERATION_LABEL = "kubevision.io/iteration"
MODEL_PREFIX = "kv-"  # a served model's name is this and its Iteration's uid (model_name)


def labels(component: str, project: str, iteration: str | None = None) -> dict[str, str]:
    """Standard app.kubernetes.io labels plus the project (and iteration) an object belongs to."""
    result = {
        "app.kubernetes.io/name": f"kubevision-{component}",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        PROJECT_LABEL: project,
    }
    if iteration is not None:
        result[ITERATION_LABEL] = iteration
    return result


def model_name(iteration_uid: str | None) -> str:
    """The name Triton serves an Iteration's model by, which is also its folder in the model repository. From the
    Iteration's uid, not its name: projects of two namespaces, or a project deleted and made again, may have
    Iterations of the same name, and one Triton (local mode's, a shared pool) serves them all. One Iteration keeps
    its model name, so a republish serves the same model."""
    if not iteration_uid:
        raise ValueError("an Iteration without a uid has no model name: the API server has not stored it")
    return f"{MODEL_PREFIX}{iteration_uid}"


def triton_name(project: str) -> str:
    """The Deployment and Service serving a project's published models."""
    return f"kv-triton-{project}"[:63].rstrip("-")
