"""MLflow: one run per iteration (params, per-epoch and final metrics, plots, labels, the ONNX model, the result)
and one registered model version per trained iteration, tagged back to the Iteration."""

from __future__ import annotations

import json
import logging
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display in a Job

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

from kubevision.core import tracking  # noqa: E402
from kubevision.core.api import CustomVisionProject, Iteration  # noqa: E402

log = logging.getLogger(__name__)

ITERATION_TAG = "kubevision.io/iteration"
PROJECT_TAG = "kubevision.io/project"


def experiment_name(project: CustomVisionProject) -> str:
    return f"kubevision/{project.metadata.namespace}/{project.metadata.name}"


def registered_model_name(project: CustomVisionProject) -> str:
    return tracking.registered_model_name(project.metadata.namespace, project.metadata.name)


class Tracker:
    def __init__(self, tracking_uri: str, project: CustomVisionProject, iteration: Iteration):
        self.client = MlflowClient(tracking_uri)
        self.project = project
        self.iteration = iteration
        name = experiment_name(project)
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        self.run_id = self.client.create_run(
            experiment_id, run_name=iteration.metadata.name, tags=self._tags()
        ).info.run_id
        log.info("MLflow run %s in experiment %s", self.run_id, name)

    def _tags(self) -> dict[str, str]:
        return {
            ITERATION_TAG: f"{self.iteration.metadata.namespace}/{self.iteration.metadata.name}",
            PROJECT_TAG: f"{self.project.metadata.namespace}/{self.project.metadata.name}",
            tracking.UID_TAG: self.iteration.metadata.uid or "",
        }

    def params(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            self.client.log_param(self.run_id, key, value)

    def metric(self, key: str, value: float, step: int | None = None) -> None:
        self.client.log_metric(self.run_id, key, float(value), step=step)

    def text(self, text: str, path: str) -> None:
        self.client.log_text(self.run_id, text, path)

    def json(self, value: Any, path: str) -> None:
        self.client.log_text(self.run_id, json.dumps(value, indent=2), path)

    def file(self, local_path: str, directory: str) -> None:
        self.client.log_artifact(self.run_id, local_path, directory)

    def figure(self, figure, path: str) -> None:
        self.client.log_figure(self.run_id, figure, path)
        plt.close(figure)

    def image(self, image, path: str) -> None:
        self.client.log_image(self.run_id, image, artifact_file=path)

    def confusion_matrix(self, matrix: np.ndarray, tags: list[str]) -> None:
        figure, axes = plt.subplots(figsize=(1 + 0.6 * len(tags), 1 + 0.6 * len(tags)))
        axes.imshow(matrix, cmap="Blues")
        axes.set_xticks(range(len(tags)), tags, rotation=90)
        axes.set_yticks(range(len(tags)), tags)
        axes.set_xlabel("predicted")
        axes.set_ylabel("actual")
        for (row, column), count in np.ndenumerate(matrix):
            axes.text(column, row, str(count), ha="center", va="center", fontsize=8)
        figure.tight_layout()
        self.client.log_figure(self.run_id, figure, "plots/confusion_matrix.png")
        plt.close(figure)

    def precision_recall_curves(self, targets: np.ndarray, probabilities: np.ndarray, tags: list[str]) -> None:
        figure, axes = plt.subplots(figsize=(6, 5))
        for i, tag in enumerate(tags):
            if targets[:, i].any():
                precision, recall, _ = precision_recall_curve(targets[:, i], probabilities[:, i])
                axes.plot(recall, precision, label=tag)
        axes.set_xlabel("recall")
        axes.set_ylabel("precision")
        axes.legend(fontsize=7)
        figure.tight_layout()
        self.client.log_figure(self.run_id, figure, "plots/precision_recall.png")
        plt.close(figure)

    def register(self, artifact_path: str) -> tuple[str, str]:
        """A new version of the project's registered model, pointing at the run's model artifact."""
        name = registered_model_name(self.project)
        try:
            self.client.create_registered_model(name, tags={PROJECT_TAG: self._tags()[PROJECT_TAG]})
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        run = self.client.get_run(self.run_id)
        version = self.client.create_model_version(
            name, source=f"{run.info.artifact_uri}/{artifact_path}", run_id=self.run_id, tags=self._tags()
        )
        return name, version.version

    def finish(self, succeeded: bool) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if succeeded else "FAILED")
