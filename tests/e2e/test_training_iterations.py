"""What a trained iteration offers before it is published, through Microsoft's SDK and plain HTTP against the gateway
that `kubevision local up` runs: precision and recall at any threshold, counted from its held-out predictions, each
held-out image with its predictions, quick tests, the images it was trained on, and tag ids that outlive renames."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    PredictionQueryToken,
    Tag,
)
from test_training_api import SAMPLES, TEST_IMAGE, Api, code, keys, png, trainer_for, wait_trained

from kubevision.core import dataset


def counted(images, tag_ids: list[str], threshold: float) -> tuple[float, float]:
    """Overall precision and recall at `threshold`, counted from the image performances, as Custom Vision does."""
    predicted = actual = right = 0
    for image in images:
        truth = {t.tag_id for t in image.tags}
        chosen = {p.tag_id for p in image.predictions if p.probability >= threshold and p.tag_id in tag_ids}
        predicted, actual, right = predicted + len(chosen), actual + len(truth), right + len(chosen & truth)
    return right / predicted if predicted else 0.0, right / actual


def test_a_trained_iteration_reports_its_held_out_images_and_quick_tests_unpublished(quickstart, platform):
    trainer = trainer_for(quickstart, platform)
    api = Api(quickstart, keys(platform)["trainingKey"])
    project = trainer.create_project("Iteration views")
    hemlock = trainer.create_tag(project.id, "Hemlock")
    assert hemlock.id == dataset.tag_id(project.id, "Hemlock")
    renamed = Tag(name="Tsuga", description="", type="Regular")
    trainer.update_tag(project.id, hemlock.id, renamed)  # before training: the model knows the tag as "Tsuga"
    taken_again = trainer.create_tag(project.id, "Hemlock")  # its derived id belongs to the renamed tag
    cherry = trainer.create_tag(project.id, "Japanese Cherry")
    assert taken_again.id not in (hemlock.id, cherry.id)
    entries = [ImageFileCreateEntry(name=path.name, contents=path.read_bytes(), tag_ids=[tag.id])
               for tag, folder in ((hemlock, "Hemlock"), (cherry, "Japanese_Cherry"))
               for path in sorted((SAMPLES / folder).glob("*.jpg"))]
    assert trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=entries)).is_batch_successful

    iteration = wait_trained(trainer, project.id, trainer.train_project(project.id).id)
    assert iteration.status == "Completed", iteration.training_error_details
    renamed.name = "Hemlock tree"
    trainer.update_tag(project.id, hemlock.id, renamed)  # after training: the id stays
    ids = [hemlock.id, cherry.id]

    # held-out images: every one once, tags and predictions by the tags' ids, paged, filtered by tag
    total = trainer.get_image_performance_count(project.id, iteration.id)
    assert total == len(entries)  # Quick scores every image by a model trained without it (cross-validation)
    everything = trainer.get_image_performances(project.id, iteration.id, take=256)
    assert len(everything) == total and len({i.id for i in everything}) == total
    assert all(i.image_uri and i.width and len(i.tags) == 1 and i.predictions[0].tag_id in ids for i in everything)
    assert {p.tag_id for i in everything for p in i.predictions} == set(ids)
    pages = [i.id for skip in range(0, total, 2) for i in
             trainer.get_image_performances(project.id, iteration.id, take=2, skip=skip, order_by="Oldest")]
    assert pages == [i.id for i in reversed(everything)]
    per_tag = [trainer.get_image_performance_count(project.id, iteration.id, tag_ids=[t]) for t in ids]
    assert sum(per_tag) == total and min(per_tag) >= 1
    only_cherry = trainer.get_image_performances(project.id, iteration.id, tag_ids=[cherry.id], take=256)
    assert len(only_cherry) == per_tag[1] and all(i.tags[0].tag_id == cherry.id for i in only_cherry)

    # performance at a threshold: counted again from the same predictions; average precision does not move
    figures = {}
    for threshold in (0.0, 0.5, 0.9):
        performance = trainer.get_iteration_performance(project.id, iteration.id, threshold=threshold)
        assert {t.id for t in performance.per_tag_performance} == set(ids)
        expected = counted(everything, ids, threshold)
        assert (performance.precision, performance.recall) == pytest.approx(expected)
        figures[threshold] = performance
    assert figures[0.0].recall == 1.0 and figures[0.0].precision == 0.5  # every tag predicted for every image
    assert figures[0.5].precision > figures[0.0].precision
    assert figures[0.0].average_precision == figures[0.9].average_precision > 0.5
    assert code(api("GET", f"/projects/{project.id}/iterations/{iteration.id}/performance",
                    params={"threshold": 1.5})) == (400, "BadRequest")

    # quick tests on the unpublished iteration, run by the gateway: the renamed tag keeps its id
    unstored = trainer.quick_test_image(project.id, TEST_IMAGE, iteration_id=iteration.id, store=False)
    assert unstored.iteration == iteration.id and unstored.predictions[0].tag_id == hemlock.id
    assert {p.tag_id for p in unstored.predictions} == set(ids)
    trained_image = everything[0]
    by_url = trainer.quick_test_image_url(project.id, url=trained_image.image_uri)  # the newest trained by default
    assert by_url.iteration == iteration.id and by_url.predictions[0].tag_id == trained_image.tags[0].tag_id
    deadline = time.monotonic() + 30  # a quick test is stored unless store=false, after its answer has left
    while True:
        stored = trainer.query_predictions(project.id, PredictionQueryToken(iteration_id=iteration.id)).results
        if any(r.id == by_url.id for r in stored) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert by_url.id in {r.id for r in stored} and unstored.id not in {r.id for r in stored}

    # once published, quick tests run on Triton, and give what the gateway's own run gave
    trainer.publish_iteration(project.id, iteration.id, "views", "/subscriptions/any/prediction-resource")
    served = trainer.quick_test_image(project.id, TEST_IMAGE, iteration_id=iteration.id, store=False)
    assert [p.tag_id for p in served.predictions] == [p.tag_id for p in unstored.predictions]
    assert [p.probability for p in served.predictions] == pytest.approx(
        [p.probability for p in unstored.predictions], abs=1e-4)

    # the images it was trained on, labelled as they were, whatever happened since
    added = api("POST", f"/projects/{project.id}/images", params={"tagIds": cherry.id}, content=png(99),
                headers={"Content-Type": "application/octet-stream"}).json()
    assert added["images"][0]["status"] == "OK"
    trained_on = {"iterationId": iteration.id}
    assert trainer.get_tagged_image_count(project.id) == len(entries) + 1
    assert trainer.get_tagged_image_count(project.id, iteration_id=iteration.id) == len(entries)
    assert trainer.get_untagged_image_count(project.id, iteration_id=iteration.id) == 0
    assert api("GET", f"/projects/{project.id}/images/tagged/count", params={**trained_on, "tagIds": cherry.id}
               ).json() == sum(1 for e in entries if e.tag_ids == [cherry.id])
    listed = trainer.get_tagged_images(project.id, iteration_id=iteration.id, take=256, order_by="Oldest")
    # one batch: one upload time, then by id
    assert [i.id for i in listed] == sorted(dataset.image_id(dataset.content_hash(e.contents)) for e in entries)
    assert {(t.tag_id, t.tag_name) for i in listed for t in i.tags} == {(hemlock.id, "Tsuga"),
                                                                        (cherry.id, "Japanese Cherry")}
    contents = {dataset.image_id(dataset.content_hash(e.contents)): e.contents for e in entries}
    assert httpx.get(listed[0].original_image_uri, timeout=30).content == contents[listed[0].id]
    assert code(api("GET", f"/projects/{project.id}/images/tagged",
                    params={"iterationId": "00000000-0000-0000-0000-000000000000"})) == (404, "NotFoundIteration")

    # suggested tags for an untagged image, from the iteration run in the gateway
    image_id = api("POST", f"/projects/{project.id}/images", content=TEST_IMAGE,
                   headers={"Content-Type": "application/octet-stream"}).json()["images"][0]["image"]["id"]
    suggested = trainer.suggest_tags_and_regions(project.id, iteration.id, [image_id])
    assert [s.id for s in suggested] == [image_id] and suggested[0].iteration == iteration.id
    assert suggested[0].predictions[0].tag_id == hemlock.id
    assert suggested[0].prediction_uncertainty == pytest.approx(1 - suggested[0].predictions[0].probability)
    assert code(api("POST", f"/projects/{project.id}/tagsandregions/suggestions",
                    params={"iterationId": iteration.id, "imageIds": str(uuid.uuid4())})
                ) == (400, "BadRequestInvalidIds")

    # export, then import in the namespace the export names: settings, tags and labelled images, no iteration
    exported = trainer.export_project(project.id)
    tagged_now = trainer.get_tagged_image_count(project.id)
    assert (exported.iteration_count, exported.image_count, exported.tag_count) == (0, tagged_now + 1, 3)
    other = trainer_for(quickstart, platform, "team-b")
    other_api = Api(quickstart, keys(platform, "team-b")["trainingKey"])
    deadline = time.monotonic() + 10  # the gateway reads a new namespace's keys within a second
    while other_api("GET", "/projects").status_code == 401 and time.monotonic() < deadline:
        time.sleep(0.2)
    refused = other_api("POST", "/projects/import", params={"token": exported.token})  # for its own namespace only
    assert code(refused) == (400, "BadRequestInvalidImportToken") and "namespace 'default'" in refused.json()["message"]
    token = api("GET", f"/projects/{project.id}/export", params={"importNamespace": "team-b"}).json()["token"]
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert code(other_api("POST", "/projects/import", params={"token": tampered})) == (
        400, "BadRequestInvalidImportToken")
    imported = other.import_project(token, name="Imported views")
    assert imported.name == "Imported views" and imported.settings.domain_id == project.settings.domain_id
    assert {t.name: t.image_count for t in other.get_tags(imported.id)} == {
        t.name: t.image_count for t in trainer.get_tags(project.id)}
    assert other.get_tagged_image_count(imported.id) == tagged_now and other.get_iterations(imported.id) == []
    assert other.get_untagged_image_count(imported.id) == 1
    assert code(api("GET", f"/projects/{imported.id}")) == (404, "NotFoundProject")  # it is team-b's
