"""The detector's parts that need no server: the exported graph keeps the contract of kubevision.core.serving.detection
and gives the PyTorch model's boxes; the metrics are COCO's."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch
from torchvision.ops import box_iou

from kubevision.core.detection_metrics import Predictions, evaluate
from kubevision.core.domains import LITE0
from kubevision.core.serving.detection import BOXES, CLASSES, INPUT, MAX_DETECTIONS, SCORES
from kubevision.trainer.detection import export, network
from kubevision.trainer.detection.data import RegionImages

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def served():
    torch.manual_seed(0)
    detector = network.build(LITE0, classes=3)
    with torch.no_grad():  # an untrained head scores every box alike; a random one gives boxes to suppress
        for parameter in detector.head.parameters():
            parameter.normal_(0, 0.05)
    return network.Served(detector, network.input_size(LITE0)).eval()


@pytest.fixture(scope="module")
def session(served):
    return onnxruntime.InferenceSession(export.onnx_model(served), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch_size", [1, 3])
def test_export_gives_the_pytorch_boxes_in_the_contract_shapes(served, session, batch_size):
    images = torch.rand(batch_size, 3, served.size, served.size, generator=torch.Generator().manual_seed(batch_size))
    boxes, scores, classes = session.run([BOXES, SCORES, CLASSES], {INPUT: images.numpy()})
    assert boxes.shape == (batch_size, MAX_DETECTIONS, 4) and boxes.dtype == np.float32
    assert scores.shape == (batch_size, MAX_DETECTIONS) and classes.dtype == np.int64
    with torch.inference_mode():
        expected = [t.numpy() for t in served(images)]
    np.testing.assert_allclose(scores, expected[1], atol=1e-4)
    np.testing.assert_allclose(boxes, expected[0], atol=1e-4)
    assert (classes == expected[2]).all()
    for row in range(batch_size):
        found = scores[row] > 0
        assert found.sum() > 10  # enough survive suppression for the order and the padding to be checked
        assert (np.diff(scores[row]) <= 0).all()  # descending
        assert (boxes[row][~found] == 0).all() and (scores[row][~found] == 0).all()
        left, top, width, height = boxes[row][found].T
        assert (left >= 0).all() and (top >= 0).all() and (left + width <= 1 + 1e-6).all()
        assert (top + height <= 1 + 1e-6).all() and (classes[row] < 3).all()


def test_suppression_leaves_no_two_boxes_of_a_class_overlapping_much(served, session):
    images = torch.rand(1, 3, served.size, served.size, generator=torch.Generator().manual_seed(9)).numpy()
    boxes, scores, classes = (output[0] for output in session.run([BOXES, SCORES, CLASSES], {INPUT: images}))
    corners = torch.from_numpy(np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1))
    found = scores > 0
    for tag in np.unique(classes[found]):
        chosen = corners[torch.from_numpy(found & (classes == tag))]
        assert torch.triu(box_iou(chosen, chosen), diagonal=1).max() <= network.IOU_THRESHOLD + 1e-6


def box(left, top, right, bottom):
    return np.array([[left, top, right, bottom]], dtype=np.float32)


def test_metrics_count_a_box_right_only_above_both_thresholds():
    truth_boxes = [box(0.1, 0.1, 0.5, 0.5), box(0.5, 0.5, 0.9, 0.9)]
    truth_labels = [np.array([0]), np.array([1])]
    predicted = [
        Predictions(np.array([[0.1, 0.1, 0.3, 0.3]]), np.array([0.9]), np.array([0])),  # IoU 0.56 with the box
        Predictions(np.array([[0.5, 0.5, 0.4, 0.4], [0.0, 0.0, 0.2, 0.2]]), np.array([0.4, 0.8]), np.array([1, 1])),
    ]
    result = evaluate(truth_boxes, truth_labels, predicted, ["a", "b"], probability_threshold=0.5).metrics
    first, second = result.per_tag
    assert (first.precision, first.recall, first.average_precision) == pytest.approx((1, 1, 1))
    # "b": the right box is under the probability threshold, the confident one misses
    assert (second.precision, second.recall) == (0, 0)
    assert 0 < second.average_precision < 1  # ranked second, it still counts over all thresholds
    assert (result.precision, result.recall) == pytest.approx((0.5, 0.5))
    strict = evaluate(truth_boxes, truth_labels, predicted, ["a", "b"], 0.5, overlap=0.75).metrics
    assert strict.per_tag[0].recall == 0  # IoU 0.56 is not enough at 0.75


def test_stratification_labels_favour_rare_tags_and_never_stand_alone():
    labels = [np.array([0, 0, 1])] * 3 + [np.array([0, 2])] + [np.array([0])] * 4
    images = RegionImages(ids=[], images=[], boxes=[], labels=labels, tags=["a", "b", "c"], skipped=[], unlabelled=0)
    # "b" is rarer than "a" on the first three; "c" would label one image alone, so it joins the commonest label
    assert images.primary_labels.tolist() == [1, 1, 1, 0, 0, 0, 0, 0]


def test_the_export_check_matches_detections_as_sets_not_rows():
    """Detections whose scores tie within rounding may come in either order from PyTorch and ONNX Runtime."""
    def outputs(rows):
        padded = rows + [(0, 0.0, (0, 0, 0, 0))] * (4 - len(rows))
        return {CLASSES: np.array([[c for c, _, _ in padded]]), SCORES: np.array([[s for _, s, _ in padded]]),
                BOXES: np.array([[b for _, _, b in padded]], dtype=np.float32)}

    trained = outputs([(1, 0.30000001, (0.1, 0.1, 0.2, 0.2)), (2, 0.3, (0.5, 0.5, 0.2, 0.2))])
    swapped = outputs([(2, 0.3, (0.5, 0.5, 0.2, 0.2)), (1, 0.3, (0.1, 0.1, 0.2, 0.2))])
    relabelled = outputs([(2, 0.3, (0.5, 0.5, 0.2, 0.2)), (0, 0.3, (0.1, 0.1, 0.2, 0.2))])
    dropped = outputs([(1, 0.3, (0.1, 0.1, 0.2, 0.2))])
    assert export.unmatched(trained, swapped, 0) == export.unmatched(swapped, trained, 0) == 0
    assert export.unmatched(trained, relabelled, 0) == 1
    assert (export.unmatched(trained, dropped, 0), export.unmatched(dropped, trained, 0)) == (1, 0)
