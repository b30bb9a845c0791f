"""Export of a classifier, per kubevision.core.serving.classification: ONNX checked against the trained network.
The model folder's upload is every task's (kubevision.trainer.export)."""

from __future__ import annotations

import numpy as np
import onnxruntime
import torch
from PIL import Image

from kubevision.core.domains import Backbone
from kubevision.core.serving.classification import INPUT, OUTPUT, OUTPUTS
from kubevision.trainer import export
from kubevision.trainer.classification.network import Classifier, batch_inputs

TOLERANCE = 1e-4  # largest difference in probability allowed between the trained and the exported model


def onnx_model(classifier: Classifier, backbone: Backbone) -> bytes:
    return export.onnx_model(classifier, backbone.input_size, OUTPUTS)


def reference_predictions(
    classifier: Classifier, onnx: bytes, backbone: Backbone, images: list[Image.Image]
) -> np.ndarray:
    """The trained network's probabilities for `images`, after checking that the ONNX model gives the same."""
    inputs = batch_inputs(images, backbone)
    with torch.inference_mode():
        expected = classifier.eval()(inputs).numpy()
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    exported = session.run([OUTPUT], {INPUT: inputs.numpy()})[0]
    difference = float(np.abs(exported - expected).max())
    if difference > TOLERANCE:
        raise RuntimeError(f"the ONNX export differs from the trained model by {difference:.2e}")
    return expected
