"""The reconcile core: every status transition and condition reason, with a fixed clock and no I/O."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from kubevision.core import conditions
from kubevision.core.api import CustomVisionProject, Iteration, IterationMetrics
from kubevision.core.labels import model_name
from kubevision.core.reasons import Reason
from kubevision.core.training import TrainingResult, iteration_id
from kubevision.operator import reconcile as core
from kubevision.operator.reconcile import (
    DatasetObservation,
    IterationObservation,
    JobObservation,
    ProjectCount,
    ServingObservation,
    TrainingQueue,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
ENOUGH = DatasetObservation(manifest_found=True, tag_counts={"cat": 5, "dog": 7}, image_count=12)
METRICS = IterationMetrics(probability_threshold=0.5, precision=0.9, recall=0.8, average_precision=0.95)


def project(**spec) -> CustomVisionProject:
    return CustomVisionProject(metadata={"name": "pets", "namespace": "ml", "generation": 1},
                               spec={"displayName": "Pets", "dataset": {"bucket": "data", "prefix": "ml/pets/"},
                                     **spec})


def ready_project() -> CustomVisionProject:
    item = project()
    item.status, _ = core.reconcile_project(item, ENOUGH, None, "7", NOW)
    return item


def iteration(generation=1, **spec) -> Iteration:
    return Iteration(metadata={"name": "pets-1", "namespace": "ml", "uid": "0a1b2c3d-uid", "generation": generation,
                               "creationTimestamp": "2026-11-25T11:00:00Z"},
                     spec={"projectRef": {"name": "pets"}, **spec})


def reason(status, type_):
    return conditions.find(status.conditions, type_).reason


# ----------------------------------------------------------------------------------------------------------------
# projects


@pytest.mark.parametrize(
    ("dataset", "expected", "message"),
    [
        (DatasetObservation(), Reason.DATASET_NOT_FOUND, "no dataset manifest at s3://data/ml/pets/manifest.jsonl"),
        (DatasetObservation(manifest_found=True), Reason.NO_IMAGES, "the dataset at s3://data/ml/pets/manifest.jsonl "
                                                                    "has no tagged images"),
        (DatasetObservation(manifest_found=True, tag_counts={"cat": 3, "dog": 9}, image_count=12),
         Reason.TOO_FEW_IMAGES, 'tag "cat" has 3 images, 5 needed'),
        (DatasetObservation(manifest_found=True, tag_counts={"cat": 9}, image_count=9),
         Reason.TOO_FEW_TAGS, "found tags ['cat']; at least 2 are needed"),
    ],
)
def test_a_dataset_that_cannot_train_is_named(dataset, expected, message):
    status, outcome = core.reconcile_project(project(), dataset, None, None, NOW)
    assert (status.phase, reason(status, "DatasetReady")) == ("NotReady", expected)
    assert conditions.find(status.conditions, "DatasetReady").message == message
    assert reason(status, "Ready") == Reason.DATASET_NOT_READY
    assert outcome.requeue_after == core.RETRY_FAULT  # images may be uploaded at any time


@pytest.mark.parametrize("prefix", ["team-a/pets/", "ml-other/pets/", "ml/", "", "pets/"])
def test_a_dataset_outside_the_project_namespace_is_refused_whatever_it_holds(prefix):
    """Another namespace's data (or the whole namespace's) is never counted, even when S3 would show it."""
    foreign = project(dataset={"bucket": "data", "prefix": prefix})
    status, outcome = core.reconcile_project(foreign, ENOUGH, None, None, NOW)
    assert (status.phase, reason(status, "DatasetReady")) == ("NotReady", Reason.DATASET_OUTSIDE_NAMESPACE)
    assert "must begin with 'ml/'" in conditions.find(status.conditions, "DatasetReady").message
    assert status.image_count is None and not status.tags
    assert reason(status, "Ready") == Reason.DATASET_NOT_READY and outcome.requeue_after is None


def test_an_iteration_never_trains_on_a_dataset_outside_its_namespace():
    """Even when the project's Ready predates a change of its prefix to another namespace's."""
    moved = ready_project()
    moved.spec.dataset.prefix = "team-a/pets/"
    plan = core.reconcile_iteration(iteration(), IterationObservation(project=moved), NOW)
    assert plan.train is None and plan.status.phase == "Pending"
    assert reason(plan.status, "Trained") == Reason.PROJECT_NOT_READY
    assert "outside the project's namespace" in conditions.find(plan.status.conditions, "Trained").message


def test_a_ready_project_counts_its_images():
    status, outcome = core.reconcile_project(project(), ENOUGH, None, "7", NOW)
    assert status.phase == "Ready" and status.image_count == 12 and status.experiment_id == "7"
    assert [(t.tag, t.images) for t in status.tags] == [("cat", 5), ("dog", 7)]
    assert reason(status, "Ready") == Reason.READY
    assert outcome.requeue_after is None
    assert [e.reason for e in outcome.events] == [Reason.ENOUGH_IMAGES, Reason.READY]


def test_unreachable_storage_and_tracking_are_retried():
    status, outcome = core.reconcile_project(project(), DatasetObservation(error="connection refused"), None, None,
                                             NOW)
    assert conditions.find(status.conditions, "DatasetReady").status == "Unknown"
    assert reason(status, "DatasetReady") == Reason.STORAGE_UNAVAILABLE and outcome.requeue_after == 30
    status, outcome = core.reconcile_project(project(), ENOUGH, "MLflow: 503", None, NOW)
    assert reason(status, "Ready") == Reason.TRACKING_UNAVAILABLE and outcome.requeue_after == 30


def test_an_object_detection_project_needs_15_images_a_tag_and_trains_like_a_classifier():
    detector = project(type="ObjectDetection", domain="GeneralCompact")
    status, _ = core.reconcile_project(detector, ENOUGH, None, "7", NOW)
    assert (status.phase, reason(status, "DatasetReady")) == ("NotReady", Reason.TOO_FEW_IMAGES)
    assert conditions.find(status.conditions, "DatasetReady").message == 'tag "cat" has 5 images, 15 needed ' \
                                                                          '(and 1 more tags)'
    boxed = DatasetObservation(manifest_found=True, tag_counts={"fork": 15, "scissors": 16}, image_count=31)
    detector.status, _ = core.reconcile_project(detector, boxed, None, "7", NOW)
    assert detector.status.phase == "Ready" and reason(detector.status, "Ready") == Reason.READY
    plan = core.reconcile_iteration(iteration(), IterationObservation(project=detector), NOW)
    assert plan.train.request.project.spec.type == "ObjectDetection"
    assert plan.status.phase == "Training" and reason(plan.status, "Trained") == Reason.TRAINING


def test_transition_time_moves_only_when_the_status_flips():
    item = ready_project()
    again, outcome = core.reconcile_project(item, ENOUGH, None, "7", LATER)
    assert conditions.find(again.conditions, "Ready").last_transition_time == NOW
    assert outcome.events == []
    item.status = again
    broken, outcome = core.reconcile_project(item, DatasetObservation(manifest_found=True), None, "7", LATER)
    assert conditions.find(broken.conditions, "Ready").last_transition_time == LATER
    assert [(e.type, e.reason) for e in outcome.events] == [
        ("Warning", Reason.NO_IMAGES), ("Warning", Reason.DATASET_NOT_READY)]


def test_a_project_past_its_namespaces_project_limit_is_not_ready_and_its_iterations_do_not_train():
    """A project applied with kubectl past `projects` (create_project refuses it on the API): its dataset is not
    read, it is not Ready, and its Iterations wait; it looks again every 30 s, and is Ready once older ones go."""
    past = ProjectCount(limit=2, older=2)
    status, outcome = core.reconcile_project(project(), DatasetObservation(), None, None, NOW, past)
    ready = conditions.find(status.conditions, "Ready")
    assert (status.phase, ready.status, ready.reason) == ("NotReady", "False", Reason.PROJECT_LIMIT)
    assert ready.message == ("namespace ml holds 2 older projects and its limit projects is 2; this project is made "
                             "Ready once older ones are deleted")
    dataset = conditions.find(status.conditions, "DatasetReady")
    assert (dataset.status, dataset.reason) == ("Unknown", Reason.PROJECT_LIMIT)
    assert status.image_count is None and status.experiment_id is None
    assert outcome.requeue_after == core.POLL_QUEUED
    assert ("Warning", Reason.PROJECT_LIMIT) in [(e.type, e.reason) for e in outcome.events]  # someone must act

    held = project()
    held.status = status
    plan = core.reconcile_iteration(iteration(), IterationObservation(project=held), NOW)
    assert plan.train is None and plan.status.phase == "Pending"
    trained = conditions.find(plan.status.conditions, "Trained")
    assert (trained.reason, trained.message) == (Reason.PROJECT_NOT_READY, ready.message)

    held.status, outcome = core.reconcile_project(held, ENOUGH, None, "7", LATER, ProjectCount(limit=2, older=1))
    assert held.status.phase == "Ready" and outcome.requeue_after is None
    assert core.reconcile_iteration(iteration(), IterationObservation(project=held), LATER).train is not None
    unlimited, _ = core.reconcile_project(project(), ENOUGH, None, "7", NOW, ProjectCount(limit=None, older=500))
    assert unlimited.phase == "Ready"


def test_a_ready_project_past_a_lowered_project_limit_stops_training_and_keeps_its_experiment():
    """The same rule by age: the youngest past the new limit are no longer Ready (the oldest keep working); the
    MLflow experiment it has stays named in its status."""
    status, _ = core.reconcile_project(ready_project(), DatasetObservation(), None, None, LATER,
                                       ProjectCount(limit=0, older=0))
    assert (status.phase, reason(status, "Ready")) == ("NotReady", Reason.PROJECT_LIMIT)
    assert status.experiment_id == "7"


def test_older_projects_are_those_created_before_by_time_then_name_and_not_being_deleted():
    def made(name, created, **meta):
        return {"metadata": {"name": name, "creationTimestamp": created, **meta}}

    item = project()
    item.metadata.model_extra["creationTimestamp"] = "2026-11-25T11:00:00Z"
    namespace = [made("a", "2026-11-25T10:00:00Z"), made("b", "2026-11-25T10:30:00Z", deletionTimestamp="x"),
                 made("birds", "2026-11-25T11:00:00Z"),  # same second, before "pets" by name
                 made("pets", "2026-11-25T11:00:00Z"), made("zebras", "2026-11-25T11:00:00Z"),
                 made("c", "2026-11-25T12:00:00Z")]
    assert core.older_projects(item, namespace) == 2  # "a" and "birds"


# ----------------------------------------------------------------------------------------------------------------
# iterations: training


def test_a_missing_project_is_waited_for():
    plan = core.reconcile_iteration(iteration(), IterationObservation(project=None), NOW)
    assert plan.status.phase == "Pending" and plan.train is None
    assert reason(plan.status, "Ready") == Reason.PROJECT_NOT_FOUND


def test_a_published_iteration_whose_project_was_deleted_is_no_longer_ready():
    published = publish(trained_iteration(publishName="pets-v1")).status
    orphan = trained_iteration(publishName="pets-v1")
    orphan.status = published
    plan = core.reconcile_iteration(orphan, IterationObservation(project=None), LATER)
    assert reason(plan.status, "Ready") == Reason.PROJECT_NOT_FOUND
    assert not conditions.is_true(plan.status.conditions, "Ready")
    assert reason(plan.status, "Published") == Reason.PROJECT_NOT_FOUND and plan.status.endpoint is None
    assert plan.status.phase == "Trained" and plan.status.metrics == METRICS and not plan.serve


def test_a_project_not_ready_is_waited_for():
    not_ready = project()
    not_ready.status, _ = core.reconcile_project(not_ready, DatasetObservation(), None, None, NOW)
    plan = core.reconcile_iteration(iteration(), IterationObservation(project=not_ready), NOW)
    assert plan.train is None and plan.status.phase == "Pending"
    assert reason(plan.status, "Trained") == Reason.PROJECT_NOT_READY
    assert conditions.find(plan.status.conditions, "Trained").message.startswith("no dataset manifest")


def test_a_ready_project_starts_one_training_job():
    item = iteration(trainingType="Advanced", budgetMinutes=20, resources={"gpus": 1})
    plan = core.reconcile_iteration(item, IterationObservation(project=ready_project()), NOW)
    assert plan.train.name == iteration_id(item) == "pets-1-0a1b2c3d"
    assert (plan.train.gpus, plan.train.options.training_type, plan.train.options.budget_minutes) == (1, "Advanced", 20)
    assert plan.status.phase == "Training" and plan.status.training_job == "pets-1-0a1b2c3d"
    assert plan.status.training_started == NOW
    assert reason(plan.status, "Trained") == Reason.TRAINING and plan.outcome.requeue_after == core.POLL_TRAINING


def follow(job: JobObservation, item=None):
    item = item or iteration()
    first = core.reconcile_iteration(item, IterationObservation(project=ready_project()), NOW)
    item.status = first.status
    return item, core.reconcile_iteration(item, IterationObservation(project=ready_project(), job=job), LATER)


def test_a_running_job_is_followed_and_never_created_twice():
    _, plan = follow(JobObservation(name="pets-1-0a1b2c3d", active=True))
    assert plan.train is None and plan.status.phase == "Training"
    assert reason(plan.status, "Trained") == Reason.TRAINING


def test_an_image_that_cannot_be_pulled_is_reported_while_waiting():
    _, plan = follow(JobObservation(name="j", active=True, waiting_reason="ImagePullBackOff",
                                    waiting_message="registry.example/trainer:9 not found"))
    assert reason(plan.status, "Trained") == Reason.IMAGE_PULL_FAILED
    assert plan.status.phase == "Training" and plan.outcome.requeue_after == core.POLL_TRAINING


def test_success_records_metrics_run_and_model():
    result = TrainingResult(outcome="Succeeded", reason=Reason.TRAINING_SUCCEEDED, message="trained on 12 images",
                            metrics=METRICS, mlflow_run_id="run-1", model_uri="s3://models/triton/ml/pets/pets-1/")
    _, plan = follow(JobObservation(name="j", succeeded=True, result=result, finished=LATER))
    status = plan.status
    assert status.phase == "Trained" and status.metrics == METRICS and status.mlflow_run_id == "run-1"
    assert status.model_uri.endswith("/pets-1/") and status.training_finished == LATER
    assert reason(status, "Trained") == reason(status, "Ready") == Reason.TRAINING_SUCCEEDED
    assert conditions.is_true(status.conditions, "Ready")


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (JobObservation(name="j", failed=True, result=TrainingResult(
            outcome="InvalidDataset", reason=Reason.TOO_FEW_IMAGES, message='tag "cat" has 3 usable images')),
         Reason.TOO_FEW_IMAGES),
        (JobObservation(name="j", failed=True, failure_reason="DeadlineExceeded"), Reason.BUDGET_EXCEEDED),
        (JobObservation(name="j", failed=True, failure_reason="BackoffLimitExceeded",
                        failure_message="Job has reached the specified backoff limit"), Reason.TRAINING_FAILED),
        (JobObservation(name="j", succeeded=True), Reason.NO_RESULT),
    ],
)
def test_failures_say_why(job, expected):
    _, plan = follow(job)
    assert plan.status.phase == "Failed"
    assert reason(plan.status, "Trained") == expected and reason(plan.status, "Ready") == expected
    assert any(e.type == "Warning" and e.reason == expected for e in plan.outcome.events)


def trained_iteration(**spec) -> Iteration:
    result = TrainingResult(outcome="Succeeded", reason=Reason.TRAINING_SUCCEEDED, message="ok", metrics=METRICS)
    item, plan = follow(JobObservation(name="j", succeeded=True, result=result), iteration(**spec))
    item.status = plan.status
    return item


def test_a_spec_change_after_training_is_reported_not_retrained():
    item = trained_iteration()
    changed = iteration(generation=2, trainingType="Advanced")
    changed.status = item.status
    plan = core.reconcile_iteration(changed, IterationObservation(project=ready_project()), LATER)
    assert plan.train is None and plan.status.phase == "Trained"
    assert reason(plan.status, "TrainingSpecCurrent") == Reason.SPEC_CHANGED_AFTER_TRAINING
    assert plan.status.observed_generation == 2


def test_a_publish_name_change_is_not_a_training_change():
    assert core.training_spec_hash(iteration()) == core.training_spec_hash(iteration(publishName="v1"))
    assert core.training_spec_hash(iteration()) != core.training_spec_hash(iteration(budgetMinutes=5))


# ----------------------------------------------------------------------------------------------------------------
# iterations: waiting for a turn to train


def queued(queue: TrainingQueue, item=None):
    return core.reconcile_iteration(item or iteration(), IterationObservation(project=ready_project(), queue=queue),
                                    NOW)


def test_a_training_past_the_namespace_limit_waits_queued_and_starts_when_a_slot_frees():
    plan = queued(TrainingQueue(limit=2, running=2))
    assert plan.train is None and plan.status.phase == "Queued" and plan.status.training_job is None
    assert reason(plan.status, "Trained") == reason(plan.status, "Ready") == Reason.CONCURRENT_TRAINING_LIMIT
    assert conditions.find(plan.status.conditions, "Trained").status == "Unknown"
    assert conditions.find(plan.status.conditions, "Trained").message == (
        "2 trainings of the namespace are running, its limit concurrent_trainings is 2; it starts when one ends")
    assert plan.outcome.requeue_after == core.POLL_QUEUED  # a raised limit sends no watch event
    assert [e.type for e in plan.outcome.events if e.reason == Reason.CONCURRENT_TRAINING_LIMIT] == [
        "Normal", "Normal"]  # Trained and Ready: waiting its turn is no fault

    item = iteration()
    item.status = plan.status
    started = queued(TrainingQueue(limit=2, running=1), item)
    assert started.train is not None and started.status.phase == "Training"
    assert reason(started.status, "Trained") == Reason.TRAINING and started.status.training_started == NOW


def test_the_oldest_waiting_iteration_takes_a_free_slot_first():
    plan = queued(TrainingQueue(limit=2, running=1, ahead=1))
    assert plan.train is None and plan.status.phase == "Queued"
    assert "limit concurrent_trainings is 2, and 1 queued before this one" in conditions.find(
        plan.status.conditions, "Trained").message
    assert queued(TrainingQueue(limit=2, running=1, ahead=0)).train is not None

    def waiting(name, created, **status):
        return {"metadata": {"name": name, "creationTimestamp": created, **status.pop("meta", {})},
                "status": {"phase": "Queued", **status}}

    namespace = [
        waiting("older", "2026-11-25T10:00:00Z"),
        waiting("same-time-first-by-name", "2026-11-25T11:00:00Z"),  # pets-1 was created at 11:00 too
        waiting("younger", "2026-11-25T12:00:00Z"),
        waiting("kueue-held", "2026-11-25T09:00:00Z", trainingJob="kueue-held-1234"),  # has its Job: not waiting
        waiting("deleted", "2026-11-25T09:00:00Z", meta={"deletionTimestamp": "2026-11-25T11:30:00Z"}),
        {"metadata": {"name": "running", "creationTimestamp": "2026-11-25T09:00:00Z"}, "status": {"phase": "Training"}},
        {"metadata": {"name": "new", "creationTimestamp": "2026-11-25T09:00:00Z"}},
    ]
    assert core.queued_ahead(iteration(), namespace) == 1  # "older"; "same-time-first-by-name" sorts after pets-1


def test_a_limit_of_zero_holds_every_training_and_no_limit_holds_none():
    plan = queued(TrainingQueue(limit=0))
    assert plan.train is None and plan.status.phase == "Queued"
    assert conditions.find(plan.status.conditions, "Trained").message == (
        "the namespace's limit concurrent_trainings is 0: no training starts until it is raised")
    assert queued(TrainingQueue(limit=None, running=50, ahead=50)).train is not None


def test_an_iteration_past_the_projects_iteration_limit_does_not_train_until_older_ones_go():
    """An Iteration applied with kubectl past iterations_per_project (train_project refuses it on the API): no Job,
    under Kueue too; it trains once older ones are deleted."""
    for queue in (TrainingQueue(iterations_limit=2, older_iterations=2),
                  TrainingQueue(iterations_limit=2, older_iterations=3, kueue_queue="training")):
        plan = queued(queue)
        assert plan.train is None and plan.status.phase == "Pending" and plan.status.training_job is None
        trained = conditions.find(plan.status.conditions, "Trained")
        assert (trained.status, trained.reason) == ("False", Reason.ITERATION_LIMIT)
        assert "limit iterations_per_project is 2; it trains once older ones are deleted" in trained.message
        assert plan.outcome.requeue_after == core.POLL_QUEUED
    assert queued(TrainingQueue(iterations_limit=2, older_iterations=1)).train is not None
    assert queued(TrainingQueue(iterations_limit=None, older_iterations=500)).train is not None

    def made(name, created, **meta):
        return {"metadata": {"name": name, "creationTimestamp": created, **meta}}

    item = iteration()
    item.metadata.model_extra["creationTimestamp"] = "2026-11-25T11:00:00Z"
    siblings = [made("a", "2026-11-25T10:00:00Z"), made("b", "2026-11-25T10:30:00Z", deletionTimestamp="x"),
                made(item.metadata.name, "2026-11-25T11:00:00Z"), made("c", "2026-11-25T12:00:00Z")]
    assert core.older_iterations(item, siblings) == 1  # not itself, a newer one or one being deleted


def test_with_kueue_the_job_is_created_at_once_and_kueue_says_why_it_waits():
    """Kueue's quota decides, not the namespace's limit: the Job is made (suspended) and the Iteration is Queued
    with what Kueue's Workload says, until Kueue admits it."""
    plan = queued(TrainingQueue(limit=0, running=9, kueue_queue="training"))
    assert plan.train is not None and plan.status.training_job == "pets-1-0a1b2c3d"
    assert plan.status.phase == "Queued" and plan.status.training_started is None
    assert reason(plan.status, "Trained") == reason(plan.status, "Ready") == Reason.QUEUED
    assert "Kueue's LocalQueue training" in conditions.find(plan.status.conditions, "Trained").message

    pending = JobObservation(name="pets-1-0a1b2c3d", suspended=True, admission_reason="Pending", admission_message=(
        "couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor default"))
    _, plan = follow(pending)
    assert plan.train is None and plan.status.phase == "Queued" and reason(plan.status, "Trained") == Reason.QUEUED
    assert conditions.find(plan.status.conditions, "Trained").message == (
        "Kueue: Pending: couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor "
        "default")
    _, plan = follow(JobObservation(name="j", suspended=True, admission_reason="Inadmissible",
                                    admission_message="LocalQueue training doesn't exist"))
    assert reason(plan.status, "Trained") == Reason.INADMISSIBLE and plan.status.phase == "Queued"
    assert ("Warning", Reason.INADMISSIBLE) in {(e.type, e.reason) for e in plan.outcome.events}  # a person acts
    _, plan = follow(JobObservation(name="j", suspended=True))  # Kueue has not looked at it yet
    assert reason(plan.status, "Trained") == Reason.QUEUED and plan.status.phase == "Queued"

    admitted = JobObservation(name="pets-1-0a1b2c3d", active=True, started=LATER)
    item = iteration()
    item.status = queued(TrainingQueue(kueue_queue="training")).status
    plan = core.reconcile_iteration(item, IterationObservation(project=ready_project(), job=admitted), LATER)
    assert plan.status.phase == "Training" and reason(plan.status, "Trained") == Reason.TRAINING
    assert plan.status.training_started == LATER  # its wait in the queue is no training time


