"""Migration speed between two gateways of one local platform: images/s for a project of 2,000 photos, and what a
rerun costs when nothing changed at the source.

    .venv/bin/python benchmarks/migrate.py [--images 2000] [--rounds 3]

Starts the local platform in a temporary folder; its gateway is the target, and a second gateway process (`kubevision
gateway --local`) on the same platform serves the source namespace. The source is seeded once with `--images` JPEG
photos (640 x 480, about 40 KB each, three tags, some untagged). Each round migrates the project into a fresh target
namespace with `kubevision migrate` (the command as a user runs it), then runs the same command again. Prints each
round's times, the medians, the rerun's share of the first run, and the load average before and after.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from kubevision.core.settings import LocalSettings
from kubevision.local import api_keys
from kubevision.local.process import free_port
from kubevision.local.supervisor import LocalPlatform

TAGS = ("oak", "pine", "birch")
KUBEVISION = str(Path(sys.executable).parent / "kubevision")


def photo(rng: np.random.Generator) -> bytes:
    """A smooth random picture (noise compresses badly, flat colour too well): about 40 KB as JPEG."""
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    picture = Image.fromarray(small).resize((640, 480), Image.BICUBIC)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def wait_ready(endpoint: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"{endpoint}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the gateway at {endpoint} did not get ready")


def seed(endpoint: str, key: str, count: int) -> None:
    """One project of `count` photos; every tenth untagged."""
    rng = np.random.default_rng(0)
    with httpx.Client(base_url=f"{endpoint}/customvision/v3.3/training", headers={"Training-Key": key},
                      timeout=600) as http:
        project = http.post("/projects", params={"name": "Trees"}).raise_for_status().json()["id"]
        tags = [http.post(f"/projects/{project}/tags", params={"name": name}).raise_for_status().json()["id"]
                for name in TAGS]
        for start in range(0, count, 64):
            images = [{"name": f"{n}.jpg", "contents": base64.b64encode(photo(rng)).decode(),
                       "tagIds": [] if n % 10 == 9 else [tags[n % len(tags)]]}
                      for n in range(start, min(start + 64, count))]
            summary = http.post(f"/projects/{project}/images/files", json={"images": images}).json()
            assert summary["isBatchSuccessful"], summary


def migrate(source: str, source_key: str, target: str, target_key: str) -> float:
    started = time.perf_counter()
    subprocess.run([KUBEVISION, "migrate", "--source-endpoint", source, "--target-endpoint", target, "--all"],
                   env={**os.environ, "CUSTOMVISION_TRAINING_KEY": source_key, "KUBEVISION_TRAINING_KEY": target_key},
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="photos in the source project")
    parser.add_argument("--rounds", type=int, default=3, help="migrations into fresh namespaces; medians printed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = LocalSettings(data_dir=Path(folder), s3_port=0, mlflow_port=0, triton_http_port=0,
                                 triton_grpc_port=0, triton_metrics_port=0, gateway_port=0)
        platform = LocalPlatform(settings)
        source_gateway = None
        try:
            platform.up()
            target = next(s for s in platform.status() if s.name == "gateway").endpoints["api"]
            port = free_port()
            source_gateway = subprocess.Popen(
                [KUBEVISION, "gateway", "--local", "--data-dir", folder, "--host", "127.0.0.1", "--port", str(port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            source = f"http://127.0.0.1:{port}"
            wait_ready(source)
            source_key = api_keys.ensure(settings.data_dir, "bench-source")["trainingKey"]
            time.sleep(3)  # the gateways re-read the keys file
            seed(source, source_key, args.images)
            print(f"load average before: {os.getloadavg()[0]:.2f}")
            print("| round | first run (s) | images/s | rerun, nothing changed (s) | rerun / first |")
            print("|---|---|---|---|---|")
            firsts, reruns = [], []
            for round_ in range(1, args.rounds + 1):
                target_key = api_keys.ensure(settings.data_dir, f"bench-target-{round_}")["trainingKey"]
                time.sleep(3)
                firsts.append(migrate(source, source_key, target, target_key))
                reruns.append(migrate(source, source_key, target, target_key))
                print(f"| {round_} | {firsts[-1]:.1f} | {args.images / firsts[-1]:.0f} | {reruns[-1]:.2f} | "
                      f"{reruns[-1] / firsts[-1]:.1%} |", flush=True)
            first, rerun = statistics.median(firsts), statistics.median(reruns)
            print(f"| median | {first:.1f} | {args.images / first:.0f} | {rerun:.2f} | {rerun / first:.1%} |")
            print(f"load average after: {os.getloadavg()[0]:.2f}")
        finally:
            if source_gateway:
                source_gateway.terminate()
                source_gateway.wait(30)
            platform.down()


if __name__ == "__main__":
    main()
