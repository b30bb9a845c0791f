"""What the gateway costs in front of Triton: one published model, the same photo, at concurrency 1 and 8.

    .venv/bin/python benchmarks/serving.py [--requests 200] [--data-dir DIR]

Starts a local platform in a fresh folder (or uses the one in --data-dir), publishes the sample project with
`kubevision local demo`, then measures in one run, for each concurrency:
- direct: tritonclient's async HTTP client sends the preprocessed tensor straight to Triton (binary data);
- gateway: the Custom Vision route (/image/nostore) with the JPEG, as a client of the API sends it;
- decode: the gateway's own decoding and preprocessing of that JPEG, in this process (no HTTP, no Triton).
Prints p50 / p99 latency and requests/s of each, the gateway's throughput as a share of direct, and what the gateway
adds at p50 beyond decoding (gateway p50 - direct p50 - decode p50). Both clients run in this process on the same
machine as Triton and the gateway, so the client's CPU time is part of every figure alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import tritonclient.http.aio as triton

from kubevision.core.domains import Backbone
from kubevision.core.local.demo import run as publish_demo
from kubevision.core.local.platform import LocalPlatform
from kubevision.core.preprocessing import to_input
from kubevision.core.settings import GatewaySettings, LocalSettings
from kubevision.gateway import images
from kubevision.gateway.inference import INPUT, OUTPUT

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def load(call, concurrency: int, total: int) -> tuple[list[float], float]:
    """Latencies (s) of `total` calls made by `concurrency` workers, and the wall time."""
    latencies: list[float] = []
    remaining = iter(range(total))

    async def worker():
        for _ in remaining:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def row(name: str, concurrency: int, latencies: list[float], wall: float) -> dict:
    return {"path": name, "concurrency": concurrency, "p50": percentile(latencies, 50) * 1000,
            "p99": percentile(latencies, 99) * 1000, "rps": len(latencies) / wall}


async def measure(platform: LocalPlatform, requests: int) -> list[dict]:
    demo = publish_demo(platform, EXAMPLES)
    photo = demo.test_image.read_bytes()
    url = (f"{demo.gateway}/customvision/v3.1/prediction/{demo.project_uid}/classify/iterations/"
           f"{demo.publish_name}/image/nostore")
    headers = {"Prediction-Key": demo.prediction_key, "Content-Type": "application/octet-stream"}
    model = "trees-quickstart"  # the Iteration's name: examples/quickstart-iteration.yaml
    direct = triton.InferenceServerClient(platform.triton_settings().http_url)
    config = await direct.get_model_config(model)
    size = int(config["input"][0]["dims"][-1])
    backbone = Backbone("", "", size)
    settings = GatewaySettings()
    batch = to_input(images.decode(photo, settings)[0], backbone)[np.newaxis]

    async def via_triton():
        request = triton.InferInput(INPUT, list(batch.shape), "FP32")
        request.set_data_from_numpy(batch, binary_data=True)
        result = await direct.infer(model, [request], outputs=[triton.InferRequestedOutput(OUTPUT, binary_data=True)])
        result.as_numpy(OUTPUT)

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=16)) as http:
        async def via_gateway():
            response = await http.post(url, content=photo, headers=headers)
            response.raise_for_status()

        def decode_and_preprocess():
            to_input(images.decode(photo, settings)[0], backbone)

        decode_times = []
        for _ in range(requests):
            started = time.perf_counter()
            decode_and_preprocess()
            decode_times.append(time.perf_counter() - started)
        rows = [row("decode+preprocess", 1, decode_times, sum(decode_times))]
        for concurrency in (1, 8):
            for name, call in (("direct", via_triton), ("gateway", via_gateway)):
                await load(call, concurrency, max(20, requests // 10))  # warm up: connections, Triton's batching
                rows.append(row(name, concurrency, *await load(call, concurrency, requests)))
    await direct.close()
    return rows


def report(rows: list[dict]) -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| path | concurrency | p50 (ms) | p99 (ms) | requests/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['path']} | {r['concurrency']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['rps']:.1f} |")
    decode = next(r for r in rows if r["path"] == "decode+preprocess")
    for concurrency in (1, 8):
        direct = next(r for r in rows if r["path"] == "direct" and r["concurrency"] == concurrency)
        gateway = next(r for r in rows if r["path"] == "gateway" and r["concurrency"] == concurrency)
        added = gateway["p50"] - direct["p50"] - decode["p50"]
        print(f"concurrency {concurrency}: gateway throughput {gateway['rps'] / direct['rps']:.0%} of direct; "
              f"adds {added:.1f} ms at p50 beyond decoding ({decode['p50']:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    own = args.data_dir is None
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="kubevision-serving-"))
    ports = {p: 0 for p in ("s3_port", "mlflow_port", "triton_http_port", "triton_grpc_port",
                            "triton_metrics_port", "gateway_port")}
    platform = LocalPlatform(LocalSettings(data_dir=data_dir, **ports))
    if own:
        platform.up()
    try:
        report(asyncio.run(measure(platform, args.requests)))
    finally:
        if own:
            platform.down()
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
