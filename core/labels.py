"""Names and labels of the objects KubeVision creates, from one place."""

from __future__ import annotations

PART_OF = "kubevision"
MANAGED_BY = "kubevision-operator"
PROJECT_LABEL = "kubevision.io/project"
ITERATION_LABEL = "kubevision.io/iteration"


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


def triton_name(project: str) -> str:
    """The Deployment and Service serving a project's published models."""
    return f"kv-triton-{project}"[:63].rstrip("-")
