"""The operator at scale, against the Kubernetes API emulator: a loaded cluster at rest, then new work.

    .venv/bin/python benchmarks/operator_scale.py [--projects 1000] [--finished 9000] [--training 1000]
        [--steady 120] [--latency 50] [--churn 500] [--runs 3] [--profile operator.prof]

The operator runs as its own process (`kubevision operator`, as in its pod), pointed at the emulator through a
kubeconfig, with the real local S3 and MLflow. The cluster is loaded before the operator starts: projects (Ready),
finished Iterations (Trained) and Iterations in training (each with its running Job), with the status the operator
itself would write. Then, once the operator has caught up:

- steady state, `--steady` seconds with nothing changing: the operator's API requests per second by verb and
  resource, and the CPU of the operator and of the emulator (the benchmark's own process), each in % of one core;
- latency: Iteration created -> its Job created, one at a time, p50 and p95;
- churn: `--churn` Iterations created at once -> all Training;
- the operator's memory: resident at rest (VmRSS), and its peak over the run (VmHWM).

Each figure is the median of `--runs` runs, each on a fresh emulator, operator and load; the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import kmock
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from kube_emulator import KubeEmulator  # noqa: E402
from seeding import Seed, photo  # noqa: E402
from seeding import seed as seed_dataset  # noqa: E402

from kubevision.core.api import CustomVisionProject, Iteration  # noqa: E402
from kubevision.core.settings import LocalSettings, OperatorSettings, S3Settings  # noqa: E402
from kubevision.core.storage import DatasetLayout, ObjectStore  # noqa: E402
from kubevision.core.training import TrainingRequest, TrainingResult, iteration_id, resolve_training  # noqa: E402
from kubevision.local.process import free_port  # noqa: E402
from kubevision.local.supervisor import LocalPlatform  # noqa: E402
from kubevision.operator import objects, reconcile  # noqa: E402
from kubevision.operator.handlers.cluster_driver import status_patch  # noqa: E402
from kubevision.operator.observe import observe_dataset  # noqa: E402
from kubevision.operator.reconcile import IterationObservation, JobObservation  # noqa: E402

NS = "bench"
ITERATIONS = f"/apis/kubevision.io/v1alpha1/namespaces/{NS}/iterations"
ITERATION = kmock.resource("kubevision.io", "v1alpha1", "iterations")
PROJECT = kmock.resource("kubevision.io", "v1alpha1", "customvisionprojects")
JOB = kmock.resource("batch", "v1", "jobs")
QUIET = 20  # seconds without a request that mark the end of the operator's start
RESULT = TrainingResult.model_validate({
    "outcome": "Succeeded", "reason": "TrainingSucceeded", "message": "trained on 10 images", "mlflow_run_id": "run",
    "model_uri": "s3://kubevision-models/model/", "tags": ["cat", "dog"],
    "metrics": {"probability_threshold": 0.5, "precision": 0.9, "recall": 0.8, "average_precision": 0.95,
                "per_tag": []}})


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def memory_mb(pid: int, field: str) -> float:
    """VmRSS (resident now) or VmHWM (the peak of resident)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def live(emulator: KubeEmulator, resource, name: str):
    key = (resource, NS, name)
    return None if key not in emulator.objects or emulator.objects[key].deleted else emulator.objects[key].raw


