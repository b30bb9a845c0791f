"""`kubevision usage --prometheus` against a real Prometheus that scrapes a real gateway (on the Kubernetes emulator)
every second: a known sequence of uploads and exports in two namespaces comes out exactly, each namespace its own,
over a window that holds all of it and over one that began after the first calls."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from detector_model import onnx_detector
from gateway_harness import kubernetes_gateway, serving_metrics
from kube_emulator import KubeEmulator
from prometheus_server import PrometheusServer
from test_detection_api import photo
from test_usage import TAGS, add_images, export, served_tools

from kubevision.cli import prometheus as usage_from_prometheus
from kubevision.core.settings import GatewaySettings

REPO = Path(__file__).resolve().parents[2]
TEAMS = ("team-p1", "team-p2")  # no other test counts in these: the counters are the process's, every test's
HEADER = ["NAMESPACE", "PREDICTIONS STORED", "NOT STORED", "IMAGES", "IMAGE BYTES", "EXPORTS", "TRAININGS",
          "TRAINING SECONDS", "GPU SECONDS"]


def cells(line: str) -> list[str]:
    """A table line's cells (columns are as wide as the widest row, another test's namespace's too)."""
    return re.split(r"\s{2,}", line.strip())


def row(namespace: str, images: int, image_bytes: int, exports: int) -> list[str]:
    """The cells of a namespace that stored images and exported, and predicted and trained nothing."""
    return [namespace, "0", "0", str(images), str(image_bytes), str(exports), "0", "0", "0"]


@pytest.mark.kmock(cls=KubeEmulator, crds=sorted(str(p) for p in (REPO / "crds").glob("*.yaml")), strict=True)
async def test_prometheus_figures_are_each_namespaces_calls(kmock, platform, tmp_path, kubevision_cli):
    model = onnx_detector(len(TAGS))
    projects = {ns: await served_tools(kmock, platform, ns, model, gpus=0) for ns in TEAMS}
    pictures = [photo(n, size=(60 + n, 32)) for n in range(6)]  # distinct contents, known sizes
    settings = GatewaySettings(mode="kubernetes", data_dir=tmp_path)
    with serving_metrics() as metrics_port, PrometheusServer([metrics_port]) as prometheus:
        async with kubernetes_gateway(kmock, settings, platform.s3_settings()) as base, \
                httpx.AsyncClient(base_url=base, timeout=60) as http:
            (one, one_iteration), (two, _) = projects["team-p1"], projects["team-p2"]
            # Before the window of the second half: series born with the first calls, not at 0.
            assert await add_images(http, one, "team-p1", pictures[:3]) == ["OK"] * 3
            await export(http, "team-p1", one, one_iteration)
            assert await add_images(http, two, "team-p2", pictures[4:5]) == ["OK"]
            prometheus.wait_for_scrape()
            time.sleep(2)  # samples of the first half alone, before the second half's window begins
            second_half_began = time.time()
            assert await add_images(http, one, "team-p1", [pictures[2], pictures[3]]) == ["OKDuplicate", "OK"]
            await export(http, "team-p1", one, one_iteration)
            assert await add_images(http, two, "team-p2", pictures[5:6]) == ["OK"]
            prometheus.wait_for_scrape()

        sizes = [len(p) for p in pictures]
        table = kubevision_cli("usage", "--prometheus", prometheus.url, "--since", "1h")
        assert table.returncode == 0, table.stderr
        rows = [cells(line) for line in table.stdout.splitlines()]
        assert rows[0] == HEADER
        assert [r for r in rows if r[0] in TEAMS] == [
            row("team-p1", 4, sum(sizes[:4]), 2), row("team-p2", 2, sizes[4] + sizes[5], 0)]

        mine = kubevision_cli("usage", "--prometheus", prometheus.url, "--since", "1h", "-n", "team-p2",
                              "--by-project", "-o", "json")
        assert mine.returncode == 0, mine.stderr
        assert json.loads(mine.stdout) == [{
            "namespace": "team-p2", "project": "tools", "predictions_stored": 0, "predictions_not_stored": 0,
            "images_stored": 2, "image_bytes": sizes[4] + sizes[5], "exports": 0, "trainings": 0,
            "training_seconds": 0.0, "gpu_seconds": 0.0}]

        # A window that began between the halves counts from the value each series had then.
        window = f"{round(time.time() - second_half_began) + 1}s"
        second_half = {u.namespace: (u.images_stored, u.image_bytes, u.exports)
                       for u in usage_from_prometheus.read(prometheus.url, window, None, False)
                       if u.namespace in TEAMS}
        assert second_half == {"team-p1": (1, sizes[3], 1), "team-p2": (1, sizes[5], 0)}
