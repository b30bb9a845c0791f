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


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        # For an s3:// repository Triton has already copied the model folder to a local temporary one.
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        options = onnxruntime.SessionOptions()
        threads = config.get("parameters", {}).get("intra_op_thread_count", {}).get("string_value")
        if threads:  # the real backend's parameter, honoured the same way
            options.intra_op_num_threads = int(threads)
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
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
        tensors = [pb_utils.Tensor(name, np.ascontiguousarray(value)) for name, value in outputs.items()]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self):
        self.session = None
