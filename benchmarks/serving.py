"""What the gateway costs in front of Triton, and what Triton's local backend costs around ONNX Runtime.

    .venv/bin/python benchmarks/serving.py [--requests 200] [--rounds 3] [--data-dir DIR] [--detector MODEL.onnx]
        [--backend-only]

Starts a local platform in a fresh folder, without per-second limits on predictions (or uses the one in --data-dir,
whose limits.yaml should lift them too), publishes the sample project with
`kubevision local demo`, then measures in one run, for each concurrency:
- direct: tritonclient's async HTTP client sends the preprocessed tensor straight to Triton (binary data);
- gateway: the Custom Vision route (/image/nostore) with the JPEG, as a client of the API sends it;
- decode: the gateway's own decoding and preprocessing of that JPEG, in this process (no HTTP, no Triton).
Prints p50 / p99 latency and requests/s of each, the gateway's throughput as a share of direct, and what the gateway
adds at p50 beyond decoding (gateway p50 - direct p50 - decode p50). Both clients run in this process on the same
machine as Triton and the gateway, so the client's CPU time is part of every figure alike.

Then the local Triton backend, before and after its tuning, one request at a time: the demo's classifier and, with
--detector, a detector the trainer exported (its model.onnx, e.g. from the MLflow run's model/ folder), each loaded
twice into the same Triton: `before` as the backend ran until now (ONNX Runtime's threads spinning between operators,
the detector's 2 ms dynamic-batching delay), `after` as models are exported and served now. Beside them: the same
model in ONNX Runtime in this process (as the gateway runs an unpublished iteration), and for the detector the
gateway's decoding and stretching of a photo (core.serving.detection.to_input). Rounds alternate, so that a change in
the machine's load hits every path alike. --backend-only skips the gateway's measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime
import tritonclient.http.aio as triton

from kubevision.core.domains import Backbone
from kubevision.core.labels import model_name
from kubevision.core.limits import LOCAL_FILE
from kubevision.core.serving import classification, detection
from kubevision.core.serving.classification import INPUT, OUTPUT
from kubevision.core.settings import GatewaySettings, LocalSettings
from kubevision.core.storage import ModelRepositoryLayout, ObjectStore, model_labels_key, model_onnx_key
from kubevision.gateway import images
from kubevision.gateway.backends.trained import session_options
from kubevision.local.demo import run as publish_demo
from kubevision.local.supervisor import DEFAULT_NAMESPACE, LocalPlatform
from kubevision.trainer.detection.network import INPUT_SIZES

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
DETECTION_PHOTO = EXAMPLES / "detection" / "test" / "test_image.jpg"
# How the local backend ran ONNX Runtime before its tuning: ONNX Runtime's default, threads spinning between operators.
SPINNING = {"session.intra_op.allow_spinning": "1", "session.inter_op.allow_spinning": "1"}
DETECTOR_DELAY_BEFORE = "dynamic_batching { max_queue_delay_microseconds: 2000 }"


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
    from kubevision.local.store import LocalStore

    demo = publish_demo(platform, EXAMPLES)
    photo = demo.test_image.read_bytes()
    url = (f"{demo.gateway}/customvision/v3.1/prediction/{demo.project_uid}/classify/iterations/"
           f"{demo.publish_name}/image/nostore")
    headers = {"Prediction-Key": demo.prediction_key, "Content-Type": "application/octet-stream"}
    quickstart = LocalStore(platform.data_dir / "resources.db").get("Iteration", DEFAULT_NAMESPACE, "trees-quickstart")
    model = model_name(quickstart["metadata"]["uid"])  # the model of examples/quickstart-iteration.yaml
    direct = triton.InferenceServerClient(platform.triton_settings().http_url)
    config = await direct.get_model_config(model)
    backbone = Backbone("", "", int(config["input"][0]["dims"][-1]))
    settings = GatewaySettings()
    (gateway,) = (s for s in platform.status() if s.name == "gateway")
    metrics = gateway.endpoints["metrics"]  # on a port of their own, not the API's

    def preprocess() -> np.ndarray:
        return classification.to_input(images.decode(photo, settings)[0], backbone)[np.newaxis]

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
                    before = await gateway_seconds(http, metrics)
                    result = figures(*await load(call, concurrency, requests))
                    if name == "gateway":  # where its time went, from its own metrics
                        after = await gateway_seconds(http, metrics)
                        result.update({k: (after[k] - before[k]) / requests * 1000 for k in after})
                    measured[name].append(result)
            rows += [median_row(name, concurrency, results) for name, results in measured.items()]
    await direct.close()
    return rows


async def gateway_seconds(http: httpx.AsyncClient, metrics: str) -> dict[str, float]:
    """Seconds the gateway spent answering the nostore image route, and inside Triton calls, so far."""
    text = (await http.get(metrics)).text
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


def variant(config: str, name: str, before: bool) -> str:
    """A model's config.pbtxt under another name; `before`: as the backend and the detector's export ran before."""
    config = re.sub(r'^name: ".*"$', f'name: "{name}"', config, count=1, flags=re.MULTILINE)
    if not before:
        return config
    config = config.replace("dynamic_batching { }", DETECTOR_DELAY_BEFORE)
    return config + "".join(f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'
                            for key, value in SPINNING.items())


def detector_config(onnx: bytes) -> str:
    size = int(onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"]).get_inputs()[0].shape[-1])
    architecture = next(name for name, side in INPUT_SIZES.items() if side == size)
    return detection.config("detector", Backbone(architecture, "", size), size)


async def measure_backend(platform: LocalPlatform, detector: Path | None, requests: int, rounds: int) -> list[dict]:
    """One request at a time through the local Triton, each model before and after the backend's tuning, beside
    ONNX Runtime in this process."""
    from kubevision.local.store import LocalStore

    s3 = platform.s3_settings()
    store = ObjectStore(s3)
    iteration = LocalStore(platform.data_dir / "resources.db").get("Iteration", DEFAULT_NAMESPACE, "trees-quickstart")
    bucket, labels_key = model_labels_key(iteration["status"]["modelUri"])
    models = {"classifier": (store.get(bucket, model_onnx_key(iteration["status"]["modelUri"])[1]),
                             store.get(bucket, labels_key.removesuffix("labels.txt") + "config.pbtxt").decode(),
                             store.get(bucket, labels_key))}
    if detector:
        onnx = detector.read_bytes()
        labels = b"".join(b"tag%d\n" % i for i in range(8))  # Triton reads them, the timed calls do not
        models["detector"] = (onnx, detector_config(onnx), labels)
    repository = ModelRepositoryLayout(s3.models_bucket, "benchmarks", "serving")
    store.ensure_bucket(repository.bucket)
    for kind, (onnx, config, labels) in models.items():
        for when in ("before", "after"):
            name = f"{kind}-{when}"
            store.put(repository.bucket, repository.model_key(name, "1/model.onnx"), onnx)
            store.put(repository.bucket, repository.model_key(name, "labels.txt"), labels)
            store.put(repository.bucket, repository.model_key(name, "config.pbtxt"),
                      variant(config, name, when == "before").encode())
    platform.restart_triton()  # a new repository is read when Triton starts
    client = triton.InferenceServerClient(platform.triton_settings().http_url)
    photos = {"classifier": (EXAMPLES / "samples" / "test" / "test_image.jpg").read_bytes(),
              "detector": DETECTION_PHOTO.read_bytes()}
    rows = []
    for kind, (onnx, _, _) in models.items():
        calls = await model_calls(client, kind, onnx, photos[kind])
        measured: dict[str, list[float]] = {path: [] for path in calls}
        for round_ in range(rounds):
            order = list(calls) if round_ % 2 == 0 else list(reversed(calls))
            for path in order:
                call = calls[path]
                for _ in range(3):  # warm up
                    await call() if asyncio.iscoroutinefunction(call) else call()
                for _ in range(requests):
                    started = time.perf_counter()
                    await call() if asyncio.iscoroutinefunction(call) else call()
                    measured[path].append((time.perf_counter() - started) * 1000)
        rows += [{"model": kind, "path": path, "p50": percentile(values, 50), "p99": percentile(values, 99)}
                 for path, values in measured.items()]
    await client.close()
    return rows


async def model_calls(client: triton.InferenceServerClient, kind: str, onnx: bytes, photo: bytes) -> dict:
    """What is timed for one model: the gateway's preprocessing, ONNX Runtime in this process with the gateway's
    session options, and Triton before and after (loaded here)."""
    session = onnxruntime.InferenceSession(onnx, session_options(), providers=["CPUExecutionProvider"])
    size = int(session.get_inputs()[0].shape[-1])
    outputs = [o.name for o in session.get_outputs()]
    settings = GatewaySettings()

    def preprocess() -> np.ndarray:
        image = images.decode(photo, settings)[0]
        if kind == "detector":
            return detection.to_input(image, size)[np.newaxis]
        return classification.to_input(image, Backbone("", "", size))[np.newaxis]

    batch = preprocess()
    calls = {"decode+preprocess": preprocess, "onnxruntime in-process": lambda: session.run(None, {INPUT: batch})}
    for when in ("before", "after"):
        name = f"{kind}-{when}"
        await client.load_model(name)

        async def via_triton(name=name):
            request = triton.InferInput(INPUT, list(batch.shape), "FP32")
            request.set_data_from_numpy(batch, binary_data=True)
            await client.infer(name, [request],
                               outputs=[triton.InferRequestedOutput(o, binary_data=True) for o in outputs])

        calls[f"Triton, {when}"] = via_triton
    return calls


def report_backend(rows: list[dict]) -> None:
    print(f"load average (1 min) after the backend run: {os.getloadavg()[0]:.2f}")
    print("| model | path | p50 (ms) | p99 (ms) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['path']} | {r['p50']:.1f} | {r['p99']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="Requests per measurement.")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds; medians are reported.")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--detector", type=Path, help="A detector's model.onnx, as the trainer exports it.")
    parser.add_argument("--backend-only", action="store_true",
                        help="Skip the gateway's measurement; measure the Triton backend before and after only.")
    args = parser.parse_args()
    own = args.data_dir is None
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="kubevision-serving-"))
    ports = {p: 0 for p in ("s3_port", "mlflow_port", "triton_http_port", "triton_grpc_port",
                            "triton_metrics_port", "gateway_port")}
    platform = LocalPlatform(LocalSettings(data_dir=data_dir, **ports))
    if own:  # throughput is the measure: no per-second limit on the predictions (docs/gateway.md, Rate limits)
        (data_dir / LOCAL_FILE).write_text("defaults: {predictions_per_second: null, "
                                           "stored_predictions_per_second: null}\n")
        platform.up()
    try:
        load_before = os.getloadavg()[0]
        if args.backend_only:
            publish_demo(platform, EXAMPLES)
        else:
            report(asyncio.run(measure(platform, args.requests, args.rounds)), load_before, args.rounds)
        print(f"load average (1 min) before the backend run: {os.getloadavg()[0]:.2f}; medians over {args.rounds} "
              f"alternating rounds of {args.requests} requests")
        report_backend(asyncio.run(measure_backend(platform, args.detector, args.requests, args.rounds)))
    finally:
        if own:
            platform.down()
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
