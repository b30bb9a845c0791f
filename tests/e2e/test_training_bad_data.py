"""Datasets that cannot train end in a documented result and exit code, and change nothing in the buckets."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from conftest import DATASET_BUCKET, FASHION_TAGS, fashion_mnist
from fault_proxy import ErrorAnswer, FaultProxy
from PIL import Image
from pydantic import SecretStr

from kubevision.core.reasons import Reason, SkipReason
from kubevision.core.settings import MLflowSettings
from kubevision.core.training import ExitCode
from kubevision.local.process import free_port


def bucket_listing(store, platform):
    return {bucket: sorted(store.keys(bucket, "")) for bucket in (DATASET_BUCKET, platform.s3_settings().models_bucket)}


def run_trainer_process(platform, request, tmp_path):
    """`python -m kubevision.trainer` as a Job runs it, settings from the environment."""
    s3, mlflow = platform.s3_settings(), platform.mlflow_settings()
    (tmp_path / "request.json").write_text(request.model_dump_json(by_alias=True))
    env = {
        **os.environ,
        "KUBEVISION_S3_ENDPOINT": s3.endpoint, "KUBEVISION_S3_ACCESS_KEY": s3.access_key,
        "KUBEVISION_S3_SECRET_KEY": s3.secret_key.get_secret_value(),
        "KUBEVISION_MLFLOW_TRACKING_URI": mlflow.tracking_uri,
        "KUBEVISION_TERMINATION_LOG": str(tmp_path / "termination-log"),
    }
    process = subprocess.run([sys.executable, "-m", "kubevision.trainer", "--request", str(tmp_path / "request.json")],
                             env=env, capture_output=True, text=True, timeout=300)
    message = json.loads((tmp_path / "termination-log").read_text())
    assert json.loads(process.stdout.strip().splitlines()[-1]) == message
    return process, message


def three_tags(setup, per_tag):
    for data, label in fashion_mnist(per_tag, [0, 2, 7]):
        setup.add(data, [FASHION_TAGS[label]])


def test_too_few_images_in_a_tag(platform, setup_project, object_store, tmp_path):
    setup = setup_project("few-images")
    three_tags(setup, 6)
    for data, _ in fashion_mnist(3, [9]):
        setup.add(data, ["ankle-boot"])
    request = setup.request("few-images-1", "Quick")
    before = bucket_listing(object_store, platform)
    process, message = run_trainer_process(platform, request, tmp_path)
    assert process.returncode == ExitCode.INVALID_DATASET == 2
    assert message["outcome"] == "InvalidDataset"
    assert message["reason"] == Reason.TOO_FEW_IMAGES
    assert message["message"] == 'tag "ankle-boot" has 3 usable images; 5 needed'
    assert bucket_listing(object_store, platform) == before


def test_a_corrupt_file_and_a_non_image_are_skipped_and_listed(platform, setup_project):
    setup = setup_project("skipped-files")
    three_tags(setup, 6)
    good_png = fashion_mnist(7, [0])[6][0]
    corrupt = setup.add_unchecked(good_png[: len(good_png) // 2], ["t-shirt"])  # truncated PNG
    text = setup.add_unchecked(b"name,label\nshirt,1\n", ["pullover"], "text/csv")
    big = setup.add_unchecked(b"\xff\xd8" + b"\x00" * (6 * 1024 * 1024 + 1), ["sneaker"], "image/jpeg")
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, format="PNG")  # 400 megapixels in a few kilobytes
    bomb = setup.add_unchecked(buffer.getvalue(), ["t-shirt"])
    result = platform_train(platform, setup.request("skipped-files-1", "Quick"))
    assert result.outcome == "Succeeded", result.message
    assert {(s.id, s.reason) for s in result.skipped} == {
        (corrupt, SkipReason.UNREADABLE), (text, SkipReason.UNSUPPORTED_FORMAT), (big, SkipReason.TOO_LARGE),
        (bomb, SkipReason.TOO_LARGE),
    }
    assert result.images_used == 18 and result.skipped_count == 4


def test_a_tag_whose_images_are_all_unusable(platform, setup_project, object_store):
    setup = setup_project("empty-tag")
    three_tags(setup, 6)
    for i in range(5):
        setup.add_unchecked(f"not an image {i}".encode(), ["sandal"], "image/jpeg")
    request = setup.request("empty-tag-1", "Quick")
    before = bucket_listing(object_store, platform)
    result = platform_train(platform, request)
    assert result.outcome == "InvalidDataset" and result.exit_code == 2
    assert result.reason == Reason.TOO_FEW_IMAGES
    assert result.message == 'tag "sandal" has 0 usable images; 5 needed'
    assert len(result.skipped) == 5 and {s.reason for s in result.skipped} == {SkipReason.UNSUPPORTED_FORMAT}
    assert bucket_listing(object_store, platform) == before


@pytest.mark.parametrize(
    ("tags", "reason", "message"),
    [
        ([["t-shirt"]] * 6, Reason.TOO_FEW_TAGS, "found tags ['t-shirt']; at least 2 are needed"),
        ([], Reason.NO_IMAGES, "the dataset snapshot lists no images"),
    ],
)
def test_too_few_tags_and_no_images(platform, setup_project, tags, reason, message):
    setup = setup_project(f"bad-{reason.lower()}")
    for (data, _), image_tags in zip(fashion_mnist(len(tags), [0]), tags, strict=True):
        setup.add(data, image_tags)
    result = platform_train(platform, setup.request(f"bad-{reason.lower()}-1", "Quick"))
    assert (result.outcome, result.reason, result.message) == ("InvalidDataset", reason, message)


def test_a_missing_snapshot(platform, setup_project):
    setup = setup_project("no-snapshot")
    request = setup.request("no-snapshot-1", "Quick")
    request.iteration.metadata.uid = "another-uid-entirely"  # its snapshot was never taken
    result = platform_train(platform, request)
    assert (result.outcome, result.reason) == ("InvalidDataset", Reason.DATASET_NOT_FOUND)


def platform_train(platform, request, s3=None, mlflow=None):
    from kubevision.trainer.run import train

    return train(request, s3 or platform.s3_settings(), mlflow or platform.mlflow_settings())


# S3 or MLflow failing for a while is no fault of the dataset: the run ends as a crash (exit code 1), which the
# Job retries, and never as a dataset that cannot train (2), which it does not.


def test_s3_denying_the_snapshot_is_a_crash_to_retry(platform, setup_project):
    setup = setup_project("denied-snapshot")
    three_tags(setup, 5)
    denied = platform.s3_settings().model_copy(update={"secret_key": SecretStr("not-the-key")})
    result = platform_train(platform, setup.request("denied-snapshot-1", "Quick"), s3=denied)
    assert (result.outcome, result.reason, result.exit_code) == ("Failed", Reason.STORAGE_UNAVAILABLE, 1)
    assert "the dataset snapshot denied-snapshot-1-" in result.message


@pytest.mark.parametrize("refusals", [3, 1000], ids=["passing", "lasting"])
def test_an_image_s3_will_not_serve_is_retried_never_taken_for_missing(platform, setup_project, refusals):
    setup = setup_project(f"denied-images-{refusals}")
    three_tags(setup, 5)
    request = setup.request(f"denied-images-{refusals}-1", "Quick")
    left = iter(range(refusals))
    with FaultProxy(platform.s3_settings().endpoint) as proxy:
        proxy.answer = lambda method, path: (ErrorAnswer(403, "AccessDenied") if "/images/" in path
                                             and next(left, None) is not None else None)
        result = platform_train(platform, request, s3=platform.s3_settings().model_copy(
            update={"endpoint": proxy.address}))
    if refusals == 3:  # a fault that passes costs a retry, not an image
        assert result.outcome == "Succeeded", result.message
        assert result.images_used == 15 and result.skipped == []
    else:  # one that lasts is a crash, which the Job retries, never a dataset short of images
        assert (result.outcome, result.reason, result.exit_code) == ("Failed", Reason.STORAGE_UNAVAILABLE, 1)
        assert "AccessDenied" in result.message


def test_mlflow_unreachable_at_the_start_still_ends_with_a_result(platform, setup_project, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    setup = setup_project("no-mlflow")
    three_tags(setup, 5)
    away = MLflowSettings(tracking_uri=f"http://127.0.0.1:{free_port()}")
    result = platform_train(platform, setup.request("no-mlflow-1", "Quick"), mlflow=away)
    assert (result.outcome, result.reason, result.exit_code) == ("Failed", Reason.TRACKING_UNAVAILABLE, 1)
    assert away.tracking_uri in result.message
