"""The local MLflow tracking server: runs in SQLite, artifacts land in the local S3, the registry and the UI answer;
one process, without MLflow's job machinery."""

from datetime import UTC, datetime
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow.tracking import MlflowClient

from kubevision.core import api, conditions, tracking
from kubevision.core.storage import ObjectStore
from kubevision.local import memory
from kubevision.local.supervisor import MLFLOW_BUCKET
from kubevision.operator.observe import sync_tracking


def test_a_run_with_metrics_and_an_artifact(platform, tmp_path):
    client = MlflowClient(platform.mlflow_settings().tracking_uri)
    experiment_id = client.create_experiment("tests-foundation")
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "training_type", "Quick")
    client.log_metric(run.info.run_id, "precision", 0.93)
    (tmp_path / "labels.txt").write_text("hemlock\ncherry\n")
    client.log_artifact(run.info.run_id, str(tmp_path / "labels.txt"))
    client.set_terminated(run.info.run_id)

    stored = client.get_run(run.info.run_id)
    assert stored.data.params == {"training_type": "Quick"}
    assert stored.data.metrics == {"precision": 0.93}
    assert stored.info.status == "FINISHED"
    downloaded = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="labels.txt", dst_path=str(tmp_path / "out"),
        tracking_uri=platform.mlflow_settings().tracking_uri,
    )
    assert open(downloaded).read() == "hemlock\ncherry\n"
    # The server proxies artifacts into the local S3.
    keys = ObjectStore(platform.s3_settings()).keys(MLFLOW_BUCKET, "")
    assert any(key.endswith(f"{run.info.run_id}/artifacts/labels.txt") for key in keys), keys


def test_the_registry_keeps_a_model_version(platform, tmp_path):
    client = MlflowClient(platform.mlflow_settings().tracking_uri)
    run = client.create_run(client.create_experiment("tests-registry"))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.onnx").write_bytes(b"onnx")
    client.log_artifacts(run.info.run_id, str(tmp_path / "model"), "model")
    client.create_registered_model("tests-registry-model")
    version = client.create_model_version(
        "tests-registry-model", source=f"{client.get_run(run.info.run_id).info.artifact_uri}/model",
        run_id=run.info.run_id,
    )
    assert client.get_model_version("tests-registry-model", version.version).run_id == run.info.run_id
    assert [v.version for v in client.search_model_versions("name='tests-registry-model'")] == [version.version]


def test_the_ui_is_served(platform):
    base = platform.mlflow_settings().tracking_uri
    page = httpx.get(base + "/", timeout=10)
    assert page.status_code == 200 and "<title>MLflow</title>" in page.text
    script = next(part.split('"')[0] for part in page.text.split('src="')[1:] if ".js" in part.split('"')[0])
    assert httpx.get(f"{base}/{script.lstrip('/')}", timeout=10).status_code == 200


def test_the_server_is_one_process_without_job_execution(platform):
    pid = platform.load_state().services["mlflow"].pid
    assert memory.process_tree(pid) == [pid]  # no `mlflow server` parent, no job runner, no huey consumers
    command = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    assert command[1:3] == ["-m", "kubevision.local.mlflow_server"]


def test_a_project_experiment_is_created_once(platform):
    uri = platform.mlflow_settings().tracking_uri
    name = tracking.experiment_name("tests", "experiment-once")
    first = tracking.ensure_experiment(uri, name)
    assert tracking.ensure_experiment(uri, name) == first
    assert MlflowClient(uri).get_experiment_by_name(name).experiment_id == first


def test_an_unreachable_tracking_server_is_named():
    with pytest.raises(tracking.TrackingError, match=r"MLflow at http://127\.0\.0\.1:9: "):
        tracking.ensure_experiment("http://127.0.0.1:9", "kubevision/tests/nowhere", timeout=2)


def registered_version(client: MlflowClient, tmp_path: Path, namespace: str, project: str) -> tuple[str, str]:
    """A training run and the model version it registered, as the trainer leaves them: (run id, version)."""
    run = client.create_run(client.create_experiment(tracking.experiment_name(namespace, project)))
    name = tracking.registered_model_name(namespace, project)
    client.create_registered_model(name)
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    client.log_artifact(run.info.run_id, str(tmp_path / "model.onnx"), "model")
    source = f"{client.get_run(run.info.run_id).info.artifact_uri}/model"
    return run.info.run_id, client.create_model_version(name, source=source, run_id=run.info.run_id).version