# ----------------------------------------------------------------------------------------------------------------
# iterations: publishing


SERVING = ServingObservation(ready=True, models=(model_name("0a1b2c3d-uid"),), endpoint="http://kv-triton-pets.ml:8000")


def publish(item: Iteration, owner="pets-1", serving=SERVING):
    observed = IterationObservation(project=ready_project(), publish_owner=owner, serving=serving)
    return core.reconcile_iteration(item, observed, LATER)


def test_published_once_triton_serves_the_model():
    plan = publish(trained_iteration(publishName="pets-v1"))
    assert plan.serve and plan.status.phase == "Published"
    assert (plan.status.published_name, plan.status.endpoint) == ("pets-v1", SERVING.endpoint)
    assert reason(plan.status, "Published") == Reason.PUBLISHED and reason(plan.status, "Ready") == Reason.PUBLISHED


def test_a_model_of_another_iteration_of_the_same_name_does_not_publish():
    """Another namespace's project of this name, or this project before it was deleted and made again, has an
    Iteration of this name: a Triton loading that one's model serves nothing of this one."""
    item = trained_iteration(publishName="pets-v1")
    item.metadata.uid = "5e6f7a8b-uid"  # the same namespace and name, another object
    plan = publish(item)
    assert plan.serve and plan.status.phase == "Trained" and plan.status.published_name is None
    assert reason(plan.status, "Published") == Reason.PUBLISHING


