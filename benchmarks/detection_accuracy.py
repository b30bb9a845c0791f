"""Accuracy and speed of detection training, Quick and Advanced, against torchvision's Faster R-CNN trained as its
detection tutorial trains it, on the same backbone, given the same time, measured in the same run.

    .venv/bin/python benchmarks/detection_accuracy.py DATASET_DIR [--folds 5] [--run-folds 0 1 2 3 4]
        [--modes advanced baseline quick] [--budget-minutes 15] [--train-limit N] [--domain GeneralCompact]
        [--quick-epochs N]

DATASET_DIR holds either regions.json over its images (cross-validated in --folds stratified folds; --run-folds
picks which to run), or train/ and test/, each with its regions.json (the dataset's own split). regions.json is
a list of {"image": path, "regions": [{"tag", "left", "top", "width", "height"}]}. Test images never reach training
or early stopping (Advanced holds out a share of the training images for that). The baseline: FasterRCNN on the
same EfficientNet-Lite pyramid, SGD lr 0.005 momentum 0.9 weight decay 0.0005, StepLR(3, 0.1) after a
first-epoch linear warm-up from a thousandth of the rate, batch 2, horizontal
flips only, trained for the wall time that Advanced took on the same fold. Each run is a fresh process, so that its
peak memory is its own. Prints one line a run and a Markdown table, with the load average.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def load(folder: Path, working_size: int, tags: list[str] | None = None):
    from kubevision.trainer.data import decode
    from kubevision.trainer.detection.data import RegionImages

    entries = json.loads((folder / "regions.json").read_text())
    tags = tags or sorted({r["tag"] for entry in entries for r in entry["regions"]})
    index = {tag: i for i, tag in enumerate(tags)}
    images, boxes, labels = [], [], []
    for entry in entries:
        images.append(decode((folder / entry["image"]).read_bytes(), working_size))
        boxes.append(np.array([[r["left"], r["top"], r["left"] + r["width"], r["top"] + r["height"]]
                               for r in entry["regions"]], dtype=np.float32))
        labels.append(np.array([index[r["tag"]] for r in entry["regions"]], dtype=np.int64))
    return RegionImages(ids=[str(folder / e["image"]) for e in entries], images=images, boxes=boxes,
                        labels=labels, tags=tags, skipped=[], unlabelled=0)


def subset(dataset, indices):
    from kubevision.trainer.detection.data import RegionImages

    return RegionImages(ids=[dataset.ids[i] for i in indices], images=[dataset.images[i] for i in indices],
                        boxes=[dataset.boxes[i] for i in indices], labels=[dataset.labels[i] for i in indices],
                        tags=dataset.tags, skipped=[], unlabelled=0)


def split(dataset_dir: str, working_size: int, folds: int, fold: int, train_limit: int | None):
    from sklearn.model_selection import StratifiedKFold

    root = Path(dataset_dir)
    if (root / "train" / "regions.json").exists():
        train = load(root / "train", working_size)
        test = load(root / "test", working_size, train.tags)
    else:
        everything = load(root, working_size)
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
        train_rows, test_rows = list(splitter.split(everything.ids, everything.primary_labels))[fold]
        train, test = subset(everything, train_rows), subset(everything, test_rows)
    if train_limit and len(train.ids) > train_limit:
        rows = np.random.default_rng(0).permutation(len(train.ids))[:train_limit]
        train = subset(train, sorted(rows))
    return train, test


def faster_rcnn(spec, classes: int):
    """torchvision's two-stage detector on the same pyramid; class 0 is its background."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    from kubevision.trainer.backbone import MEAN, STD
    from kubevision.trainer.detection.network import Pyramid, input_size

    size = input_size(spec)
    anchors = AnchorGenerator(((16,), (32,), (64,), (128,), (256,)), ((0.5, 1.0, 2.0),) * 5)
    return FasterRCNN(Pyramid(spec), num_classes=classes + 1, min_size=size, max_size=size, image_mean=list(MEAN),
                      image_std=list(STD), rpn_anchor_generator=anchors,
                      box_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 7, 2), box_score_thresh=0.01)


