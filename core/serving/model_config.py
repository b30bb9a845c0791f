"""What every served model shares, whatever its task: the input's name, the config.pbtxt template, and the
parameters in it that the gateway reads back (the task: a classifier's config names none; the backbone)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubevision.core.domains import Backbone

INPUT = "images"  # float32 [batch, 3, size, size], pixels in [0, 1]
MAX_BATCH_SIZE = 32
CLASSIFICATION, DETECTION = "classification", "detection"  # the values of TASK_PARAMETER
TASK_PARAMETER = "kubevision.task"
ARCHITECTURE_PARAMETER = "kubevision.architecture"
RESIZE_PARAMETER = "kubevision.resize_size"  # a classifier's: the shorter side before its centre crop


@dataclass(frozen=True)
class Output:
    """One output tensor as config.pbtxt declares it (dims past the batch)."""

    name: str
    data_type: str  # TYPE_FP32, TYPE_INT64
    dims: tuple[int, ...]
    labelled: bool = False  # its positions or values are rows of labels.txt

    def declaration(self) -> str:
        labels = ' label_filename: "labels.txt"' if self.labelled else ""
        dims = ", ".join(str(dim) for dim in self.dims)
        return f'  {{ name: "{self.name}" data_type: {self.data_type} dims: [ {dims} ]{labels} }}'


def triton_config(model_name: str, size: int, outputs: list[Output], parameters: Mapping[str, object],
                  queue_delay_microseconds: int = 0) -> str:
    """A complete config: Triton needs no auto-completion, and no instance_group (Triton picks per device)."""
    declared = ",\n".join(output.declaration() for output in outputs)
    delay = f"max_queue_delay_microseconds: {queue_delay_microseconds} " if queue_delay_microseconds else ""
    named = "".join(f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'
                    for key, value in parameters.items())
    return f"""name: "{model_name}"
platform: "onnxruntime_onnx"
max_batch_size: {MAX_BATCH_SIZE}
input [
  {{ name: "{INPUT}" data_type: TYPE_FP32 dims: [ 3, {size}, {size} ] }}
]
output [
{declared}
]
dynamic_batching {{ {delay}}}
{named}"""


@dataclass(frozen=True)
class ServedConfig:
    """What a served model's config says of it: its task, and its backbone (a detector's: its architecture and
    input size alone, since it stretches and never crops)."""

    task: str
    backbone: Backbone


def read_config(config: Mapping[str, Any]) -> ServedConfig:
    """The model's task and backbone from its config as Triton returns it (JSON). ValueError when a classifier's
    resize does not follow from its input size (the gateway would crop differently from the trainer)."""
    size = int(config["input"][0]["dims"][-1])
    parameters = {key: value["string_value"] for key, value in (config.get("parameters") or {}).items()}
    task = parameters.get(TASK_PARAMETER, CLASSIFICATION)
    backbone = Backbone(parameters.get(ARCHITECTURE_PARAMETER, ""), "", size)
    resize = int(parameters.get(RESIZE_PARAMETER, backbone.resize_size))
    if task != DETECTION and resize != backbone.resize_size:
        raise ValueError(f"resizes to {resize}, which its input size does not imply")
    return ServedConfig(task, backbone)
