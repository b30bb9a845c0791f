"""A python-based Triton backend named `onnxruntime`, for local mode.

The tritonserver binary of the nvidia-pytriton wheel has only the python backend. Installed as
<backend-directory>/onnxruntime/model.py, this file lets a standard ONNX model repository
(`platform: "onnxruntime_onnx"`) load unchanged: Triton finds no libtriton_onnxruntime.so there and runs this file
through the python backend. On a cluster the official Triton image uses its real onnxruntime backend instead.
"""

import json
import os

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils


def session_options(config):
    """ONNX Runtime's options for a model's config.pbtxt: the real backend's `intra_op_thread_count` and
    `inter_op_thread_count` parameters, and any `session.*` parameter as a session config entry of ONNX Runtime.

    Threads do not spin between operators (session.intra_op.allow_spinning 0) unless the config says so: in local
    mode Triton shares a few cores with the gateway and its clients, and a thread that busy-waits holds a core that
    Triton's HTTP threads and the caller need. On an idle machine spinning saves a few context switches; on 2
    shared cores it cost more than it saved (docs/benchmarks.md)."""
    parameters = {key: value.get("string_value", "") for key, value in (config.get("parameters") or {}).items()}
    options = onnxruntime.SessionOptions()
    if parameters.get("intra_op_thread_count"):
        options.intra_op_num_threads = int(parameters["intra_op_thread_count"])
    if parameters.get("inter_op_thread_count"):
        options.inter_op_num_threads = int(parameters["inter_op_thread_count"])
    entries = {"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0"}
    entries.update({key: value for key, value in parameters.items() if key.startswith("session.")})
    for key, value in entries.items():
        options.add_session_config_entry(key, value)
    return options


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        # For an s3:// repository Triton has already copied the model folder to a local temporary one.
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        self.session = onnxruntime.InferenceSession(path, session_options(config), providers=["CPUExecutionProvider"])
        self.input_names = [i["name"] for i in config["input"]]
        # Outputs take the data type that config.pbtxt declares: that is what clients expect.
        self.outputs = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config["output"]}
        self.batched = config.get("max_batch_size", 0) > 0

    def _run(self, feeds):
        results = self.session.run(list(self.outputs), feeds)
        named = zip(self.outputs, results, strict=True)
        return {name: np.ascontiguousarray(r, dtype=self.outputs[name]) for name, r in named}

    def execute(self, requests):
        feeds = [{n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.input_names} for r in requests]
        if self.batched and len(requests) > 1:
            # The dynamic batcher hands over several requests: run them as one batch, then give each its rows.
            merged = self._run({n: np.concatenate([f[n] for f in feeds]) for n in self.input_names})
            ends = np.cumsum([len(f[self.input_names[0]]) for f in feeds])
            per_request = [{n: v[end - len(f[self.input_names[0]]):end] for n, v in merged.items()}
                           for f, end in zip(feeds, ends, strict=True)]
        else:
            per_request = [self._run(f) for f in feeds]
        return [self._response(outputs) for outputs in per_request]

    @staticmethod
    def _response(outputs):
        tensors = [pb_utils.Tensor(name, value) for name, value in outputs.items()]  # contiguous: rows of _run's
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self):
        self.session = None
