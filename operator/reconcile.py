"""The reconcile core: from a resource, what is observed of the world, and `now`, compute the status to write and
what should exist. No I/O: the kopf driver (Kubernetes) and the local controller turn plans into actions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from kubevision.core import conditions
from kubevision.core.api import (
    ClassificationType,
    CustomVisionProject,
    CustomVisionProjectStatus,
    Iteration,
    IterationPhase,
    IterationStatus,
    ObjectMeta,
    ProjectPhase,
    TagCount,
)
from kubevision.core.labels import model_name
from kubevision.core.reasons import Reason
from kubevision.core.storage import dataset_prefix_problem
from kubevision.core.training import (
    NEGATIVE_TAG,
    ResolvedTraining,
    TrainingRequest,
    TrainingResult,
    iteration_id,
    min_images_per_tag,
    resolve_training,
)

# Condition types
DATASET_READY = "DatasetReady"
READY = "Ready"
TRAINED = "Trained"
SPEC_CURRENT = "TrainingSpecCurrent"
PUBLISHED = "Published"

RETRY_FAULT = 30.0  # seconds before an unreachable S3 or MLflow is tried again
POLL_TRAINING = 10.0  # seconds between looks at a running training Job
POLL_SERVING = 10.0
POLL_QUEUED = 30.0  # seconds between looks at what waits on a limit (a training slot, older projects or Iterations
# to go): a raised limit, or a deleted neighbour, sends it no event


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: Reason
    message: str


@dataclass
class Outcome:
    """When to look again (None: when something changes), and what to tell people."""

    requeue_after: float | None = None
    events: list[Event] = field(default_factory=list)


def _created(metadata: ObjectMeta | dict) -> tuple[str, str]:
    """What orders resources by age: creation time, then name (two made in the same second)."""
    if isinstance(metadata, ObjectMeta):
        return metadata.model_extra.get("creationTimestamp") or "", metadata.name
    return metadata.get("creationTimestamp") or "", metadata["name"]


def _older(mine: tuple[str, str], items: list[dict]) -> int:
    """Of `items`, those created before `mine` and not being deleted."""
    return sum(1 for item in items if not item["metadata"].get("deletionTimestamp")
               and _created(item["metadata"]) < mine)


# ----------------------------------------------------------------------------------------------------------------
# Projects


@dataclass(frozen=True)
class DatasetObservation:
    error: str | None = None  # S3 could not be read
    manifest_found: bool = False
    manifest_error: str | None = None  # a line of the manifest is no image record
    tag_counts: dict[str, int] = field(default_factory=dict)
    image_count: int = 0


def dataset_problem(project: CustomVisionProject, dataset: DatasetObservation) -> tuple[Reason, str] | None:
    """What keeps the dataset from training, by the manifest's counts (the trainer checks each image too)."""
    location = f"s3://{project.spec.dataset.bucket}/{project.spec.dataset.prefix}manifest.jsonl"
    if not dataset.manifest_found:
        return Reason.DATASET_NOT_FOUND, f"no dataset manifest at {location}"
    if dataset.manifest_error:
        return Reason.MANIFEST_INVALID, f"{location}: {dataset.manifest_error}"
    if dataset.image_count == 0 or not dataset.tag_counts:
        return Reason.NO_IMAGES, f"the dataset at {location} has no tagged images"
    needed = min_images_per_tag(project.spec.type)
    short = {tag: n for tag, n in sorted(dataset.tag_counts.items()) if n < needed}
    if short:
        tag, count = next(iter(short.items()))
        more = f" (and {len(short) - 1} more tags)" if len(short) > 1 else ""
        return Reason.TOO_FEW_IMAGES, f'tag "{tag}" has {count} images, {needed} needed{more}'
    tags = [t for t in dataset.tag_counts if not (t == NEGATIVE_TAG and _multilabel(project))]
    if len(dataset.tag_counts) < 2 or not tags:
        return Reason.TOO_FEW_TAGS, f"found tags {sorted(dataset.tag_counts)}; at least 2 are needed"
    return None


