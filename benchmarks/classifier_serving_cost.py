"""What each classifier the trainer can serve costs to run: ONNX model size and latency per image in ONNX Runtime,
the runtime Triton serves these models with (platform onnxruntime_onnx), without Triton's HTTP in front.

    .venv/bin/python benchmarks/classifier_serving_cost.py [--images 50] [--rounds 3]

One model a domain's backbone, with the linear head of a 10-tag project: Quick's model (one pass) and the fine-tuned
network Advanced may serve (the image and its mirror averaged: two passes). Batch 1, the median latency of each
round, rounds alternating between the models so that a change in the machine's load falls on all of them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import onnxruntime
from torch import nn

from kubevision.core.domains import BACKBONES
from kubevision.core.serving.classification import INPUT
from kubevision.trainer import backbone
from kubevision.trainer.classification import export
from kubevision.trainer.classification.network import Classifier

TAGS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50, help="timed images a model a round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sessions, sizes, latencies = {}, {}, {}
    for spec in dict.fromkeys(BACKBONES.values()):  # each backbone once, in the order of the domains
        network = backbone.load(spec)
        for served, flip in (("Quick", False), ("FineTuned", True)):
            onnx = export.onnx_model(Classifier(network, nn.Linear(network.num_features, TAGS), False, flip), spec)
            name = (spec.architecture, spec.input_size, served)
            sessions[name] = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
            sizes[name] = len(onnx) / 2**20
    image = {name: np.random.default_rng(0).random((1, 3, name[1], name[1]), dtype=np.float32) for name in sessions}
    print(f"load average at the start {os.getloadavg()[0]:.1f}")
    for _ in range(args.rounds):
        for name, session in sessions.items():
            session.run(None, {INPUT: image[name]})  # warm-up
            times = []
            for _ in range(args.images):
                started = time.perf_counter()
                session.run(None, {INPUT: image[name]})
                times.append((time.perf_counter() - started) * 1000)
            latencies.setdefault(name, []).append(statistics.median(times))
    print(f"load average at the end {os.getloadavg()[0]:.1f}\n")
    print("| backbone | input (px) | served model | ONNX size (MB) | latency per image (ms) |")
    print("|---|---|---|---|---|")
    for name, values in latencies.items():
        print(f"| {name[0]} | {name[1]} | {name[2]} | {sizes[name]:.1f} | {statistics.median(values):.1f} |")


if __name__ == "__main__":
    main()
