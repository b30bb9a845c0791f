"""The gateway's catalog: which projects and published iterations a key may reach, built from resource bodies."""

import pytest

from kubevision.core.api import Iteration
from kubevision.core.labels import model_name
from kubevision.gateway.catalog import Catalog, NamespaceKeys
from kubevision.gateway.errors import NotFound, Unauthorized
from kubevision.gateway.services.iterations import training_status

UID_A, UID_B = "0b0d2c8e-1111-4a8e-9c55-000000000001", "0b0d2c8e-2222-4a8e-9c55-000000000002"


def project(namespace, name, uid, type_="Classification"):
    return {"metadata": {"namespace": namespace, "name": name, "uid": uid},
            "spec": {"type": type_, "dataset": {"bucket": "data", "prefix": f"{namespace}/{name}/"}}}


def iteration(namespace, name, project_name, phase="Published", published="v1", endpoint="http://triton:8000"):
    return {"metadata": {"namespace": namespace, "name": name, "uid": f"{namespace}-{name}-uid"},
            "spec": {"projectRef": {"name": project_name}},
            "status": {"phase": phase, "publishedName": published, "endpoint": endpoint,
                       "modelUri": f"s3://models/triton/{namespace}/{project_name}/{name}/"}}


@pytest.fixture
def catalog():
    return Catalog.build(
        [project("team-a", "trees", UID_A), project("team-b", "trees", UID_B)],
        [iteration("team-a", "trees-1", "trees"), iteration("team-a", "trees-2", "trees", phase="Trained",
                                                            published=None),
         iteration("team-b", "trees-1", "trees", published="v2")],
        {"team-a": NamespaceKeys("key-a", "train-a"), "team-b": NamespaceKeys("key-b", "train-b")},
    )


def test_a_key_opens_its_own_namespace_only(catalog):
    assert catalog.namespace_of("prediction", "key-a") == "team-a"
    assert catalog.namespace_of("prediction", "key-b") == "team-b"
    with pytest.raises(Unauthorized, match="not valid"):
        catalog.namespace_of("prediction", "train-a")  # a training key is no prediction key
    with pytest.raises(Unauthorized, match="missing"):
        catalog.namespace_of("prediction", None)


def test_a_project_whose_dataset_is_outside_its_namespace_is_not_served():
    """Team B's project pointing at team A's dataset: no route of the gateway reaches it, or the data."""
    foreign = project("team-b", "copy", UID_B)
    foreign["spec"]["dataset"]["prefix"] = "team-a/trees/"
    catalog = Catalog.build([project("team-a", "trees", UID_A), foreign], [iteration("team-b", "copy-1", "copy")],
                            {"team-a": NamespaceKeys("key-a", "train-a"), "team-b": NamespaceKeys("key-b", "train-b")})
    assert set(catalog.projects) == {UID_A} and not catalog.iterations.get(UID_B)
    assert all(uid == UID_A for uid, _ in catalog.published)
    with pytest.raises(NotFound):
        catalog.project("team-b", UID_B)


def test_another_namespaces_project_is_as_unknown_as_a_missing_one(catalog):
    assert catalog.project("team-a", UID_A).name == "trees"
    with pytest.raises(NotFound) as foreign:
        catalog.project("team-a", UID_B)
    with pytest.raises(NotFound) as missing:
        catalog.project("team-a", "0b0d2c8e-9999-4a8e-9c55-000000000009")
    assert foreign.value.code == missing.value.code == "NotFoundProject"
    assert foreign.value.status == missing.value.status == 404


def test_only_published_iterations_are_served_by_their_publish_name(catalog):
    model = catalog.published_model(catalog.project("team-a", UID_A), "v1")
    assert (model.iteration_uid, model.endpoint) == ("team-a-trees-1-uid", "http://triton:8000")
    assert model.model_uri == "s3://models/triton/team-a/trees/trees-1/"
    with pytest.raises(NotFound) as error:
        catalog.published_model(catalog.project("team-a", UID_A), "v2")  # team-b's publish name
    assert error.value.code == "NotFoundIteration"


def test_two_namespaces_iterations_of_one_name_are_two_models(catalog):
    """team-a and team-b each have a project "trees" with an Iteration "trees-1": one Triton serving both (local
    mode's, a shared pool) must tell them apart, and so must every cache keyed by the model."""
    a = catalog.published_model(catalog.project("team-a", UID_A), "v1")
    b = catalog.published_model(catalog.project("team-b", UID_B), "v2")
    assert a.model == model_name(a.iteration_uid) and b.model == model_name(b.iteration_uid)
    assert a.model != b.model


def test_deleted_projects_and_iterations_are_not_served():
    deleted = project("team-a", "trees", UID_A)
    deleted["metadata"]["deletionTimestamp"] = "2026-11-26T00:00:00Z"
    catalog = Catalog.build([deleted], [iteration("team-a", "trees-1", "trees")], {})
    assert catalog.projects == {} and catalog.published == {}


@pytest.mark.parametrize(("phase", "status"), [("Pending", "Training"), ("Queued", "Training"),
                                               ("Training", "Training"), ("Trained", "Completed"),
                                               ("Failed", "Failed")])
def test_an_iteration_waiting_for_its_turn_to_train_is_training_to_custom_vision(phase, status):
    """Custom Vision's iterations know no queue: one held by its namespace's concurrent trainings, or by Kueue,
    is Training, as Azure shows one it has not started yet."""
    body = iteration("team-a", "trees-3", "trees", phase=phase, published=None)
    assert training_status(Iteration.model_validate(body)) == status