def foreign_dataset(project: CustomVisionProject) -> str | None:
    """Why the project's dataset is refused (another namespace's, or its whole namespace's); None when it is its
    own. A refused dataset is never read, snapshotted or trained."""
    return dataset_prefix_problem(project.metadata.namespace, project.spec.dataset.prefix)


def _multilabel(project: CustomVisionProject) -> bool:
    return project.spec.classification_type == ClassificationType.MULTILABEL


@dataclass(frozen=True)
class ProjectCount:
    """The namespace's limit of projects (None: none), and its projects older than this one. Past the limit (one
    applied with kubectl or Argo CD, where create_project refuses), the project is not made Ready until older ones
    go: by age, so the oldest keep working whatever order they are reconciled in."""

    limit: int | None = None
    older: int = 0

    @property
    def exceeded(self) -> bool:
        return self.limit is not None and self.older >= self.limit


def older_projects(project: CustomVisionProject, namespace_projects: list[dict]) -> int:
    """The namespace's projects created before `project` (then first by name), not being deleted."""
    return _older(_created(project.metadata), namespace_projects)


def reconcile_project(
    project: CustomVisionProject, dataset: DatasetObservation, tracking_error: str | None,
    experiment_id: str | None, now: datetime, count: ProjectCount = ProjectCount(),
) -> tuple[CustomVisionProjectStatus, Outcome]:
    generation = project.metadata.generation
    status = CustomVisionProjectStatus(
        observed_generation=generation, conditions=list(project.status.conditions), experiment_id=experiment_id,
    )
    outcome = Outcome()

    def condition(type_: str, value: str, reason: Reason, message: str) -> None:
        status.conditions = conditions.set_condition(status.conditions, type_, value, reason, message, generation, now)

    foreign = foreign_dataset(project)
    if foreign is not None:  # no requeue: only a change of the spec, which is watched, can fix it
        condition(DATASET_READY, "False", Reason.DATASET_OUTSIDE_NAMESPACE, foreign)
    elif count.exceeded:  # not read (sequence.py); an experiment made before the limit was lowered stays
        status.experiment_id = project.status.experiment_id
        condition(DATASET_READY, "Unknown", Reason.PROJECT_LIMIT, "not read while the project is past its "
                                                                  "namespace's limit of projects")
    elif dataset.error is not None:
        condition(DATASET_READY, "Unknown", Reason.STORAGE_UNAVAILABLE, dataset.error)
        outcome.requeue_after = RETRY_FAULT
    else:
        status.image_count = dataset.image_count
        status.tags = [TagCount(tag=t, images=n) for t, n in sorted(dataset.tag_counts.items())]
        problem = dataset_problem(project, dataset)
        if problem:
            condition(DATASET_READY, "False", *problem)
            outcome.requeue_after = RETRY_FAULT  # images may arrive at any time: look again
        else:
            condition(DATASET_READY, "True", Reason.ENOUGH_IMAGES,
                      f"{dataset.image_count} images, {len(dataset.tag_counts)} tags")
    if count.exceeded:
        condition(READY, "False", Reason.PROJECT_LIMIT,
                  f"namespace {project.metadata.namespace} holds {count.older} older projects and its limit projects "
                  f"is {count.limit}; this project is made Ready once older ones are deleted")
        outcome.requeue_after = POLL_QUEUED
    elif not conditions.is_true(status.conditions, DATASET_READY):
        dataset_condition = conditions.find(status.conditions, DATASET_READY)
        condition(READY, "False", Reason.DATASET_NOT_READY, dataset_condition.message)
    elif tracking_error is not None:
        condition(READY, "False", Reason.TRACKING_UNAVAILABLE, tracking_error)
        outcome.requeue_after = RETRY_FAULT
    else:
        condition(READY, "True", Reason.READY, "the dataset can train iterations")
    status.phase = ProjectPhase.READY if conditions.is_true(status.conditions, READY) else ProjectPhase.NOT_READY
    _transition_events(project.status.conditions, status.conditions, outcome)
    return status, outcome


# ----------------------------------------------------------------------------------------------------------------
# Iterations