async def wait(check, timeout: float, every: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(str(check))
        await asyncio.sleep(every)


async def settled(emulator: KubeEmulator, pid: int, quiet: float, timeout: float) -> None:
    """Until the operator, once it has started sending requests, has sent none and used under a tenth of a core for
    `quiet` seconds (reconciles that find nothing to write cost CPU, not requests)."""
    deadline, last, since, cpu = time.monotonic() + timeout, 0, time.monotonic(), cpu_seconds(pid)
    while not last or time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise TimeoutError("the operator never settled")
        await asyncio.sleep(1)
        busy, cpu = cpu_seconds(pid) - cpu > 0.1, cpu_seconds(pid)
        if (total := sum(emulator.request_counts.values())) != last or busy:
            last, since = total, time.monotonic()


def iteration(name: str, project: str) -> dict:
    return {"apiVersion": "kubevision.io/v1alpha1", "kind": "Iteration", "metadata": {"name": name},
            "spec": {"projectRef": {"name": project}}}


async def seed(emulator: KubeEmulator, resource, body: dict, status: dict | None = None) -> dict:
    """Create an object as a client would, without a request: loading 10,000 over HTTP takes longer than the
    measurement."""
    async with emulator._lock:
        created = await emulator._create(resource, NS, body)
    return created if status is None else await _set_status(emulator, resource, created, status)


async def load(emulator: KubeEmulator, s3: S3Settings, projects: int, finished: int, training: int) -> None:
    """Projects Ready, each with its share of finished and training Iterations, and the training ones' Jobs."""
    now, settings = datetime.now(UTC), OperatorSettings()
    project_bodies = []
    for p in range(projects):
        body = await seed(emulator, PROJECT, {
            "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": f"p{p}"},
            "spec": {"displayName": f"p{p}", "dataset": {"bucket": "bench", "prefix": f"{NS}/shared/"}}})
        project = CustomVisionProject.model_validate(body)
        status, _ = reconcile.reconcile_project(project, observe_dataset(project, s3), None, None, now)
        project_bodies.append(await _set_status(emulator, PROJECT, body, status_patch(status)))
    for i in range(finished + training):
        project_body = project_bodies[i % projects]
        body = await seed(emulator, ITERATION, iteration(f"it{i}", project_body["metadata"]["name"]))
        it = Iteration.model_validate(body)
        job_name = iteration_id(it)
        running = i >= finished
        job = JobObservation(name=job_name, active=running, succeeded=not running, result=None if running else RESULT)
        observed = IterationObservation(project=CustomVisionProject.model_validate(project_body), job=job)
        plan = reconcile.reconcile_iteration(it, observed, now)
        if running:
            request = TrainingRequest(project=observed.project, iteration=it)
            train = reconcile.TrainingJob(name=job_name, request=request, gpus=0,
                                          options=resolve_training(observed.project, it))
            await seed(emulator, JOB, objects.training_job(train, body, settings, s3), {"active": 1})
        await _set_status(emulator, ITERATION, body, status_patch(plan.status))


async def _set_status(emulator: KubeEmulator, resource, body: dict, status: dict) -> dict:
    async with emulator._lock:
        key = (resource, NS, body["metadata"]["name"])
        old = emulator.objects[key].raw
        return await emulator._update(key, old, {**old, "status": {k: v for k, v in status.items() if v is not None}},
                                      status_only=True)


