"""The trainer's result on its way to the operator. A Job's termination message holds 4 KiB and the kubelet cuts
what is longer, so a result that fits goes whole, and a bigger one (per-tag metrics of hundreds of tags, long lists
of skipped images) is kept whole in S3 while the message carries its summary and where the rest is."""

from __future__ import annotations

import logging

from kubevision.core.storage import STORAGE_FAULTS, ObjectStore, is_missing, result_key
from kubevision.core.training import TrainingResult

log = logging.getLogger(__name__)

TERMINATION_MESSAGE_BYTES = 4096  # the kubelet keeps this much of a container's termination message


def termination_message(result: TrainingResult, store: ObjectStore, namespace: str, iteration_id: str) -> str:
    text = result.model_dump_json(exclude_none=True)
    if len(text.encode()) <= TERMINATION_MESSAGE_BYTES:
        return text
    bucket, key = store.settings.models_bucket, result_key(namespace, iteration_id)
    try:
        store.put(bucket, key, text.encode(), "application/json")
        full_result = f"s3://{bucket}/{key}"
    except STORAGE_FAULTS as error:  # the summary still tells the outcome and the overall metrics
        log.warning("the whole result could not be stored in S3 (%s); the message carries a summary", error)
        full_result = None
    return result.summary(full_result).model_dump_json(exclude_none=True)


def read_termination_message(message: str, store: ObjectStore, namespace: str,
                             iteration_id: str) -> TrainingResult | None:
    """The result from a termination message as the kubelet leaves it, completed from S3 when the message is a
    summary or was cut; None when the trainer left no result. S3 faults propagate: a storage that is away for a
    moment is a reason to look again, never to lose the result."""
    if not message.strip():
        return None
    try:
        result: TrainingResult | None = TrainingResult.model_validate_json(message)
    except ValueError:  # cut short: a trainer that did not keep to the limit
        result = None
    if result is not None and result.full_result is None:
        return result
    try:
        whole = store.get(store.settings.models_bucket, result_key(namespace, iteration_id))
    except STORAGE_FAULTS as error:
        if is_missing(error):
            return result
        raise
    try:
        return TrainingResult.model_validate_json(whole)
    except ValueError:
        log.warning("the result in S3 for %s/%s is unreadable; using the summary", namespace, iteration_id)
        return result