@dataclass(frozen=True)
class JobObservation:
    name: str
    active: bool = False
    succeeded: bool = False
    failed: bool = False
    failure_reason: str = ""  # the Job's Failed condition: DeadlineExceeded, BackoffLimitExceeded, …
    failure_message: str = ""
    waiting_reason: str = ""  # of its pod: ErrImagePull, ImagePullBackOff, …
    waiting_message: str = ""
    result: TrainingResult | None = None  # the trainer's termination message
    started: datetime | None = None
    finished: datetime | None = None
    suspended: bool = False  # created suspended for Kueue, or suspended again by it (preempted): no pod runs
    admission_reason: str = ""  # why Kueue holds it (its Workload's QuotaReserved or Admitted that is not True)
    admission_message: str = ""


@dataclass(frozen=True)
class TrainingQueue:
    """Whether a training may start now. The namespace's limit on trainings at once (None: none), the trainings that
    hold a slot (started, not ended), and the Iterations waiting for one ahead of this one: the oldest goes first.
    With a Kueue LocalQueue, Kueue decides instead: the Job is created suspended, and Kueue admits it by quota."""

    limit: int | None = None
    running: int = 0
    ahead: int = 0
    kueue_queue: str = ""
    # The namespace's limit of iterations a project keeps, and the project's Iterations older than this one: past
    # the limit (one applied with kubectl, where train_project refuses), it does not train until older ones go.
    iterations_limit: int | None = None
    older_iterations: int = 0


@dataclass(frozen=True)
class ServingObservation:
    ready: bool
    models: tuple[str, ...]  # models the serving Triton is asked to load
    endpoint: str
    message: str = ""
    version: str = ""  # the Deployment's resourceVersion, for a patch that must not overwrite a concurrent one
    missing: bool = False  # the model is not in the model repository: waiting cannot help


@dataclass(frozen=True)
class IterationObservation:
    project: CustomVisionProject | None
    job: JobObservation | None = None
    publish_owner: str | None = None  # the Iteration that holds spec.publishName within the project
    serving: ServingObservation | None = None
    queue: TrainingQueue = field(default_factory=TrainingQueue)  # looked at only while no training has started


@dataclass(frozen=True)
class TrainingJob:
    """What the training Job must run; the drivers build the Kubernetes Job or the process from it."""

    name: str
    request: TrainingRequest
    options: ResolvedTraining
    gpus: int


@dataclass
class IterationPlan:
    status: IterationStatus
    outcome: Outcome
    train: TrainingJob | None = None  # ensure the snapshot and this Job exist (adopting one that does)
    serve: bool = False  # the project's serving must load this Iteration's model


def training_spec_hash(iteration: Iteration) -> str:
    """Everything in the spec that training reads; publishName is not part of it."""
    relevant = iteration.spec.model_dump(mode="json", by_alias=True, exclude={"publish_name"}, exclude_none=True)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def publish_owners(iterations: list[dict]) -> dict[str, str]:
    """publishName -> the Iteration that holds it: the oldest claimant (then the first by name) wins."""
    owners: dict[str, tuple[str, str]] = {}
    for item in iterations:
        name = (item.get("spec") or {}).get("publishName")
        if not name:
            continue
        claim = _created(item["metadata"])
        if name not in owners or claim < owners[name]:
            owners[name] = claim
    return {publish_name: claim[1] for publish_name, claim in owners.items()}


def served_models(iterations: list[dict]) -> list[str]:
    """The models a project's Triton loads (by model_name): of its Iterations trained, not being deleted, and
    owners of their publishName."""
    alive = [i for i in iterations if not i["metadata"].get("deletionTimestamp")]
    owners = publish_owners(alive)
    return sorted(
        model_name(i["metadata"].get("uid")) for i in alive
        if i["spec"].get("publishName") and owners.get(i["spec"]["publishName"]) == i["metadata"]["name"]
        and any(c["type"] == TRAINED and c["status"] == "True" for c in (i.get("status") or {}).get("conditions", []))
    )


def training_ended(status: IterationStatus) -> bool:
    """Trained or failed: its training is not looked at again."""
    return conditions.is_true(status.conditions, TRAINED) or status.phase == IterationPhase.FAILED


