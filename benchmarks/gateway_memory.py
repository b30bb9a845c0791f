"""The gateway's peak resident memory for the largest legal upload: one create_images_from_data batch of 64 images
just under 6 MiB each (about 383 MiB of multipart), and for a 300 MB JSON body sent without a key.

    .venv/bin/python benchmarks/gateway_memory.py [--kubevision PATH ...] [--rounds 3]

Starts the local platform (for its S3, store and keys) in a temporary folder, then, for each `kubevision` command
given (by default this checkout's; another checkout's to compare), a gateway process of its own (`kubevision
gateway --local`), and sends it the requests one at a time. Prints, per command and request, the gateway's resident
set before the request and its peak during it (the kernel's VmHWM, reset before each request), each the median
of `--rounds` gateways started afresh, and the answer; and the load average before and after.
"""

from __future__ import annotations

import argparse
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

from kubevision.core.images import MAX_IMAGE_BYTES
from kubevision.core.settings import LocalSettings
from kubevision.local import api_keys
from kubevision.local.process import free_port
from kubevision.local.supervisor import LocalPlatform

BATCH = 64
MiB = 2**20


def largest_png() -> bytes:
    """Random pixels stored uncompressed: a real image just under the 6 MiB limit."""
    side = 1446
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=0)
    assert len(buffer.getvalue()) <= MAX_IMAGE_BYTES
    return buffer.getvalue()


def multipart(image: bytes, count: int) -> bytes:
    part = b'--bench\r\nContent-Disposition: form-data; name="imageData"; filename="a.png"\r\n' \
           b"Content-Type: image/png\r\n\r\n" + image + b"\r\n"
    return part * count + b"--bench--\r\n"


def memory(pid: int, field: str) -> int:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1]) * 1024


def measure(kubevision: str, data_dir: Path, body: bytes) -> list[tuple[str, float, float, str]]:
    port = free_port()
    gateway = subprocess.Popen([kubevision, "gateway", "--local", "--data-dir", str(data_dir), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/customvision/v3.3/training"
    key = {"Training-Key": api_keys.ensure(data_dir, "default")["trainingKey"]}
    rows = []
    try:
        with httpx.Client(timeout=600) as http:
            for _ in range(600):
                try:
                    if http.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            project = http.post(f"{base}/projects", params={"name": f"memory {port}"}, headers=key).json()["id"]
            requests = {
                f"{BATCH} images of {len(body) // BATCH / MiB:.2f} MiB": lambda: http.post(
                    f"{base}/projects/{project}/images", headers={
                        **key, "Content-Type": "multipart/form-data; boundary=bench"}, content=body),
                "300 MB JSON, no key": lambda: http.post(f"{base}/projects", params={"name": "x"},
                                                         headers={"Content-Type": "application/json"},
                                                         content=b" " * 300_000_000),
            }
            for name, send in requests.items():
                time.sleep(2)  # settled
                before = memory(gateway.pid, "VmRSS")
                Path(f"/proc/{gateway.pid}/clear_refs").write_text("5")  # VmHWM from here
                answer = send()
                summary = str(answer.status_code)
                if answer.status_code == 200 and "images" in answer.json():
                    statuses = [i["status"] for i in answer.json()["images"]]
                    summary += " " + ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
                else:
                    summary += " " + answer.json().get("code", "")
                rows.append((name, before / MiB, memory(gateway.pid, "VmHWM") / MiB, summary))
    finally:
        gateway.terminate()
        gateway.wait(30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubevision", nargs="+", default=[str(Path(sys.executable).parent / "kubevision")],
                        help="kubevision commands whose gateways are measured")
    parser.add_argument("--rounds", type=int, default=3, help="gateways started per command; medians are printed")
    args = parser.parse_args()
    body = multipart(largest_png(), BATCH)
    with tempfile.TemporaryDirectory() as folder:
        settings = LocalSettings(data_dir=Path(folder), s3_port=0, mlflow_port=0, triton_http_port=0,
                                 triton_grpc_port=0, triton_metrics_port=0, gateway_port=0)
        platform = LocalPlatform(settings)
        try:
            platform.up()
            print(f"load average before: {os.getloadavg()[0]:.2f}")
            print("| kubevision | request | resident before (MiB) | peak (MiB), median | peaks | answer |")
            print("|---|---|---|---|---|---|")
            for kubevision in args.kubevision:
                rounds = [measure(kubevision, settings.data_dir, body) for _ in range(args.rounds)]
                for rows in zip(*rounds, strict=True):
                    peaks = [peak for _, _, peak, _ in rows]
                    name, answer = rows[0][0], rows[0][3]
                    before = statistics.median(before for _, before, _, _ in rows)
                    print(f"| {kubevision} | {name} | {before:.0f} | {statistics.median(peaks):.0f} | "
                          f"{', '.join(f'{p:.0f}' for p in peaks)} | {answer} |", flush=True)
            print(f"load average after: {os.getloadavg()[0]:.2f}")
        finally:
            platform.down()


if __name__ == "__main__":
    main()
