"""What every task's export shares: ONNX with fixed names and a dynamic batch, and the model's folder (ONNX,
config.pbtxt, labels) in the project's Triton model repository and the MLflow run. The names, shapes and config
of each task come from kubevision.core.serving; layout and keys from kubevision.core.storage."""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from kubevision.core.api import CustomVisionProject, Iteration
from kubevision.core.heldout import HeldOut
from kubevision.core.serving.model_config import INPUT
from kubevision.core.settings import S3Settings
from kubevision.core.storage import ModelRepositoryLayout, ObjectStore, held_out_key, retrying
from kubevision.core.training import iteration_id

if TYPE_CHECKING:  # MLflow is imported only where a run is recorded
    from kubevision.trainer.tracking import Tracker

OPSET = 17


def onnx_model(network: nn.Module, size: int, outputs: tuple[str, ...]) -> bytes:
    """The network in ONNX: INPUT in, `outputs` out, each with a dynamic batch."""
    network.eval()
    example = torch.rand(2, 3, size, size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated, and needs no extra package
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network, (example,), buffer, input_names=[INPUT], output_names=list(outputs),
            dynamic_axes={name: {0: "batch"} for name in (INPUT, *outputs)}, opset_version=OPSET, dynamo=False,
        )
    return buffer.getvalue()


def upload(
    store: ObjectStore, repository: ModelRepositoryLayout, model_name: str, onnx: bytes, config: str, tags: list[str]
) -> str:
    """Write the model's folder and return its S3 URI. config.pbtxt goes last: a reader that sees it sees a
    complete folder."""
    store.ensure_bucket(repository.bucket)
    store.put(repository.bucket, repository.model_key(model_name, "1/model.onnx"), onnx)
    store.put(repository.bucket, repository.model_key(model_name, "labels.txt"), "\n".join(tags).encode() + b"\n")
    store.put(repository.bucket, repository.model_key(model_name, "config.pbtxt"), config.encode())
    return f"s3://{repository.bucket}/{repository.model_key(model_name, '')}"


def store_model(store: ObjectStore, s3: S3Settings, project: CustomVisionProject, model_name: str,
                model: tuple[bytes, str, list[str]], tracker: Tracker) -> tuple[str, tuple[str, str]]:
    """The model folder (ONNX, config, labels) in the project's Triton repository and in the MLflow run, where it
    is registered: (its S3 URI, (registered model, version))."""
    onnx, config, tags = model
    repository = ModelRepositoryLayout(s3.models_bucket, project.metadata.namespace, project.metadata.name)
    model_uri = upload(store, repository, model_name, onnx, config, tags)
    with tempfile.TemporaryDirectory() as folder:
        files = {"model.onnx": onnx, "config.pbtxt": config.encode(), "labels.txt": "\n".join(tags).encode()}
        for name, content in files.items():
            (Path(folder) / name).write_bytes(content)
            tracker.file(str(Path(folder) / name), "model")
    return model_uri, tracker.register("model")


def store_held_out(store: ObjectStore, s3: S3Settings, iteration: Iteration, held_out: HeldOut) -> None:
    """The held-out predictions beside the iteration's result, where the training API reads them."""
    key = held_out_key(iteration.metadata.namespace, iteration_id(iteration))
    retrying(lambda: store.put(s3.models_bucket, key, held_out.model_dump_json().encode(), "application/json"),
             "the held-out predictions")