def waiting_for_slot(item: dict) -> bool:
    """An Iteration (as stored) queued by its namespace's concurrent-training limit: Queued, with no Job yet."""
    status = item.get("status") or {}
    return (status.get("phase") == IterationPhase.QUEUED and not status.get("trainingJob")
            and not item["metadata"].get("deletionTimestamp"))


def queued_ahead(iteration: Iteration, namespace_iterations: list[dict]) -> int:
    """The namespace's Iterations waiting for a training slot that came before `iteration`: created earlier (then
    first by name). Oldest first, so a stream of new Iterations never starves an old one."""
    mine = _created(iteration.metadata)
    return sum(1 for item in namespace_iterations if waiting_for_slot(item) and _created(item["metadata"]) < mine)


def older_iterations(iteration: Iteration, siblings: list[dict]) -> int:
    """The Iterations of the project created before `iteration` (then first by name), not being deleted."""
    return _older(_created(iteration.metadata), siblings)


def reconcile_iteration(iteration: Iteration, observed: IterationObservation, now: datetime) -> IterationPlan:
    generation = iteration.metadata.generation
    old = iteration.status
    # The training record (results, timestamps, the spec it used) is kept; everything else is recomputed.
    status = old.model_copy(deep=True)
    status.observed_generation = generation
    plan = IterationPlan(status=status, outcome=Outcome())

    def condition(type_: str, value: str, reason: Reason, message: str) -> None:
        status.conditions = conditions.set_condition(status.conditions, type_, value, reason, message, generation, now)

    project = observed.project
    trained = conditions.is_true(old.conditions, TRAINED)
    if not training_ended(old):
        _reconcile_training(iteration, observed, now, plan, condition)
        trained = conditions.is_true(status.conditions, TRAINED)
    if status.training_spec_hash is not None:
        if status.training_spec_hash == training_spec_hash(iteration):
            condition(SPEC_CURRENT, "True", Reason.SPEC_CURRENT, "the spec is the one training used")
        else:
            condition(SPEC_CURRENT, "False", Reason.SPEC_CHANGED_AFTER_TRAINING,
                      "the training spec changed after training started; it was not retrained: "
                      "create a new Iteration to train with the new spec")
    _reconcile_publishing(iteration, observed, trained, plan, condition)
    if project is None:  # never created, or deleted since: its Triton went with it
        condition(READY, "False", Reason.PROJECT_NOT_FOUND,
                  f'CustomVisionProject "{iteration.spec.project_ref.name}" does not exist in this namespace')
        plan.outcome.requeue_after = RETRY_FAULT
    else:
        ready = trained and (not iteration.spec.publish_name or conditions.is_true(status.conditions, PUBLISHED))
        if ready:
            condition(READY, "True", Reason.PUBLISHED if iteration.spec.publish_name else Reason.TRAINING_SUCCEEDED,
                      "the model is served" if iteration.spec.publish_name else "the model is trained")
        else:
            blocking = next((c for c in (conditions.find(status.conditions, t) for t in (TRAINED, PUBLISHED))
                             if c is not None and c.status != "True"), None)
            if blocking is not None:
                condition(READY, "False", Reason(blocking.reason), blocking.message)
    _transition_events(old.conditions, status.conditions, plan.outcome)
    return plan


