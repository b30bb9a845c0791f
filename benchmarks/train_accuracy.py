"""Accuracy and speed of Quick and Advanced training against a linear-probe baseline measured in the same run, on
several classification datasets.

    .venv/bin/python benchmarks/train_accuracy.py [flowers12 fashion-mnist customvision-samples digits]
        [--seeds 0 1 2] [--domain GeneralCompact] [--train-per-class N] [--test-per-class N]

The datasets:
- flowers12: a folder of train/<tag>/* and test/<tag>/* (--flowers12-dir);
- fashion-mnist: Debian's dataset-fashion-mnist, the first N images a class of its training file to train, the
  first M of its test file to test (grayscale 28 px product photos);
- customvision-samples: the Custom Vision quickstart photos (examples/samples), too few for a test split, so
  cross-validated: 5 stratified folds, each trained apart, the test predictions of all folds pooled;
- digits: scikit-learn's bundled copy of the UCI handwritten digits (8 px grayscale), N a class to train, M to test.

Test images never reach training, model selection or early stopping. The baseline is exactly: frozen
EfficientNet-Lite0 features + scikit-learn LogisticRegression. Each run is a fresh process, so that its peak memory
is its own. Prints one Markdown table a dataset, then a summary: each mode's mean and worst error / baseline.
"""

from __future__ import annotations

import argparse
import gzip
import io
import multiprocessing
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
DATASETS = ("flowers12", "fashion-mnist", "customvision-samples", "digits")
FASHION_TAGS = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
CROSS_VALIDATION_FOLDS = 5


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _first_per_class(labels: np.ndarray, per_class: int | None) -> np.ndarray:
    return np.concatenate([np.flatnonzero(labels == label)[:per_class] for label in np.unique(labels)])


def _folder(folder: Path, tags: list[str], per_class: int | None) -> tuple[list[bytes], list[int]]:
    files, labels = [], []
    for label, tag in enumerate(tags):
        for path in sorted((folder / tag).iterdir())[:per_class]:
            files.append(path.read_bytes())
            labels.append(label)
    return files, labels


def _idx(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz") as f:
        pixels = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return pixels, labels


def splits(name: str, args) -> tuple[list[str], list[tuple[list[bytes], list[int], list[bytes], list[int]]]]:
    """(tags, [(train files, train labels, test files, test labels), ...]): one split, or one a fold."""
    train_n, test_n = args.train_per_class, args.test_per_class
    if name == "flowers12":
        root = Path(args.flowers12_dir)
        tags = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        return tags, [(*_folder(root / "train", tags, train_n), *_folder(root / "test", tags, test_n))]
    if name == "fashion-mnist":
        folder = Path(args.fashion_mnist_dir)
        (train_pixels, train_labels), (test_pixels, test_labels) = _idx(folder, "train"), _idx(folder, "t10k")
        train, test = _first_per_class(train_labels, train_n or 30), _first_per_class(test_labels, test_n or 30)
        return list(FASHION_TAGS), [([_png(train_pixels[i]) for i in train], train_labels[train].tolist(),
                                     [_png(test_pixels[i]) for i in test], test_labels[test].tolist())]
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        pixels = (digits.images * 255 / 16).astype(np.uint8)  # 0-16 in the set
        rng = np.random.default_rng(0)
        order = rng.permutation(len(digits.target))
        labels = digits.target[order]
        train = order[_first_per_class(labels, train_n or 30)]
        rest = np.setdiff1d(order, train)
        test = rest[_first_per_class(digits.target[rest], test_n or 30)]
        return [str(d) for d in range(10)], [([_png(pixels[i]) for i in train], digits.target[train].tolist(),
                                              [_png(pixels[i]) for i in test], digits.target[test].tolist())]
    if name == "customvision-samples":
        from sklearn.model_selection import StratifiedKFold

        root = Path(args.samples_dir)
        tags = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.lower() != "test")  # an unlabelled photo
        files, labels = _folder(root, tags, None)
        folds = StratifiedKFold(CROSS_VALIDATION_FOLDS, shuffle=True, random_state=0).split(files, labels)
        return tags, [([files[i] for i in train], [labels[i] for i in train], [files[i] for i in test],
                       [labels[i] for i in test]) for train, test in folds]
    raise ValueError(f"unknown dataset {name}; known: {', '.join(DATASETS)}")


