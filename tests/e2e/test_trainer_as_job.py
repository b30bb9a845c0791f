"""The trainer run the way a training Job runs it: the command and environment of the Job the operator builds, the
request in KUBEVISION_TRAINING_REQUEST, a termination-log file that the kubelet created writable in a folder the
container's user cannot write, and the message read back as the kubelet leaves it (cut at 4 KiB)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import customvision_samples

from kubevision.core.results import TERMINATION_MESSAGE_BYTES, read_termination_message
from kubevision.core.settings import OperatorSettings
from kubevision.core.storage import ObjectStore
from kubevision.core.training import iteration_id, resolve_training
from kubevision.operator import objects, reconcile


def job_container(platform, request) -> dict:
    """The trainer container of the Job the operator would create for this request."""
    settings = OperatorSettings(mlflow_tracking_uri=platform.mlflow_settings().tracking_uri)
    plan = reconcile.TrainingJob(name=iteration_id(request.iteration), request=request, gpus=0,
                                 options=resolve_training(request.project, request.iteration))
    body = {"metadata": {"name": request.iteration.metadata.name, "uid": request.iteration.metadata.uid}}
    job = objects.training_job(plan, body, settings, platform.s3_settings())
    return job["spec"]["template"]["spec"]["containers"][0]


def pod_environment(container: dict, platform) -> dict[str, str]:
    """The container's variables as the kubelet sets them, Secret references resolved."""
    secret = {"accessKey": platform.s3_settings().access_key,
              "secretKey": platform.s3_settings().secret_key.get_secret_value()}
    env = {e["name"]: e["value"] if "value" in e else secret[e["valueFrom"]["secretKeyRef"]["key"]]
           for e in container["env"]}
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}


def unprivileged(command: list[str]) -> list[str]:
    """A user who cannot write the termination log's folder: root without the capability to override file
    permissions (a container's user is not root); any other user already is one."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]


def test_a_training_job_reports_its_result_through_the_termination_log(platform, setup_project, tmp_path):
    setup = setup_project("as-a-job", domain="General")  # Lite1 on real JPEGs
    for data, tag in customvision_samples():
        setup.add(data, [tag], "image/jpeg")
    request = setup.request("as-a-job-1", "Quick")
    container = job_container(platform, request)
    assert container["command"][:1] == ["python"] and container["terminationMessagePolicy"] == "File"

    dev = tmp_path / "dev"  # like /dev in a container: root's folder, holding the file the kubelet made writable
    dev.mkdir()
    termination_log = dev / "termination-log"
    termination_log.touch(mode=0o666)
    dev.chmod(0o555)
    env = {**pod_environment(container, platform), "KUBEVISION_TERMINATION_LOG": str(termination_log)}
    command = unprivileged([sys.executable, *container["command"][1:]])
    try:
        process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    finally:
        dev.chmod(0o755)
    assert process.returncode == 0, process.stderr[-3000:]

    message = Path(termination_log).read_bytes()[:TERMINATION_MESSAGE_BYTES].decode(errors="ignore")
    iteration = request.iteration
    result = read_termination_message(message, ObjectStore(platform.s3_settings()), iteration.metadata.namespace,
                                      iteration_id(iteration))
    assert result is not None and result.outcome == "Succeeded", message
    assert result.tags == ["Hemlock", "Japanese_Cherry"] and result.images_used == 20
    assert {t.tag for t in result.metrics.per_tag} == {"Hemlock", "Japanese_Cherry"}
    assert result.model_uri and result.mlflow_run_id
