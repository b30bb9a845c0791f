"""Accuracy and speed of Quick and Advanced training against a linear-probe baseline measured in the same run.

    .venv/bin/python benchmarks/train_accuracy.py DATASET_DIR [--seeds 0 1 2] [--domain GeneralCompact]

DATASET_DIR holds train/<tag>/* and test/<tag>/*. Test images never reach training, model selection or early
stopping. The baseline is exactly: frozen EfficientNet-Lite0 features + scikit-learn LogisticRegression.
Each run is a fresh process, so that its peak memory is its own. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import time
from pathlib import Path

import numpy as np


def load_folder(folder: Path, tags: list[str], working_size: int):
    from kubevision.trainer import data

    images, labels = [], []
    for label, tag in enumerate(tags):
        for path in sorted((folder / tag).iterdir()):
            image = data.decode(path.read_bytes(), working_size)
            if not isinstance(image, tuple):
                images.append(image)
                labels.append(label)
    return images, np.eye(len(tags), dtype=np.float32)[labels]


def one_run(mode: str, seed: int, dataset_dir: str, domain: str, budget_minutes: int) -> dict:
    import torch
    from sklearn.linear_model import LogisticRegression

    from kubevision.core.api import Domain, TrainingType
    from kubevision.core.domains import BACKBONES, LITE0
    from kubevision.core.training import ResolvedTraining
    from kubevision.trainer import advanced, backbone, evaluation, quick
    from kubevision.trainer.data import LabelledImages
    from kubevision.trainer.network import batch_inputs
    from kubevision.trainer.run import seed_everything

    root = Path(dataset_dir)
    tags = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    spec = LITE0 if mode == "baseline" else BACKBONES[Domain(domain)]
    train_images, train_targets = load_folder(root / "train", tags, spec.resize_size)
    test_images, test_targets = load_folder(root / "test", tags, spec.resize_size)
    seed_everything(seed)
    started = time.monotonic()
    network = backbone.load(spec)
    if mode == "baseline":
        features = quick.features(network, train_images, spec, 32)
        model = LogisticRegression(max_iter=5000).fit(features, train_targets.argmax(axis=1))
        probabilities = model.predict_proba(quick.features(network, test_images, spec, 32))
    else:
        dataset = LabelledImages(ids=[str(i) for i in range(len(train_images))], images=train_images, tags=tags,
                                 targets=train_targets, skipped=[], untagged=0)
        options = ResolvedTraining(training_type=TrainingType(mode.capitalize()), budget_minutes=budget_minutes,
                                   seed=seed)
        if options.training_type == TrainingType.QUICK:
            trained = quick.train(network, dataset, spec, options, multilabel=False)
        else:
            deadline = started + budget_minutes * 60
            trained = advanced.train(network, dataset, spec, options, False, deadline, lambda *_: None)
        classifier = trained.classifier.eval()
        with torch.inference_mode():
            probabilities = np.concatenate([
                classifier(batch_inputs(test_images[i:i + 32], spec)).numpy() for i in range(0, len(test_images), 32)
            ])
    seconds = time.monotonic() - started
    metrics = evaluation.metrics_at(test_targets, probabilities, tags, 0.5)
    return {
        "mode": mode, "seed": seed, "backbone": spec.architecture,
        "top1": evaluation.top1_accuracy(test_targets, probabilities), "map": metrics.average_precision,
        "seconds": seconds, "images_per_second": len(train_images) / seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--domain", default="GeneralCompact", help="Custom Vision domain of Quick and Advanced")
    parser.add_argument("--modes", nargs="+", default=["baseline", "quick", "advanced"])
    parser.add_argument("--budget-minutes", type=int, default=15)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    runs = []
    for mode in args.modes:
        for seed in args.seeds if mode == "advanced" else [0]:  # the baseline and Quick have no randomness
            with context.Pool(1) as pool:
                run = pool.apply(one_run, (mode, seed, args.dataset_dir, args.domain, args.budget_minutes))
            print(f"# {run}", flush=True)
            runs.append(run)
    baseline = next((r for r in runs if r["mode"] == "baseline"), None)
    print("\n| mode | backbone | seeds | top-1 accuracy | top-1 error (mean ± sd) | error / baseline | mAP | "
          "wall time (s) | time / baseline | train images/s | peak memory (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for mode in args.modes:
        group = [r for r in runs if r["mode"] == mode]
        errors = [1 - r["top1"] for r in group]
        error = statistics.mean(errors)
        spread = statistics.stdev(errors) if len(errors) > 1 else 0.0
        seconds = statistics.mean(r["seconds"] for r in group)
        error_ratio = f"{error / (1 - baseline['top1']):.2f}" if baseline and baseline["top1"] < 1 else "-"
        time_ratio = f"{seconds / baseline['seconds']:.1f}" if baseline else "-"
        print(f"| {mode} | {group[0]['backbone']} | {len(group)} | "
              f"{' / '.join(format(r['top1'], '.2%') for r in group)} | {error:.2%} ± {spread:.2%} | {error_ratio} | "
              f"{statistics.mean(r['map'] for r in group):.4f} | {seconds:.0f} | {time_ratio} | "
              f"{statistics.mean(r['images_per_second'] for r in group):.1f} | "
              f"{max(r['peak_mb'] for r in group):.0f} |")


if __name__ == "__main__":
    main()