def _reconcile_training(iteration, observed: IterationObservation, now, plan: IterationPlan, condition) -> None:
    status, project, job = plan.status, observed.project, observed.job
    if project is None:  # Ready says so
        status.phase = IterationPhase.PENDING
        return
    if job is None:
        foreign = foreign_dataset(project)  # also when the project's Ready predates a change of its prefix
        if foreign is not None or not conditions.is_true(project.status.conditions, READY):
            project_ready = conditions.find(project.status.conditions, READY)
            status.phase = IterationPhase.PENDING
            condition(TRAINED, "False", Reason.PROJECT_NOT_READY, foreign or (
                project_ready.message if project_ready
                else f'waiting for CustomVisionProject "{project.metadata.name}" to be reconciled'))
            plan.outcome.requeue_after = RETRY_FAULT
            return
        queue = observed.queue
        if queue.iterations_limit is not None and queue.older_iterations >= queue.iterations_limit:
            status.phase = IterationPhase.PENDING
            condition(TRAINED, "False", Reason.ITERATION_LIMIT,
                      f"project {project.metadata.name} keeps {queue.older_iterations} older iterations and its "
                      f"namespace's limit iterations_per_project is {queue.iterations_limit}; it trains once older "
                      "ones are deleted")
            plan.outcome.requeue_after = POLL_QUEUED
            return
        if not queue.kueue_queue and queue.limit is not None and queue.running + queue.ahead >= queue.limit:
            status.phase = IterationPhase.QUEUED
            condition(TRAINED, "Unknown", Reason.CONCURRENT_TRAINING_LIMIT, _limit_message(queue))
            plan.outcome.requeue_after = POLL_QUEUED
            return
        options = resolve_training(project, iteration)
        plan.train = TrainingJob(name=iteration_id(iteration), options=options, gpus=iteration.spec.resources.gpus,
                                 request=TrainingRequest(project=project, iteration=iteration))
        status.training_spec_hash = training_spec_hash(iteration)
        status.training_job = plan.train.name
        if queue.kueue_queue:  # its start is Kueue's: the Job and its Workload are watched
            status.phase = IterationPhase.QUEUED
            condition(TRAINED, "Unknown", Reason.QUEUED,
                      f"training Job {plan.train.name} created in Kueue's LocalQueue {queue.kueue_queue}; waiting "
                      "for Kueue to admit it")
            return
        status.training_started = now
        status.phase = IterationPhase.TRAINING
        condition(TRAINED, "Unknown", Reason.TRAINING, f"training Job {plan.train.name} created")
        plan.outcome.requeue_after = POLL_TRAINING
        return
    status.training_job = job.name
    status.training_started = status.training_started or job.started
    if status.training_spec_hash is None:  # an adopted Job: it trains the spec as it was when it was created
        status.training_spec_hash = training_spec_hash(iteration)
    result = job.result
    if job.succeeded and result is not None and result.outcome == "Succeeded":
        status.phase = IterationPhase.TRAINED
        status.training_finished = job.finished or now
        status.metrics, status.mlflow_run_id, status.model_uri = result.metrics, result.mlflow_run_id, result.model_uri
        condition(TRAINED, "True", Reason.TRAINING_SUCCEEDED, result.message)
    elif job.failed or job.succeeded:
        status.phase = IterationPhase.FAILED
        status.training_finished = job.finished or now
        status.mlflow_run_id = result.mlflow_run_id if result else None
        if result is not None and result.outcome != "Succeeded":
            condition(TRAINED, "False", result.reason, result.message)
        elif job.failure_reason == "DeadlineExceeded":
            condition(TRAINED, "False", Reason.BUDGET_EXCEEDED,
                      f"training ran past its budget of {resolve_training(observed.project, iteration).budget_minutes}"
                      " minutes")
        elif job.succeeded:
            condition(TRAINED, "False", Reason.NO_RESULT, f"Job {job.name} ended without a training result")
        else:
            condition(TRAINED, "False", Reason.TRAINING_FAILED,
                      f"Job {job.name} failed ({job.failure_reason}): {job.failure_message}".strip())
    elif job.suspended:  # Kueue holds it: no pod runs until Kueue admits it (again, after a preemption)
        status.phase = IterationPhase.QUEUED
        if job.admission_reason:
            reason = Reason.INADMISSIBLE if job.admission_reason == Reason.INADMISSIBLE else Reason.QUEUED
            condition(TRAINED, "Unknown", reason, f"Kueue: {job.admission_reason}: {job.admission_message}")
        else:
            condition(TRAINED, "Unknown", Reason.QUEUED, f"training Job {job.name} is suspended until Kueue admits it")
    else:
        status.phase = IterationPhase.TRAINING
        if job.waiting_reason in {"ErrImagePull", "ImagePullBackOff", "InvalidImageName"}:
            condition(TRAINED, "Unknown", Reason.IMAGE_PULL_FAILED, f"{job.waiting_reason}: {job.waiting_message}")
        else:
            condition(TRAINED, "Unknown", Reason.TRAINING, f"training Job {job.name} is running")
        plan.outcome.requeue_after = POLL_TRAINING