def published(iteration_name: str, project: str, run_id: str, publish_name: str | None) -> tuple:
    iteration = api.Iteration(metadata={"name": iteration_name, "namespace": "tests"},
                              spec={"projectRef": {"name": project}})
    return iteration, api.IterationStatus(mlflow_run_id=run_id, published_name=publish_name)


def test_a_published_version_carries_its_publish_names_alias_until_unpublished(platform, tmp_path):
    uri = platform.mlflow_settings().tracking_uri
    client = MlflowClient(uri)
    name = tracking.registered_model_name("tests", "aliased")
    run_id, version = registered_version(client, tmp_path, "tests", "aliased")
    iteration, unpublished = published("aliased-1", "aliased", run_id, None)
    _, serving = published("aliased-1", "aliased", run_id, "latest")  # a publish name MLflow reserves as an alias

    sync_tracking(iteration, unpublished, serving, uri)
    assert client.get_model_version_by_alias(name, "published-latest").version == version
    assert client.get_model_version(name, version).aliases == ["published-latest"]

    sync_tracking(iteration, serving, unpublished, uri)
    assert client.get_model_version(name, version).aliases == []
    tracking.delete_published_alias(uri, "tests", "aliased", "latest")  # already gone: no error


def test_moving_a_publish_name_moves_its_alias(platform, tmp_path):
    uri = platform.mlflow_settings().tracking_uri
    client = MlflowClient(uri)
    name = tracking.registered_model_name("tests", "moved")
    first_run, first = registered_version(client, tmp_path, "tests", "moved")
    second_run = client.create_run(client.get_experiment_by_name(tracking.experiment_name("tests", "moved"))
                                   .experiment_id).info.run_id
    second = client.create_model_version(name, source=f"{client.get_run(second_run).info.artifact_uri}/model",
                                         run_id=second_run).version
    tracking.set_published_alias(uri, "tests", "moved", first_run, "prod")
    tracking.set_published_alias(uri, "tests", "moved", second_run, "prod")
    assert client.get_model_version_by_alias(name, "published-prod").version == second
    assert client.get_model_version(name, first).aliases == []


def test_an_alias_for_a_run_that_registered_nothing_is_refused(platform):
    with pytest.raises(tracking.TrackingError, match="no version of kubevision-tests-nothing was registered"):
        tracking.set_published_alias(platform.mlflow_settings().tracking_uri, "tests", "nothing", "0" * 32, "prod")


def test_a_run_its_killed_trainer_left_running_is_ended_as_failed_with_why(platform):
    """A trainer killed by a signal never ends its run: when its Iteration fails, the controller ends it, and only
    it (another Iteration's run goes on)."""
    uri = platform.mlflow_settings().tracking_uri
    client = MlflowClient(uri)
    experiment = tracking.ensure_experiment(uri, tracking.experiment_name("tests", "killed"))
    killed, other = (client.create_run(experiment, tags={tracking.UID_TAG: uid}).info.run_id
                     for uid in ("uid-killed", "uid-other"))
    iteration = api.Iteration(metadata={"name": "killed-1", "namespace": "tests", "uid": "uid-killed"},
                              spec={"projectRef": {"name": "killed"}})
    training = api.IterationStatus(phase="Training")
    why = "Job killed-1 failed (Crashed): the trainer was killed by signal 9 (SIGKILL)"
    failed = api.IterationStatus(phase="Failed", conditions=conditions.set_condition(
        [], "Trained", "False", "TrainingFailed", why, 1, datetime.now(UTC)))

    sync_tracking(iteration, training, failed, uri)
    ended = client.get_run(killed)
    assert ended.info.status == "FAILED" and ended.info.end_time
    assert ended.data.tags[tracking.FAILURE_TAG] == f"TrainingFailed: {why}"
    assert client.get_run(other).info.status == "RUNNING"
    sync_tracking(iteration, failed, failed, uri)  # failed before: nothing more to end
    assert tracking.end_unfinished_runs(uri, "tests", "killed", "uid-killed", why) == 0