def test_a_served_model_is_named_after_the_iterations_uid_not_its_name():
    name = model_name("0a1b2c3d-uid")
    assert name == model_name("0a1b2c3d-uid") != model_name("5e6f7a8b-uid")  # a republish: the same model
    assert re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name) and "0a1b2c3d-uid" in name  # Triton and S3 take it as is
    with pytest.raises(ValueError):
        model_name(None)  # never a shared fallback name


def test_publishing_waits_for_triton():
    plan = publish(trained_iteration(publishName="pets-v1"),
                   serving=ServingObservation(ready=False, models=SERVING.models, endpoint="e", message="0/1 ready"))
    assert plan.serve and plan.status.phase == "Trained" and plan.status.published_name is None
    assert reason(plan.status, "Published") == Reason.PUBLISHING and plan.outcome.requeue_after == core.POLL_SERVING
    assert not conditions.is_true(plan.status.conditions, "Ready")


def test_a_triton_outage_never_unpublishes():
    """Served once, the model stays published while Triton is down or reloading (the gateway answers 503 meanwhile,
    which clients retry; a 404 "not published" they would not), and is served again when Triton is back."""
    item = trained_iteration(publishName="pets-v1")
    item.status = publish(item).status
    down = ServingObservation(ready=False, models=(), endpoint="e", message="Triton: connection refused")
    plan = publish(item, serving=down)
    assert plan.serve and plan.status.phase == "Published"
    assert (plan.status.published_name, plan.status.endpoint) == ("pets-v1", SERVING.endpoint)
    assert reason(plan.status, "Published") == reason(plan.status, "Ready") == Reason.SERVING_NOT_READY
    assert "connection refused" in conditions.find(plan.status.conditions, "Ready").message
    assert plan.outcome.requeue_after == core.POLL_SERVING
    item.status = plan.status
    assert reason(publish(item).status, "Ready") == Reason.PUBLISHED