def train_baseline(spec, train, seconds: float):
    """The tutorial's recipe, for `seconds` of wall time."""
    import torch
    from torchvision.transforms import v2

    from kubevision.trainer.detection import training
    from kubevision.trainer.detection.network import input_size

    model = faster_rcnn(spec, len(train.tags))
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.SGD(parameters, lr=0.005, momentum=0.9, weight_decay=0.0005)
    schedule = torch.optim.lr_scheduler.StepLR(optimiser, step_size=3, gamma=0.1)
    size = input_size(spec)
    transform = v2.Compose([v2.RandomHorizontalFlip(0.5), v2.Resize((size, size), antialias=True),
                            v2.SanitizeBoundingBoxes(), v2.ToDtype(torch.float32, scale=True)])
    examples = [training._example(train, i) for i in range(len(train.ids))]
    for example in examples:
        example[1]["labels"] = example[1]["labels"] + 1
    steps_per_epoch = -(-len(examples) // 2)
    # The tutorial's first epoch warms the learning rate up from a thousandth (its engine.train_one_epoch); without
    # it the new layers saturate on dense images (BCCD: every region scored background).
    warm_up = torch.optim.lr_scheduler.LinearLR(optimiser, start_factor=1 / 1000,
                                                total_iters=min(1000, steps_per_epoch - 1))
    deadline, epochs = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        model.train()
        order = torch.randperm(len(examples)).tolist()
        for start in range(0, len(order), 2):
            batch = [transform(*examples[i]) for i in order[start:start + 2]]
            losses = model([image.as_subclass(torch.Tensor) for image, _ in batch],
                           [{"boxes": t["boxes"].as_subclass(torch.Tensor), "labels": t["labels"]} for _, t in batch])
            optimiser.zero_grad()
            sum(losses.values()).backward()
            optimiser.step()
            if epochs == 0:
                warm_up.step()
        schedule.step()  # once an epoch, as the tutorial does
        epochs += 1
    return model.eval(), epochs


def predict_baseline(model, spec, images):
    import torch

    from kubevision.core.detection_metrics import Predictions
    from kubevision.core.serving.detection import to_input
    from kubevision.trainer.detection.network import input_size

    size = input_size(spec)
    found = []
    with torch.inference_mode():
        for image in images:
            output = model([torch.from_numpy(to_input(image, size))])[0]
            corners = output["boxes"].numpy() / size
            boxes = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)
            found.append(Predictions(boxes, output["scores"].numpy(), output["labels"].numpy() - 1))
    return found


