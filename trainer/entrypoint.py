"""The trainer process: what a training Job runs (`python -m kubevision.trainer`) and local mode starts.

Input: a TrainingRequest as JSON, from --request FILE or the KUBEVISION_TRAINING_REQUEST variable; S3 and MLflow
settings from the environment (kubevision.core.settings). Output: the TrainingResult as the last line of standard
output and as the Job's termination message (a summary, with the whole result in S3, when it exceeds 4 KiB); the
exit code tells a bad dataset (2) from a crash (1).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import torch

from kubevision.core import results
from kubevision.core.settings import MLflowSettings, S3Settings
from kubevision.core.storage import ObjectStore
from kubevision.core.training import ExitCode, TrainingRequest, iteration_id

log = logging.getLogger("kubevision.trainer")

TERMINATION_LOG = "/dev/termination-log"  # where Kubernetes reads a container's termination message


def read_request(path: Path | None) -> TrainingRequest:
    if path is not None:
        return TrainingRequest.model_validate_json(path.read_text())
    inline = os.environ.get("KUBEVISION_TRAINING_REQUEST")
    if not inline:
        raise ValueError("no training request: pass --request FILE or set KUBEVISION_TRAINING_REQUEST")
    return TrainingRequest.model_validate_json(inline)


def write_termination_message(message: str) -> None:
    """The kubelet creates the file, writable for the container's user, in a folder that is root's: write the
    file itself. Outside a pod (no such file, no variable) there is nothing to write."""
    explicit = os.environ.get("KUBEVISION_TERMINATION_LOG")
    path = Path(explicit or TERMINATION_LOG)
    if explicit or path.exists():
        path.write_text(message)


def run(request_path: Path | None, s3: S3Settings | None = None, mlflow: MLflowSettings | None = None) -> ExitCode:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    torch.set_num_threads(os.cpu_count() or 1)
    from kubevision.trainer.run import train  # after logging is set up: importing torch and mlflow takes seconds

    request = read_request(request_path)
    log.info("training %s/%s of project %s on %s", request.iteration.metadata.namespace,
             request.iteration.metadata.name, request.project.metadata.name,
             "CUDA" if torch.cuda.is_available() else "CPU")
    s3 = s3 or S3Settings()
    result = train(request, s3, mlflow or MLflowSettings())
    write_termination_message(results.termination_message(
        result, ObjectStore(s3), request.iteration.metadata.namespace, iteration_id(request.iteration)))
    print(result.model_dump_json(exclude_none=True), flush=True)
    return result.exit_code
