"""The trainer's pure parts: settings merge, image checks, the fitted head, Custom Vision's metrics."""

import io

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_score, recall_score

from kubevision.core import api
from kubevision.core.heldout import HeldOut, HeldOutImage, counted_at
from kubevision.core.reasons import SkipReason
from kubevision.core.training import SkippedImage, TrainingResult, resolve_training
from kubevision.trainer import data
from kubevision.trainer.classification import evaluation, quick
from kubevision.trainer.splits import folds


def image_bytes(fmt: str, size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def test_iteration_fields_override_project_defaults_which_override_built_ins():
    project = api.CustomVisionProject(metadata={"name": "p"}, spec={
        "displayName": "P", "dataset": {"bucket": "data", "prefix": "default/p/"},
        "trainingDefaults": {"trainingType": "Advanced", "budgetMinutes": 30,
                             "hyperparameters": {"seed": 3, "batchSize": 16}},
    })
    iteration = api.Iteration(metadata={"name": "i"}, spec={
        "projectRef": {"name": "p"}, "hyperparameters": {"batchSize": 8, "maxEpochs": 4},
    })
    options = resolve_training(project, iteration)
    assert (options.training_type, options.budget_minutes) == ("Advanced", 30)
    assert (options.seed, options.batch_size, options.max_epochs) == (3, 8, 4)
    assert options.learning_rate == 0.0003  # built-in default


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "GIF", "WEBP"])
def test_supported_formats_decode_to_rgb(fmt):
    image = data.decode(image_bytes(fmt), working_size=256)
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (40, 30)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (image_bytes("TIFF"), SkipReason.UNSUPPORTED_FORMAT),
        (b"%PDF-1.4 not a picture", SkipReason.UNSUPPORTED_FORMAT),
        (image_bytes("JPEG", (400, 300))[:300], SkipReason.UNREADABLE),
        (b"\x89PNG" + b"\x00" * (6 * 1024 * 1024), SkipReason.TOO_LARGE),
    ],
)
def test_unusable_images_say_why(payload, reason):
    assert data.decode(payload, working_size=256)[0] == reason


def test_large_images_are_scaled_down_to_the_working_size():
    assert data.decode(image_bytes("PNG", (1200, 900)), working_size=256).size == (341, 256)


@pytest.mark.parametrize("classes", [2, 4])
def test_the_fitted_head_reproduces_logistic_regression(classes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    labels = np.arange(60) % classes
    targets = np.eye(classes, dtype=np.float32)[labels]
    head = quick.fit_head(x, targets, multilabel=False, seed=0)
    expected = LogisticRegression(C=quick.REGULARISATION, max_iter=5000, random_state=0).fit(x, labels)
    np.testing.assert_allclose(quick.head_probabilities(head, x, False), expected.predict_proba(x), atol=1e-5)


def test_metrics_at_a_threshold_as_custom_vision_counts_them():
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    metrics = evaluation.metrics_at(targets, probabilities, ["a", "b"], 0.5)
    a, b = metrics.per_tag
    assert (a.precision, a.recall) == (1.0, 0.5)  # one of two "a" images found, no false alarm
    assert (b.precision, b.recall) == (pytest.approx(2 / 3), 1.0)
    assert (metrics.precision, metrics.recall) == (0.75, 0.75)  # 3 right of 4 predictions; 3 of 4 tags found
    assert a.average_precision == 1.0 and b.average_precision == 1.0  # both tags ranked perfectly
    assert metrics.average_precision == 1.0
    mixed = evaluation.metrics_at(targets, np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.8], [0.3, 0.7]]), ["a", "b"], 0.5)
    assert mixed.per_tag[0].average_precision == pytest.approx((1 + 2 / 3) / 2)  # ranks: a+, c-, b+
    lower = evaluation.metrics_at(targets, probabilities, ["a", "b"], 0.35)
    assert lower.per_tag[0].recall == 1.0