def test_a_publish_name_changed_while_triton_is_down_waits_to_be_served():
    item = trained_iteration(publishName="pets-v1")
    item.status = publish(item).status
    item.spec.publish_name = "pets-v2"
    plan = publish(item, serving=ServingObservation(ready=False, models=(), endpoint="e", message="down"))
    assert plan.status.phase == "Trained" and plan.status.published_name is None
    assert reason(plan.status, "Published") == Reason.PUBLISHING


def test_a_second_claimant_of_a_publish_name_gets_a_conflict():
    plan = publish(trained_iteration(publishName="pets-v1"), owner="pets-0")
    assert not plan.serve and plan.status.published_name is None
    assert reason(plan.status, "Published") == Reason.PUBLISH_NAME_CONFLICT
    assert '"pets-0"' in conditions.find(plan.status.conditions, "Published").message


def test_an_untrained_iteration_is_published_later():
    plan = core.reconcile_iteration(iteration(publishName="pets-v1"), IterationObservation(project=ready_project()),
                                    NOW)
    assert not plan.serve and reason(plan.status, "Published") == Reason.NOT_TRAINED


def test_removing_the_publish_name_unpublishes():
    item = trained_iteration(publishName="pets-v1")
    item.status = publish(item).status
    unpublished = iteration()
    unpublished.status = item.status
    plan = publish(unpublished)
    assert not plan.serve and plan.status.phase == "Trained"
    assert plan.status.published_name is None and plan.status.endpoint is None
    assert reason(plan.status, "Published") == Reason.NOT_PUBLISHED


