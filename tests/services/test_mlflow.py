"""The local MLflow tracking server: runs in SQLite, artifacts land in the local S3."""

import mlflow
from mlflow.tracking import MlflowClient

from kubevision.core.local.platform import MLFLOW_BUCKET
from kubevision.core.storage import ObjectStore


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
