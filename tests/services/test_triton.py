"""The local Triton loads a standard ONNX model repository from S3 and answers over HTTP and gRPC."""

import numpy as np
import onnx
import onnxruntime
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from onnx import TensorProto, helper, numpy_helper

from kubevision.core.storage import ModelRepositoryLayout, ObjectStore

CONFIG = """
name: "tiny"
platform: "onnxruntime_onnx"
max_batch_size: 16
input [ { name: "input", data_type: TYPE_FP32, dims: [ 3, 4, 4 ] } ]
output [ { name: "probabilities", data_type: TYPE_FP32, dims: [ 2 ] } ]
dynamic_batching { }
"""


def tiny_classifier() -> bytes:
    """Flatten, MatMul, Softmax: a real ONNX graph with a dynamic batch dimension."""
    weights = np.random.default_rng(0).normal(size=(48, 2)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "weights"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 4, 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def served_model(platform):
    s3 = platform.s3_settings()
    repository = ModelRepositoryLayout(s3.models_bucket, "tests", "foundation")
    store = ObjectStore(s3)
    model = tiny_classifier()
    store.put(repository.bucket, repository.model_key("tiny", "config.pbtxt"), CONFIG.encode())
    store.put(repository.bucket, repository.model_key("tiny", "1/model.onnx"), model)
    platform.restart_triton()  # Triton reads its list of repositories at start
    triton = platform.triton_settings()
    triton_http.InferenceServerClient(triton.http_url).load_model("tiny")
    return model


def expected(model: bytes, batch: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"input": batch})[0]


@pytest.mark.parametrize("batch_size", [1, 5])
def test_prediction_over_http(platform, served_model, batch_size):
    batch = np.random.default_rng(batch_size).normal(size=(batch_size, 3, 4, 4)).astype(np.float32)
    client = triton_http.InferenceServerClient(platform.triton_settings().http_url)
    request = triton_http.InferInput("input", list(batch.shape), "FP32")
    request.set_data_from_numpy(batch)
    result = client.infer("tiny", [request]).as_numpy("probabilities")
    np.testing.assert_allclose(result, expected(served_model, batch), atol=1e-6)
    assert result.shape == (batch_size, 2)


def test_prediction_over_grpc(platform, served_model):
    batch = np.random.default_rng(7).normal(size=(3, 3, 4, 4)).astype(np.float32)
    client = triton_grpc.InferenceServerClient(platform.triton_settings().grpc_url)
    assert client.is_model_ready("tiny")
    request = triton_grpc.InferInput("input", list(batch.shape), "FP32")
    request.set_data_from_numpy(batch)
    result = client.infer("tiny", [request]).as_numpy("probabilities")
    np.testing.assert_allclose(result, expected(served_model, batch), atol=1e-6)
