"""How fast the operator turns Iterations into training Jobs, against the Kubernetes API emulator.

    .venv/bin/python benchmarks/operator_scale.py [--latency 50] [--scale 500]

The operator runs as its own process (`kubevision operator`, as in its pod), pointed at the emulator through a
kubeconfig, with the real local S3 and MLflow. Prints: the median and p95 time from an Iteration's creation to its
Job's creation over `--latency` Iterations created one by one; the time for `--scale` Iterations created at once to
all reach the Training phase; the operator's peak memory (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kmock
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from kube_emulator import KubeEmulator  # noqa: E402

from kubevision.core.local.platform import LocalPlatform  # noqa: E402
from kubevision.core.local.process import free_port  # noqa: E402
from kubevision.core.settings import LocalSettings  # noqa: E402
from kubevision.core.storage import DatasetLayout, DatasetStore, ObjectStore  # noqa: E402

NS = "bench"
ITERATIONS = f"/apis/kubevision.io/v1alpha1/namespaces/{NS}/iterations"
PROJECTS = f"/apis/kubevision.io/v1alpha1/namespaces/{NS}/customvisionprojects"
ITERATION = kmock.resource("kubevision.io", "v1alpha1", "iterations")
PROJECT = kmock.resource("kubevision.io", "v1alpha1", "customvisionprojects")
JOB = kmock.resource("batch", "v1", "jobs")


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def live(emulator: KubeEmulator, resource, name: str):
    key = (resource, NS, name)
    return None if key not in emulator.objects or emulator.objects[key].deleted else emulator.objects[key].raw


async def wait(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(str(check))
        await asyncio.sleep(0.005)


def iteration(name: str) -> dict:
    return {"apiVersion": "kubevision.io/v1alpha1", "kind": "Iteration", "metadata": {"name": name},
            "spec": {"projectRef": {"name": "bench"}}}


async def measure(platform: LocalPlatform, latency_count: int, scale_count: int, folder: Path) -> None:
    crds = sorted(str(p) for p in (REPO / "crds").glob("*.yaml"))
    async with KubeEmulator(crds=crds) as emulator, kmock.Server(emulator):
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
        operator = subprocess.Popen([str(Path(sys.executable).parent / "kubevision"), "operator"], env=env,
                                    stdout=open(folder / "operator.log", "w"), stderr=subprocess.STDOUT)
        try:
            await emulator.post(PROJECTS, json={
                "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "bench"},
                "spec": {"displayName": "Bench", "dataset": {"bucket": "bench", "prefix": "bench/"}}})
            await wait(lambda: ((live(emulator, PROJECT, "bench") or {}).get("status") or {}).get("phase") == "Ready",
                       120)
            latencies = []
            for i in range(latency_count):
                name = f"latency-{i}"
                started = time.monotonic()
                uid = (await (await emulator.post(ITERATIONS, json=iteration(name))).json())["metadata"]["uid"]
                await wait(lambda n=name, u=uid: live(emulator, JOB, f"{n}-{u[:8]}") is not None, 60)
                latencies.append(time.monotonic() - started)
            started = time.monotonic()
            for i in range(scale_count):
                await emulator.post(ITERATIONS, json=iteration(f"scale-{i}"))
            await wait(lambda: all(((live(emulator, ITERATION, f"scale-{i}") or {}).get("status") or {}).get("phase")
                                   == "Training" for i in range(scale_count)), 600)
            scale_seconds = time.monotonic() - started
            memory = peak_memory_mb(operator.pid)
        except BaseException:
            print((folder / "operator.log").read_text()[-3000:], file=sys.stderr)  # why the operator fell behind
            raise
        finally:
            operator.terminate()
            operator.wait(30)
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    print("| measure | value | goal |")
    print("|---|---|---|")
    print(f"| Iteration created -> Job created, median of {latency_count} | "
          f"{statistics.median(latencies) * 1000:.0f} ms | under 200 ms |")
    print(f"| Iteration created -> Job created, p95 of {latency_count} | {p95 * 1000:.0f} ms | |")
    print(f"| {scale_count} Iterations created -> all Training | {scale_seconds:.1f} s | within 60 s |")
    print(f"| operator peak memory (VmHWM) | {memory:.0f} MB | under 300 MB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=int, default=50)
    parser.add_argument("--scale", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = LocalSettings(data_dir=Path(folder) / "platform", s3_port=0, mlflow_port=0, triton_http_port=0,
                                 triton_grpc_port=0, triton_metrics_port=0)
        platform = LocalPlatform(settings)
        platform.up()
        try:
            store = ObjectStore(platform.s3_settings())
            store.ensure_bucket("bench")
            images = DatasetStore(store, DatasetLayout("bench", "bench/"))
            for tag in ("cat", "dog"):
                for i in range(5):
                    images.add_image(f"{tag}-{i}".encode(), "image/jpeg", tags=[tag])
            asyncio.run(measure(platform, args.latency, args.scale, Path(folder)))
        finally:
            platform.down()


if __name__ == "__main__":
    main()