def _limit_message(queue: TrainingQueue) -> str:
    if queue.limit == 0:
        return "the namespace's limit concurrent_trainings is 0: no training starts until it is raised"
    ahead = f", and {queue.ahead} queued before this one" if queue.ahead else ""
    return (f"{queue.running} trainings of the namespace are running, its limit concurrent_trainings is "
            f"{queue.limit}{ahead}; it starts when one ends")


def _reconcile_publishing(iteration, observed: IterationObservation, trained: bool, plan: IterationPlan,
                          condition) -> None:
    status, name = plan.status, iteration.spec.publish_name
    if not name:
        status.published_name = status.endpoint = None
        condition(PUBLISHED, "False", Reason.NOT_PUBLISHED, "spec.publishName is not set")
        if status.phase == IterationPhase.PUBLISHED:
            status.phase = IterationPhase.TRAINED
        return
    if observed.project is None:
        status.published_name = status.endpoint = None
        condition(PUBLISHED, "False", Reason.PROJECT_NOT_FOUND, "its project, and the project's Triton, are gone")
        if status.phase == IterationPhase.PUBLISHED:
            status.phase = IterationPhase.TRAINED
        return
    if observed.publish_owner not in (None, iteration.metadata.name):
        status.published_name = status.endpoint = None
        condition(PUBLISHED, "False", Reason.PUBLISH_NAME_CONFLICT,
                  f'Iteration "{observed.publish_owner}" of this project already publishes "{name}"')
        return
    if not trained:
        condition(PUBLISHED, "False", Reason.NOT_TRAINED, f'"{name}" is published once training succeeds')
        return
    plan.serve = True
    serving = observed.serving
    if serving is not None and serving.missing:
        status.phase = IterationPhase.TRAINED
        status.published_name = status.endpoint = None
        condition(PUBLISHED, "False", Reason.MODEL_NOT_FOUND, serving.message)
        plan.outcome.requeue_after = RETRY_FAULT
    elif serving is not None and serving.ready and model_name(iteration.metadata.uid) in serving.models:
        status.phase = IterationPhase.PUBLISHED
        status.published_name, status.endpoint = name, serving.endpoint
        condition(PUBLISHED, "True", Reason.PUBLISHED, f'served as "{name}" at {serving.endpoint}')
    else:
        message = serving.message if serving is not None and serving.message else "waiting for Triton to be ready"
        plan.outcome.requeue_after = POLL_SERVING
        if status.phase == IterationPhase.PUBLISHED and status.published_name == name:
            # Served until now: Triton down or reloading is a fault to wait out, never an unpublish. The gateway
            # keeps routing to it, and answers 503 with Retry-After (which clients retry) until Triton is back.
            condition(PUBLISHED, "False", Reason.SERVING_NOT_READY,
                      f'still published as "{name}"; predictions answer 503 until Triton is back: {message}')
            return
        status.phase = IterationPhase.TRAINED
        status.published_name = status.endpoint = None
        condition(PUBLISHED, "Unknown", Reason.PUBLISHING, message)


# A False condition with one of these reasons is a state, not a fault: its Event is Normal.
_EXPECTED = {Reason.NOT_PUBLISHED, Reason.NOT_TRAINED, Reason.PROJECT_NOT_READY, Reason.CONCURRENT_TRAINING_LIMIT,
             Reason.QUEUED}


def _transition_events(old, new, outcome: Outcome) -> None:
    """One Event for each condition whose reason changed: what a person reading `kubectl describe` follows."""
    before = {c.type: c.reason for c in old}
    for c in new:
        if before.get(c.type) != c.reason:
            kind = "Warning" if c.status == "False" and c.reason not in _EXPECTED else "Normal"
            outcome.events.append(Event(kind, Reason(c.reason), f"{c.type}: {c.message}"))
