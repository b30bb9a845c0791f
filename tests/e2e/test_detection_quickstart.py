"""Microsoft's object detection quickstart, run by the official Python SDK against the gateway that `kubevision local
up` runs, unchanged but for endpoint and keys: a project with the detection domain, the fork and scissors tags,
photos uploaded with their regions, training, publishing, and detect_image. The photos and regions are the
quickstart's (examples/detection); three of each tag are held out, and the boxes must land on their objects. Before
publishing, quick tests run the same detector in the gateway, and give the boxes Triton gives once it is published."""

from __future__ import annotations

import json

import numpy as np
import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Region,
)
from conftest import EXAMPLES
from msrest.authentication import ApiKeyCredentials
from test_training_api import keys, trainer_for, wait_trained

DETECTION = EXAMPLES / "detection"
HELD_OUT = 3  # photos of each tag kept from training, to predict on
MIN_OVERLAP = 0.5  # intersection over union of a predicted box with the known one
BOX_TOLERANCE = 1e-4  # between the gateway's ONNX Runtime and Triton's, on a probability or a box's fraction


def same_boxes(these, those) -> bool:
    """The same predictions, each tag's probability and box within BOX_TOLERANCE; compared as sets, since boxes
    whose probabilities tie within rounding may come in either order."""
    def figures(prediction) -> np.ndarray:
        box = prediction.bounding_box
        return np.array([prediction.probability, box.left, box.top, box.width, box.height])

    unmatched = [(p.tag_id, figures(p)) for p in those]
    for prediction in these:
        found = next((i for i, (tag, values) in enumerate(unmatched) if tag == prediction.tag_id
                      and np.abs(values - figures(prediction)).max() <= BOX_TOLERANCE), None)
        if found is None:
            return False
        unmatched.pop(found)
    return not unmatched


def overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (left, top, width, height) boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(width, 0) * max(height, 0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.mark.timeout(1500)  # a detector's Quick training takes longer than the suite's 600 s a test on 2 cores
def test_the_official_sdk_runs_the_object_detection_quickstart(quickstart, platform):
    entries = json.loads((DETECTION / "regions.json").read_text())
    by_tag = {tag: [e for e in entries if e["regions"][0]["tag"] == tag] for tag in ("fork", "scissors")}

    trainer = trainer_for(quickstart, platform)
    obj_detection_domain = next(domain for domain in trainer.get_domains()
                                if domain.type == "ObjectDetection" and domain.name == "General")
    project = trainer.create_project("My Detection Project", domain_id=obj_detection_domain.id)
    tags = {name: trainer.create_tag(project.id, name) for name in by_tag}

    tagged_images_with_regions = []
    for photos in by_tag.values():
        for entry in photos[:-HELD_OUT]:
            regions = [Region(tag_id=tags[r["tag"]].id, left=r["left"], top=r["top"], width=r["width"],
                              height=r["height"]) for r in entry["regions"]]
            tagged_images_with_regions.append(ImageFileCreateEntry(
                name=entry["image"], contents=(DETECTION / entry["image"]).read_bytes(), regions=regions))
    upload_result = trainer.create_images_from_files(project.id, ImageFileCreateBatch(
        images=tagged_images_with_regions))
    assert upload_result.is_batch_successful, [i.status for i in upload_result.images]
    listed = trainer.get_tagged_images(project.id, take=256)
    assert sum(len(image.regions) for image in listed) == len(tagged_images_with_regions)

    iteration = trainer.train_project(project.id)
    iteration = wait_trained(trainer, project.id, iteration.id, timeout=900)
    assert iteration.status == "Completed", iteration.training_error_details

    # quick tests before publishing: the gateway runs the detector in ONNX Runtime and answers boxes
    tag_ids = {tag.id: name for name, tag in tags.items()}
    held_out = [entry for photos in by_tag.values() for entry in photos[-HELD_OUT:]]
    unpublished = {entry["image"]: trainer.quick_test_image(project.id, (DETECTION / entry["image"]).read_bytes(),
                                                            iteration_id=iteration.id, store=False)
                   for entry in held_out}
    by_url = trainer.quick_test_image_url(project.id, url=listed[0].original_image_uri, store=False)
    suggested = trainer.suggest_tags_and_regions(project.id, iteration.id, [listed[0].id])[0]
    assert suggested.id == listed[0].id
    assert suggested.prediction_uncertainty == pytest.approx(1 - suggested.predictions[0].probability)
    for answer in (*unpublished.values(), by_url, suggested):
        assert answer.iteration == iteration.id and answer.predictions
        assert all(p.bounding_box and tag_ids[p.tag_id] == p.tag_name for p in answer.predictions)
        probabilities = [p.probability for p in answer.predictions]
        assert probabilities == sorted(probabilities, reverse=True)

    trainer.publish_iteration(project.id, iteration.id, "detectModel", "/subscriptions/any/prediction-resource")
    performance = trainer.get_iteration_performance(project.id, iteration.id, threshold=0.5, overlap_threshold=0.5)
    assert {t.name for t in performance.per_tag_performance} == set(by_tag)
    # counted again from the held-out boxes the trainer kept: a stricter overlap finds no more, a lower probability
    # threshold no fewer
    strict = trainer.get_iteration_performance(project.id, iteration.id, threshold=0.5, overlap_threshold=0.95)
    loose = trainer.get_iteration_performance(project.id, iteration.id, threshold=0.05, overlap_threshold=0.5)
    assert strict.recall <= performance.recall <= loose.recall
    assert strict.average_precision < performance.average_precision == loose.average_precision
    assert trainer.get_iteration_performance(project.id, iteration.id).as_dict() == performance.as_dict()
    # the held-out images with their true boxes (the stored regions) and the model's boxes
    stored_regions = {r.region_id for image in listed for r in image.regions}
    images = trainer.get_image_performances(project.id, iteration.id, take=256)
    assert len(images) == trainer.get_image_performance_count(project.id, iteration.id) > 0
    for image in images:
        assert image.regions and {r.region_id for r in image.regions} <= stored_regions
        assert {r.tag_name for r in image.regions} == {t.tag_name for t in image.tags}
        assert all(p.bounding_box and tag_ids[p.tag_id] == p.tag_name for p in image.predictions)

    credentials = ApiKeyCredentials(in_headers={"Prediction-key": keys(platform)["predictionKey"]})
    predictor = CustomVisionPredictionClient(quickstart.gateway, credentials)
    for name, photos in by_tag.items():
        for entry in photos[-HELD_OUT:]:
            results = predictor.detect_image(project.id, "detectModel", (DETECTION / entry["image"]).read_bytes())
            best = results.predictions[0]
            known = entry["regions"][0]
            found = (best.bounding_box.left, best.bounding_box.top, best.bounding_box.width, best.bounding_box.height)
            assert best.tag_name == name, (entry["image"], results.predictions[:3])
            assert overlap(found, (known["left"], known["top"], known["width"], known["height"])) >= MIN_OVERLAP, \
                (entry["image"], found, known)
            probabilities = [p.probability for p in results.predictions]
            assert probabilities == sorted(probabilities, reverse=True)
            # Triton's answer is the one the gateway gave before publishing
            assert same_boxes(results.predictions, unpublished[entry["image"]].predictions), entry["image"]