def one_run(mode: str, dataset_dir: str, folds: int, fold: int, domain: str, budget_minutes: int,
            train_limit: int | None, baseline_seconds: float | None, quick_epochs: int | None) -> dict:
    import onnxruntime
    import torch

    from kubevision.core.api import Domain, TrainingType
    from kubevision.core.detection_metrics import evaluate
    from kubevision.core.domains import BACKBONES
    from kubevision.core.serving.detection import INPUT, to_input
    from kubevision.core.training import ResolvedTraining
    from kubevision.trainer.detection import export, training
    from kubevision.trainer.detection.network import input_size
    from kubevision.trainer.seeds import seed_everything

    torch.set_num_threads(os.cpu_count() or 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if quick_epochs:
        training.QUICK_MIN_EPOCHS = training.QUICK_MAX_EPOCHS = quick_epochs
    spec = BACKBONES[Domain(domain)]
    size = input_size(spec)
    train, test = split(dataset_dir, round(size * 1.25), folds, fold, train_limit)
    seed_everything(0)
    started = time.monotonic()
    latency_ms, model_file = None, None
    if mode == "baseline":
        model, epochs = train_baseline(spec, train, baseline_seconds)
        predictions = predict_baseline(model, spec, test.images)
    else:
        options = ResolvedTraining(training_type=TrainingType(mode.capitalize()), budget_minutes=budget_minutes)
        fitted = training.train(train, spec, options, started + budget_minutes * 60 * 0.9, lambda *_, **__: None)
        epochs = fitted.epochs
        predictions = training.predict(fitted.served, test.images)
        onnx = export.onnx_model(fitted.served)
        model_file = Path(tempfile.gettempdir()) / f"detection-benchmark-{os.getppid()}-{mode}-{fold}.onnx"
        model_file.write_bytes(onnx)
        session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
        one = to_input(test.images[0], size)[None]
        timings = []
        for _ in range(21):
            begun = time.perf_counter()
            session.run(None, {INPUT: one})
            timings.append((time.perf_counter() - begun) * 1000)
        latency_ms = statistics.median(timings[1:])
    seconds = time.monotonic() - started
    scored = evaluate(test.boxes, test.labels, predictions, test.tags, 0.5)
    return {
        "mode": mode, "fold": fold, "backbone": spec.architecture, "train_images": len(train.ids),
        "test_images": len(test.ids), "epochs": epochs, "map_50": scored.metrics.average_precision,
        "map_50_95": scored.map_50_95, "per_tag_ap": {t.tag: round(t.average_precision, 3)
                                                      for t in scored.metrics.per_tag},
        "seconds": seconds, "onnx_ms": latency_ms, "model_file": str(model_file) if model_file else None,
        "input_size": size, "sample": test.ids[0], "tags": test.tags,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def own_split(dataset_dir: str) -> bool:
    return (Path(dataset_dir) / "train" / "regions.json").exists()


def triton_latency(run: dict, requests: int) -> float:
    """Median milliseconds of one image through the local Triton over HTTP (the preprocessed tensor sent), with the
    model Quick exported."""
    import shutil

    import tritonclient.http as triton_http
    from PIL import Image

    from kubevision.core.domains import BACKBONES
    from kubevision.core.serving.detection import INPUT, to_input
    from kubevision.core.serving.detection import config as detection_config
    from kubevision.core.settings import LocalSettings
    from kubevision.core.storage import ModelRepositoryLayout, ObjectStore
    from kubevision.local.supervisor import LocalPlatform

    data_dir = Path(tempfile.mkdtemp(prefix="kubevision-detection-"))
    ports = {p: 0 for p in ("s3_port", "mlflow_port", "triton_http_port", "triton_grpc_port",
                            "triton_metrics_port", "gateway_port")}
    platform = LocalPlatform(LocalSettings(data_dir=data_dir, **ports))
    platform.up()
    try:
        s3 = platform.s3_settings()
        repository = ModelRepositoryLayout(s3.models_bucket, "benchmarks", "detection")
        store = ObjectStore(s3)
        store.ensure_bucket(repository.bucket)
        backbone = next(b for b in BACKBONES.values() if b.architecture == run["backbone"])
        config = detection_config("detector", backbone, run["input_size"])
        store.put(repository.bucket, repository.model_key("detector", "1/model.onnx"),
                  Path(run["model_file"]).read_bytes())
        store.put(repository.bucket, repository.model_key("detector", "labels.txt"), "\n".join(run["tags"]).encode())
        store.put(repository.bucket, repository.model_key("detector", "config.pbtxt"), config.encode())
        platform.restart_triton()
        client = triton_http.InferenceServerClient(platform.triton_settings().http_url)
        client.load_model("detector")
        batch = to_input(Image.open(run["sample"]), run["input_size"])[None]
        request = triton_http.InferInput(INPUT, list(batch.shape), "FP32")
        request.set_data_from_numpy(batch, binary_data=True)
        timings = []
        for _ in range(requests + 1):
            begun = time.perf_counter()
            client.infer("detector", [request])
            timings.append((time.perf_counter() - begun) * 1000)
        return statistics.median(timings[1:])
    finally:
        platform.down()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--run-folds", type=int, nargs="+", help="which folds to run (default: all)")
    parser.add_argument("--domain", default="GeneralCompact")
    parser.add_argument("--modes", nargs="+", default=["advanced", "baseline", "quick"],
                        help="advanced runs before the baseline, which gets its wall time")
    parser.add_argument("--budget-minutes", type=int, default=15)
    parser.add_argument("--train-limit", type=int, help="train on at most this many images (a seeded sample)")
    parser.add_argument("--quick-epochs", type=int,
                        help="a recipe to try: this many passes over Quick's cached views, whatever the steps")
    parser.add_argument("--triton-requests", type=int, default=0,
                        help="then time this many single-image requests of Quick's model through the local Triton")
    args = parser.parse_args()
    folds = args.run_folds if args.run_folds is not None else list(range(args.folds))
    folds = [0] if own_split(args.dataset_dir) else folds
    context = multiprocessing.get_context("spawn")
    runs = []
    print(f"# load average before: {os.getloadavg()}", flush=True)
    for fold in folds:
        advanced_seconds = args.budget_minutes * 60
        for mode in args.modes:
            with context.Pool(1) as pool:
                run = pool.apply(one_run, (mode, args.dataset_dir, args.folds, fold, args.domain,
                                           args.budget_minutes, args.train_limit, advanced_seconds,
                                           args.quick_epochs))
            if mode == "advanced":
                advanced_seconds = run["seconds"]
            print(f"# {run} load {os.getloadavg()}", flush=True)
            runs.append(run)
    print(f"# load average after: {os.getloadavg()}")
    baseline = [r for r in runs if r["mode"] == "baseline"]
    base_map = statistics.mean(r["map_50"] for r in baseline) if baseline else None
    print("\n| mode | backbone | folds | mAP@0.5 (per fold) | mAP@0.5 mean | vs baseline | mAP@0.5:0.95 | "
          "epochs | wall time (s) | ONNX ms/image | peak memory (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for mode in args.modes:
        group = [r for r in runs if r["mode"] == mode]
        mean = statistics.mean(r["map_50"] for r in group)
        latency = [r["onnx_ms"] for r in group if r["onnx_ms"] is not None]
        print(f"| {mode} | {group[0]['backbone']} | {len(group)} | "
              f"{' / '.join(format(r['map_50'], '.3f') for r in group)} | {mean:.3f} | "
              f"{'-' if base_map is None else format(mean - base_map, '+.3f')} | "
              f"{statistics.mean(r['map_50_95'] for r in group):.3f} | "
              f"{statistics.mean(r['epochs'] for r in group):.0f} | "
              f"{statistics.mean(r['seconds'] for r in group):.0f} | "
              f"{format(statistics.median(latency), '.1f') if latency else '-'} | "
              f"{max(r['peak_mb'] for r in group):.0f} |")
    quick = next((r for r in runs if r["mode"] == "quick"), None)
    try:
        if args.triton_requests and quick:
            milliseconds = triton_latency(quick, args.triton_requests)
            print(f"# Triton, one image over HTTP, median of {args.triton_requests}: {milliseconds:.1f} ms; "
                  f"load {os.getloadavg()}")
    finally:
        for run in runs:
            if run["model_file"]:
                Path(run["model_file"]).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