def one_run(mode: str, seed: int, tags: list[str], split, domain: str, budget_minutes: int) -> dict:
    import logging

    import torch
    from sklearn.linear_model import LogisticRegression

    from kubevision.core.api import Domain, TrainingType
    from kubevision.core.domains import BACKBONES, LITE0
    from kubevision.core.training import ResolvedTraining
    from kubevision.trainer import backbone, data
    from kubevision.trainer.classification import advanced, quick
    from kubevision.trainer.classification.network import batch_inputs, device
    from kubevision.trainer.data import LabelledImages
    from kubevision.trainer.seeds import seed_everything

    # Advanced's log says when the budget, not early stopping, ended its epochs.
    logging.basicConfig(level=logging.WARNING, format="#   %(message)s")
    logging.getLogger("kubevision.trainer.classification.advanced").setLevel(logging.INFO)
    spec = LITE0 if mode == "baseline" else BACKBONES[Domain(domain)]
    train_files, train_labels, test_files, test_labels = split
    train_images = [data.decode(f, spec.resize_size) for f in train_files]
    test_images = [data.decode(f, spec.resize_size) for f in test_files]
    train_targets = np.eye(len(tags), dtype=np.float32)[train_labels]
    seed_everything(seed)
    started = time.monotonic()
    network = backbone.load(spec)
    choice, comparison = "", {}
    if mode == "baseline":
        features = quick.features(network, train_images, spec, 32)
        model = LogisticRegression(max_iter=5000).fit(features, np.asarray(train_labels))
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
            choice, comparison = trained.choice, trained.comparison
        classifier = trained.classifier.eval()
        with torch.inference_mode():
            probabilities = np.concatenate([
                classifier(batch_inputs(test_images[i:i + 32], spec)).numpy() for i in range(0, len(test_images), 32)
            ])
    return {
        "mode": mode, "seed": seed, "backbone": spec.architecture, "device": device().type, "choice": choice,
        "right": int((probabilities.argmax(axis=1) == np.asarray(test_labels)).sum()), "tested": len(test_labels),
        "seconds": time.monotonic() - started, "trained": len(train_images),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **({"gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20} if torch.cuda.is_available() else {}),
        **comparison,  # Advanced: the cross-validated scores it chose by and the epochs (0: no epoch fitted the budget)
    }


def benchmark(name: str, args, context) -> dict[str, float]:
    """Runs every mode on one dataset, prints its table; returns each mode's mean error."""
    tags, parts = splits(name, args)
    print(f"\n### {name}: {len(tags)} tags, {sum(len(p[0]) for p in parts)} training and "
          f"{sum(len(p[2]) for p in parts)} test images over {len(parts)} split(s); load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    runs = []
    for mode in args.modes:
        for seed in args.seeds if mode == "advanced" else [0]:  # the baseline and Quick have no randomness
            for part in parts:
                with context.Pool(1) as pool:
                    run = pool.apply(one_run, (mode, seed, tags, part, args.domain, args.budget_minutes))
                print(f"# {name}: load average {os.getloadavg()[0]:.1f}: {run}", flush=True)
                runs.append(run)
    errors = {}
    print("\n| mode | backbone | seeds | top-1 accuracy | top-1 error (mean ± sd) | error / baseline | "
          "Advanced served | wall time (s) | time / baseline | peak memory (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode in args.modes:
        group = [r for r in runs if r["mode"] == mode]
        seeds = sorted({r["seed"] for r in group})
        accuracies = [sum(r["right"] for r in group if r["seed"] == s) / sum(r["tested"] for r in group
                                                                            if r["seed"] == s) for s in seeds]
        errors[mode] = statistics.mean(1 - a for a in accuracies)
        spread = statistics.stdev(1 - a for a in accuracies) if len(accuracies) > 1 else 0.0
        seconds = sum(r["seconds"] for r in group) / len(seeds)
        baseline = errors.get("baseline")
        baseline_seconds = sum(r["seconds"] for r in runs if r["mode"] == "baseline")
        ratio = f"{errors[mode] / baseline:.2f}" if baseline else "-"
        time_ratio = f"{seconds / baseline_seconds:.1f}" if baseline_seconds else "-"
        choices = ", ".join(sorted({r["choice"] for r in group if r["choice"]})) or "-"
        print(f"| {mode} | {group[0]['backbone']} | {len(seeds)} | {' / '.join(format(a, '.2%') for a in accuracies)} "
              f"| {errors[mode]:.2%} ± {spread:.2%} | {ratio} | {choices} | {seconds:.0f} | {time_ratio} | "
              f"{max(r['peak_mb'] for r in group):.0f} |")
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--domain", default="GeneralCompact", help="Custom Vision domain of Quick and Advanced")
    parser.add_argument("--modes", nargs="+", default=["baseline", "quick", "advanced"])
    parser.add_argument("--budget-minutes", type=int, default=15)
    parser.add_argument("--train-per-class", type=int, help="at most this many training images a tag")
    parser.add_argument("--test-per-class", type=int, help="at most this many test images a tag")
    parser.add_argument("--flowers12-dir", default=str(REPOSITORY.parent / "shared" / "datasets" / "flowers12"))
    parser.add_argument("--fashion-mnist-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--samples-dir", default=str(REPOSITORY / "examples" / "samples"))
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    ratios: dict[str, list[float]] = {}
    for name in args.datasets:
        errors = benchmark(name, args, context)
        for mode, error in errors.items():
            if errors.get("baseline"):
                ratios.setdefault(mode, []).append(error / errors["baseline"])
    print(f"\n### summary over {', '.join(args.datasets)}\n\n| mode | mean error / baseline | worst error / baseline |")
    print("|---|---|---|")
    for mode, values in ratios.items():
        print(f"| {mode} | {statistics.mean(values):.2f} | {max(values):.2f} |")


if __name__ == "__main__":
    main()