def test_the_oldest_claimant_owns_a_publish_name():
    def claim(name, created, publish_name="v1"):
        return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"publishName": publish_name}}

    owners = core.publish_owners([claim("b", "2026-01-02T00:00:00Z"), claim("a", "2026-01-03T00:00:00Z"),
                                  claim("c", "2026-01-02T00:00:00Z"), claim("d", "2026-01-01T00:00:00Z", "v2")])
    assert owners == {"v1": "b", "v2": "d"}


def test_triton_loads_trained_owners_of_a_publish_name_that_are_not_being_deleted():
    def item(name, created, publish_name="v1", trained=True, deleting=False):
        return {"metadata": {"name": name, "uid": f"{name}-uid", "creationTimestamp": created,
                             "deletionTimestamp": "2026-01-09T00:00:00Z" if deleting else None},
                "spec": {"publishName": publish_name} if publish_name else {},
                "status": {"conditions": [{"type": "Trained", "status": "True" if trained else "False"}]}}

    iterations = [item("old", "2026-01-01T00:00:00Z", deleting=True), item("a", "2026-01-02T00:00:00Z"),
                  item("b", "2026-01-03T00:00:00Z"), item("c", "2026-01-01T00:00:00Z", "v2", trained=False),
                  item("d", "2026-01-01T00:00:00Z", publish_name=None)]
    # "old" goes, so "a" owns v1 and "b" is the conflicting claimant
    assert core.served_models(iterations) == [model_name("a-uid")]
