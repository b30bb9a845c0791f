"""Local mode's python `onnxruntime` backend for Triton: ONNX Runtime's options from a model's config, as Triton
hands it over (config.pbtxt as JSON). Imported as Triton's python backend stub imports it, beside the backend's own
triton_python_backend_utils from the nvidia-pytriton wheel."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import pytriton

import kubevision.local

BACKEND = Path(kubevision.local.__file__).parent / "triton_backend" / "onnxruntime_model.py"
TRITON_UTILS = Path(pytriton.__file__).parent / "tritonserver" / "backends" / "python"


@pytest.fixture(scope="module")
def backend():
    sys.path.insert(0, str(TRITON_UTILS))
    try:
        spec = importlib.util.spec_from_file_location("onnxruntime_model", BACKEND)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(TRITON_UTILS))


def parameters(**values: str) -> dict:
    return {"parameters": {key.replace("__", "."): {"string_value": value} for key, value in values.items()}}


def test_threads_do_not_spin_and_thread_counts_are_onnx_runtimes_by_default(backend):
    options = backend.session_options({"name": "m"})
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (0, 0)


def test_the_real_backends_thread_parameters_and_session_entries_are_honoured(backend):
    options = backend.session_options(parameters(intra_op_thread_count="1", inter_op_thread_count="2",
                                                 session__intra_op__allow_spinning="1"))
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 2)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