async def measure(platform: LocalPlatform, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    crds = sorted(str(p) for p in (REPO / "crds").glob("*.yaml"))
    figures: dict[str, float] = {}
    async with KubeEmulator(crds=crds) as emulator, kmock.Server(emulator):
        started = time.monotonic()
        await load(emulator, platform.s3_settings(), args.projects, args.finished, args.training)
        print(f"  loaded {args.projects} projects, {args.finished + args.training} Iterations in "
              f"{time.monotonic() - started:.0f} s", file=sys.stderr)
        kubeconfig = folder / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": str(emulator.url).rstrip("/")}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "bench", "namespace": NS}}],
            "users": [{"name": "bench", "user": {"token": "bench"}}],
        }))
        s3 = platform.s3_settings()
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBEVISION_OPERATOR_NAMESPACES": f'["{NS}"]',
               "KUBEVISION_OPERATOR_METRICS_PORT": str(free_port()), "KUBEVISION_S3_ENDPOINT": s3.endpoint,
               "KUBEVISION_S3_ACCESS_KEY": s3.access_key, "KUBEVISION_S3_SECRET_KEY": s3.secret_key.get_secret_value(),
               "KUBEVISION_OPERATOR_MLFLOW_TRACKING_URI": platform.mlflow_settings().tracking_uri}
        command = [str(Path(sys.executable).parent / "kubevision"), "operator"]
        if args.profile:  # cProfile writes its statistics when the operator stops (on SIGTERM, as in its pod)
            command = [sys.executable, "-m", "cProfile", "-o", str(args.profile), *command]
        operator = subprocess.Popen(command, env=env,
                                    stdout=open(folder / "operator.log", "w"), stderr=subprocess.STDOUT)
        try:
            started = time.monotonic()
            # Quiet for long enough that a pause of the first adoption writes (finalizers, kopf's annotations,
            # each project's experiment) is not taken for the end of them.
            await settled(emulator, operator.pid, quiet=QUIET, timeout=1800)
            figures["catch-up after start (s)"] = time.monotonic() - started - QUIET
            figures["catch-up: requests"] = sum(emulator.request_counts.values())
            figures["operator memory at rest, VmRSS (MB)"] = memory_mb(operator.pid, "VmRSS")
            counts, operator_cpu = dict(emulator.request_counts), cpu_seconds(operator.pid)
            own_cpu = time.process_time()
            await asyncio.sleep(args.steady)
            steady = collections.Counter(emulator.request_counts)
            steady.subtract(counts)
            figures["steady: requests/s, all"] = sum(steady.values()) / args.steady
            for (verb, _group, resource), n in sorted(steady.items()):
                if n:
                    figures[f"steady: requests/s, {verb} {resource}"] = n / args.steady
            figures["steady: operator CPU (% of a core)"] = (
                100 * (cpu_seconds(operator.pid) - operator_cpu) / args.steady)
            figures["steady: emulator CPU (% of a core)"] = 100 * (time.process_time() - own_cpu) / args.steady

            latencies = []
            for i in range(args.latency):
                name = f"latency-{i}"
                started = time.monotonic()
                uid = (await (await emulator.post(ITERATIONS, json=iteration(name, "p0"))).json())["metadata"]["uid"]
                await wait(lambda n=name, u=uid: live(emulator, JOB, f"{n}-{u[:8]}") is not None, 60)
                latencies.append(time.monotonic() - started)
            latencies.sort()
            figures["Iteration -> Job, p50 (ms)"] = 1000 * statistics.median(latencies)
            figures["Iteration -> Job, p95 (ms)"] = 1000 * latencies[min(len(latencies) - 1,
                                                                         round(0.95 * (len(latencies) - 1)))]
            started, operator_cpu, own_cpu = time.monotonic(), cpu_seconds(operator.pid), time.process_time()
            for i in range(args.churn):
                await emulator.post(ITERATIONS, json=iteration(f"churn-{i}", f"p{i % args.projects}"))
            await wait(lambda: all(((live(emulator, ITERATION, f"churn-{i}") or {}).get("status") or {}).get("phase")
                                   == "Training" for i in range(args.churn)), 900, every=0.1)
            figures[f"churn: {args.churn} created -> all Training (s)"] = time.monotonic() - started
            figures["churn: operator CPU (s)"] = cpu_seconds(operator.pid) - operator_cpu
            figures["churn: emulator CPU (s)"] = time.process_time() - own_cpu
            figures["operator peak memory, VmHWM (MB)"] = memory_mb(operator.pid, "VmHWM")
        except BaseException:
            print((folder / "operator.log").read_text()[-3000:], file=sys.stderr)  # why the operator fell behind
            raise
        finally:
            operator.terminate()
            await asyncio.to_thread(operator.wait, 30)  # the emulator serves it meanwhile
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--finished", type=int, default=9000)
    parser.add_argument("--training", type=int, default=1000)
    parser.add_argument("--steady", type=float, default=120)
    parser.add_argument("--latency", type=int, default=50)
    parser.add_argument("--churn", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="write the operator's cProfile statistics there (one run)")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        settings = LocalSettings(data_dir=Path(folder) / "platform", s3_port=0, mlflow_port=0, triton_http_port=0,
                                 triton_grpc_port=0, triton_metrics_port=0, gateway_port=0)
        platform = LocalPlatform(settings)
        platform.up()
        try:
            # every project's dataset
            seed_dataset(ObjectStore(platform.s3_settings()), DatasetLayout("bench", f"{NS}/shared/"),
                         [Seed(photo(f"{tag}-{i}"), [tag]) for tag in ("cat", "dog") for i in range(5)])
            for run in range(args.runs):
                load_before = os.getloadavg()[0]
                runs.append(asyncio.run(measure(platform, args, Path(folder))))
                print(f"  run {run + 1}: load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
                      + "; ".join(f"{name} {value:.1f}" for name, value in runs[-1].items()), file=sys.stderr)
        finally:
            platform.down()
    print(f"{args.projects} projects, {args.finished} finished and {args.training} training Iterations; "
          f"median of {args.runs} runs; load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    print("| measure | value |")
    print("|---|---|")
    for name in runs[0]:
        values = [run.get(name, 0.0) for run in runs]
        print(f"| {name} | {statistics.median(values):.1f} |")


if __name__ == "__main__":
    main()
