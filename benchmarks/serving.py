"""What the gateway costs in front of Triton: one published model, the same photo, at concurrency 1 and 8.

    .venv/bin/python benchmarks/serving.py [--requests 200] [--rounds 3] [--data-dir DIR]

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
import statistics
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


def figures(latencies: list[float], wall: float) -> dict[str, float]:
    return {"p50": percentile(latencies, 50) * 1000, "p99": percentile(latencies, 99) * 1000,
            "rps": len(latencies) / wall}


def median_row(path: str, concurrency: int, rounds: list[dict[str, float]]) -> dict:
    return {"path": path, "concurrency": concurrency,
            **{key: statistics.median(r[key] for r in rounds) for key in rounds[0]}}


async def measure(platform: LocalPlatform, requests: int, rounds: int) -> list[dict]:
    demo = publish_demo(platform, EXAMPLES)
    photo = demo.test_image.read_bytes()
    url = (f"{demo.gateway}/customvision/v3.1/prediction/{demo.project_uid}/classify/iterations/"
           f"{demo.publish_name}/image/nostore")
    headers = {"Prediction-Key": demo.prediction_key, "Content-Type": "application/octet-stream"}
    model = "trees-quickstart"  # the Iteration's name: examples/quickstart-iteration.yaml
    direct = triton.InferenceServerClient(platform.triton_settings().http_url)
    config = await direct.get_model_config(model)
    backbone = Backbone("", "", int(config["input"][0]["dims"][-1]))
    settings = GatewaySettings()

    def preprocess() -> np.ndarray:
        return to_input(images.decode(photo, settings)[0], backbone)[np.newaxis]

    batch = preprocess()

    async def via_triton():
        request = triton.InferInput(INPUT, list(batch.shape), "FP32")
        request.set_data_from_numpy(batch, binary_data=True)
        result = await direct.infer(model, [request], outputs=[triton.InferRequestedOutput(OUTPUT, binary_data=True)])
        result.as_numpy(OUTPUT)

    decode_times = []
    for _ in range(requests):
        started = time.perf_counter()
        preprocess()
        decode_times.append(time.perf_counter() - started)
    rows = [{"path": "decode+preprocess", "concurrency": 1, **figures(decode_times, sum(decode_times))}]
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=16)) as http:
        async def via_gateway():
            response = await http.post(url, content=photo, headers=headers)
            response.raise_for_status()

        for concurrency in (1, 8):
            measured: dict[str, list[dict[str, float]]] = {"direct": [], "gateway": []}
            for round_ in range(rounds):  # alternate, so that a change in the machine's load hits both alike
                order = ("direct", "gateway") if round_ % 2 == 0 else ("gateway", "direct")
                for name in order:
                    call = via_triton if name == "direct" else via_gateway
                    await load(call, concurrency, max(16, requests // 10))  # warm up: connections, batching
                    before = await gateway_seconds(http, demo.gateway)
                    result = figures(*await load(call, concurrency, requests))
                    if name == "gateway":  # where its time went, from its own metrics
                        after = await gateway_seconds(http, demo.gateway)
                        result.update({k: (after[k] - before[k]) / requests * 1000 for k in after})
                    measured[name].append(result)
            rows += [median_row(name, concurrency, results) for name, results in measured.items()]
    await direct.close()
    return rows


async def gateway_seconds(http: httpx.AsyncClient, gateway: str) -> dict[str, float]:
    """Seconds the gateway spent answering the nostore image route, and inside Triton calls, so far."""
    text = (await http.get(f"{gateway}/metrics")).text
    totals = {"in gateway": 0.0, "in Triton": 0.0}
    for line in text.splitlines():
        if line.startswith("kubevision_gateway_request_seconds_sum") and "image/nostore" in line:
            totals["in gateway"] += float(line.split()[-1])
        elif line.startswith("kubevision_gateway_triton_seconds_sum"):
            totals["in Triton"] += float(line.split()[-1])
    return totals


def report(rows: list[dict], load_before: float, rounds: int) -> None:
    print(f"load average (1 min) before the run: {load_before:.2f}; medians of {rounds} alternating rounds")
    print("| path | concurrency | p50 (ms) | p99 (ms) | requests/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['path']} | {r['concurrency']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['rps']:.1f} |")
    decode = rows[0]
    for concurrency in (1, 8):
        direct = next(r for r in rows if r["path"] == "direct" and r["concurrency"] == concurrency)
        gateway = next(r for r in rows if r["path"] == "gateway" and r["concurrency"] == concurrency)
        added = gateway["p50"] - direct["p50"] - decode["p50"]
        print(f"concurrency {concurrency}: gateway throughput {gateway['rps'] / direct['rps']:.0%} of direct; "
              f"adds {added:.1f} ms at p50 beyond decoding ({decode['p50']:.1f} ms); of its mean "
              f"{gateway['in gateway']:.1f} ms a request, {gateway['in Triton']:.1f} ms were spent waiting for "
              "Triton")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="Requests per measurement.")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds; medians are reported.")
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
        load_before = os.getloadavg()[0]
        report(asyncio.run(measure(platform, args.requests, args.rounds)), load_before, args.rounds)
    finally:
        if own:
            platform.down()
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
