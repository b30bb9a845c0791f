"""The trainer's result reaches the operator whole, through a termination message that the kubelet cuts at 4 KiB,
with the real S3 keeping what does not fit."""

from __future__ import annotations

import pytest

from kubevision.core.results import TERMINATION_MESSAGE_BYTES, read_termination_message, termination_message
from kubevision.core.storage import STORAGE_FAULTS, ObjectStore
from kubevision.core.training import TrainingResult
from kubevision.local.process import free_port

NS = "results"


def as_the_kubelet_leaves_it(message: str) -> str:
    return message.encode()[:TERMINATION_MESSAGE_BYTES].decode(errors="ignore")


def big_result(tags: int = 500) -> TrainingResult:
    names = [f"tag-{i:03d}-named-as-people-name-tags" for i in range(tags)]
    return TrainingResult.model_validate({
        "outcome": "Succeeded", "reason": "TrainingSucceeded", "message": "trained", "tags": names,
        "mlflow_run_id": "run-9", "model_uri": "s3://models/triton/results/p/p-1/",
        "metrics": {"probability_threshold": 0.5, "precision": 0.9, "recall": 0.8, "average_precision": 0.85,
                    "per_tag": [{"tag": n, "precision": 0.9, "recall": 0.8, "average_precision": 0.85}
                                for n in names]}})


def unreachable(store: ObjectStore) -> ObjectStore:
    return ObjectStore(store.settings.model_copy(update={"endpoint": f"127.0.0.1:{free_port()}",
                                                         "timeout_seconds": 1}))


@pytest.fixture
def store(platform) -> ObjectStore:
    return ObjectStore(platform.s3_settings())


def test_a_result_of_500_tags_arrives_whole(store):
    result = big_result()
    message = termination_message(result, store, NS, "p-1-0123abcd")
    assert len(message.encode()) <= TERMINATION_MESSAGE_BYTES
    read = read_termination_message(as_the_kubelet_leaves_it(message), store, NS, "p-1-0123abcd")
    assert read == result and len(read.metrics.per_tag) == 500


def test_a_small_result_travels_in_the_message_alone(store):
    result = TrainingResult(outcome="InvalidDataset", reason="TooFewImages", message='tag "a" has 3 usable images')
    message = termination_message(result, store, NS, "p-2-0123abcd")
    assert TrainingResult.model_validate_json(message) == result
    assert not store.exists(store.settings.models_bucket, f"results/{NS}/p-2-0123abcd.json")
    assert read_termination_message(message, store, NS, "p-2-0123abcd") == result


def test_without_s3_the_summary_still_says_how_training_ended(store):
    message = termination_message(big_result(), unreachable(store), NS, "p-3-0123abcd")
    read = read_termination_message(as_the_kubelet_leaves_it(message), store, NS, "p-3-0123abcd")
    assert (read.outcome, read.model_uri, read.metrics.average_precision) == ("Succeeded", big_result().model_uri,
                                                                              0.85)
    assert read.metrics.per_tag == [] and read.full_result is None


def test_a_message_cut_by_the_kubelet_is_no_result_unless_s3_has_it(store):
    cut = as_the_kubelet_leaves_it(big_result().model_dump_json())
    assert read_termination_message(cut, store, NS, "p-4-0123abcd") is None
    assert read_termination_message("", store, NS, "p-4-0123abcd") is None


def test_s3_away_while_reading_is_an_error_to_retry_not_a_lost_result(store):
    message = termination_message(big_result(), store, NS, "p-5-0123abcd")
    with pytest.raises(STORAGE_FAULTS):
        read_termination_message(message, unreachable(store), NS, "p-5-0123abcd")