def test_held_out_predictions_give_sklearns_precision_and_recall_at_any_threshold():
    rng = np.random.default_rng(7)
    tags = ["a", "b", "c"]
    held_out = HeldOut(threshold=0.5, tags=tags, images=[
        HeldOutImage(id=str(i), tags=[t for t in tags if rng.random() < 0.4], probabilities=rng.random(3).tolist())
        for i in range(200)])
    actual, probabilities = held_out.arrays()
    assert actual.sum() == sum(len(i.tags) for i in held_out.images)
    for threshold in (0.0, 0.3, 0.5, 0.9):
        predicted = probabilities >= threshold
        counted = counted_at(actual, probabilities, threshold)
        assert counted.precision == pytest.approx(precision_score(actual, predicted, average="micro"))
        assert counted.recall == pytest.approx(recall_score(actual, predicted, average="micro"))
        assert counted.tag_precision == pytest.approx(precision_score(actual, predicted, average=None).tolist())
        assert counted.tag_recall == pytest.approx(recall_score(actual, predicted, average=None).tolist())
    assert counted_at(actual, probabilities, 0.3).recall > counted_at(actual, probabilities, 0.9).recall


def test_threshold_shifts_move_each_tags_best_cut_to_the_served_threshold():
    targets = np.array([[1], [1], [0], [0]], dtype=np.float32)
    probabilities = np.array([[0.30], [0.25], [0.10], [0.05]])  # separable, but all under 0.5
    shifts = evaluation.threshold_shifts(targets, probabilities, 0.5)
    shifted = evaluation.shift_probabilities(probabilities, shifts)
    assert (shifted[:, 0] >= 0.5).tolist() == [True, True, False, False]


def test_folds_are_stratified_and_cover_every_image_once():
    labels = np.repeat([0, 1, 2], [5, 7, 9])
    splits = folds(labels, seed=1)
    assert len(splits) == 5
    held_out = np.concatenate([test for _, test in splits])
    assert sorted(held_out) == list(range(len(labels)))
    assert all(set(labels[test]) == {0, 1, 2} for _, test in splits)


def many_tags_result(tags: int) -> TrainingResult:
    names = [f"tag-{i:03d}-with-a-name-as-long-as-people-give" for i in range(tags)]
    per_tag = [{"tag": n, "precision": 0.9, "recall": 0.8, "average_precision": 0.85} for n in names]
    skipped = [SkippedImage(id=f"{i:036d}", reason=SkipReason.UNREADABLE, detail="x" * 50) for i in range(200)]
    return TrainingResult.model_validate({
        "outcome": "Succeeded", "reason": "TrainingSucceeded", "message": "trained", "tags": names,
        "skipped": skipped, "skipped_count": 200, "model_uri": "s3://models/triton/ml/p/p-1/",
        "metrics": {"probability_threshold": 0.5, "precision": 0.9, "recall": 0.8, "average_precision": 0.85,
                    "per_tag": per_tag}})


def test_a_summary_of_a_result_with_500_tags_fits_a_termination_message():
    result = many_tags_result(500)  # Custom Vision's most tags a project
    assert len(result.model_dump_json().encode()) > 4096
    summary = TrainingResult.model_validate_json(result.summary("s3://models/results/ml/p-1.json").model_dump_json())
    assert len(summary.model_dump_json(exclude_none=True).encode()) <= 4096
    assert (summary.outcome, summary.skipped_count, summary.model_uri) == ("Succeeded", 200, result.model_uri)
    assert summary.metrics.average_precision == 0.85 and summary.full_result == "s3://models/results/ml/p-1.json"


def png_of_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")  # all black: compresses to almost nothing
    return buffer.getvalue()


@pytest.mark.parametrize(("width", "height"), [(20_000, 20_000), (10_000, 9_000)], ids=["bomb", "over-the-limit"])
def test_an_image_of_absurd_dimensions_is_skipped_before_it_is_decoded(width, height):
    data_ = png_of_size(width, height)
    assert len(data_) < 1024 * 1024
    reason, detail = data.decode(data_, working_size=256)
    assert reason == SkipReason.TOO_LARGE and "pixels" in detail


def test_an_image_the_manifest_says_is_too_big_is_not_downloaded():
    from kubevision.core.dataset import ImageRecord

    big = ImageRecord(id="big", sha256="a" * 64, content_type="image/jpeg", size=7 * 1024 * 1024, tags=["cat"])
    small = [ImageRecord(id=f"{tag}{i}", sha256=f"{i:064x}", content_type="image/png", size=100, tags=[tag])
             for tag in ("cat", "dog") for i in range(5)]
    fetched = []

    def fetch(record):
        fetched.append(record.id)
        return image_bytes("PNG")

    loaded = data.load([big, *small], fetch, api.ClassificationType.MULTICLASS, 64)
    assert "big" not in fetched and len(fetched) == 10
    assert [(s.id, s.reason) for s in loaded.skipped] == [("big", SkipReason.TOO_LARGE)]
