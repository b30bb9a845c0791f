"""How robust a detector's training is on the object detection quickstart's own split, over seeds: the split of
tests/e2e/test_detection_quickstart.py (the last HELD_OUT photos of each tag in regions.json order are held out),
the training the SDK's train_project asks for (Quick, the General domain), and its pass rule (the top box of each
held-out photo has the right tag and overlaps the known box by MIN_OVERLAP or more).

    .venv/bin/python benchmarks/detection_quickstart_seeds.py [DATASET_DIR] [--seeds 0 1 2 3 4]
        [--training-type Quick] [--domain General] [--quick-epochs N]

The training images are put in content order and every generator is seeded, as kubevision.trainer.run does; the
seed also picks the trainer's own held-out share. Prints one line a seed (each photo's overlap, the smallest) and
the load average.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

HELD_OUT = 3  # as the quickstart test
MIN_OVERLAP = 0.5


def overlap(a, b) -> float:
    """Intersection over union of two (left, top, width, height) boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(width, 0) * max(height, 0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def main() -> None:
    from detection_accuracy import load, subset

    from kubevision.core.api import Domain, TrainingType
    from kubevision.core.domains import BACKBONES
    from kubevision.core.training import ResolvedTraining
    from kubevision.trainer.detection import training
    from kubevision.trainer.detection.network import input_size
    from kubevision.trainer.seeds import seed_everything

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", nargs="?", default=str(Path(__file__).parents[1] / "examples" / "detection"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--training-type", default="Quick")
    parser.add_argument("--domain", default="General")
    parser.add_argument("--quick-epochs", type=int,
                        help="a recipe to try: this many passes over Quick's cached views, whatever the steps")
    args = parser.parse_args()
    if args.quick_epochs:
        training.QUICK_MIN_EPOCHS = training.QUICK_MAX_EPOCHS = args.quick_epochs
    root = Path(args.dataset_dir)
    spec = BACKBONES[Domain(args.domain)]
    everything = load(root, round(input_size(spec) * 1.25))
    first_tags = [everything.tags[labels[0]] for labels in everything.labels]
    test_rows = [i for tag in everything.tags for i in [r for r, t in enumerate(first_tags) if t == tag][-HELD_OUT:]]
    train_rows = sorted(set(range(len(first_tags))) - set(test_rows),
                        key=lambda i: hashlib.sha256(Path(everything.ids[i]).read_bytes()).hexdigest())
    train, test = subset(everything, train_rows), subset(everything, test_rows)
    print(f"# load average before: {os.getloadavg()}", flush=True)
    for seed in args.seeds:
        seed_everything(seed)
        started = time.monotonic()
        options = ResolvedTraining(training_type=TrainingType(args.training_type), budget_minutes=60, seed=seed)
        fitted = training.train(train, spec, options, started + 3600, lambda *_, **__: None)
        seconds = time.monotonic() - started
        overlaps = []
        for boxes, labels, found in zip(test.boxes, test.labels, training.predict(fitted.served, test.images),
                                        strict=True):
            known = (*boxes[0, :2], *(boxes[0, 2:] - boxes[0, :2]))
            overlaps.append(overlap(found.boxes[0], known) if found.classes[0] == labels[0] else 0.0)
        verdict = "pass" if min(overlaps) >= MIN_OVERLAP else "FAIL"
        print(f"seed {seed}: {verdict}, smallest overlap {min(overlaps):.3f} (each: "
              f"{' '.join(format(o, '.2f') for o in overlaps)}), {fitted.epochs} epochs, {seconds:.0f} s, "
              f"load {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
