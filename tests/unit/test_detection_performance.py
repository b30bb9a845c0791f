"""A detector's performance at the overlap threshold asked for: the nearest one the trainer recorded, else what it
recorded."""

from kubevision.gateway.training import at_overlap

AT_HALF = {"probabilityThreshold": 0.5, "precision": 0.8, "recall": 0.7, "averagePrecision": 0.75, "perTag": []}


def test_the_nearest_recorded_overlap_threshold_is_chosen():
    strict = {**AT_HALF, "overlapThreshold": 0.75, "precision": 0.4}
    metrics = {**AT_HALF, "overlapThreshold": 0.5, "byOverlap": [{**AT_HALF, "overlapThreshold": 0.5}, strict]}
    assert at_overlap(metrics, 0.7) == strict
    assert at_overlap(metrics, 0.3)["precision"] == 0.8
    assert at_overlap(metrics, None) is metrics


def test_metrics_of_one_overlap_threshold_or_none_are_kept():
    assert at_overlap(AT_HALF, 0.9) is AT_HALF
    assert at_overlap(None, 0.5) is None
