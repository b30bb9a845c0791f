"""A real Prometheus server for tests, from Debian's `prometheus` package (`make test` installs it): its own
temporary storage folder, a free port, and a scrape every second of the metrics ports it is given."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from kubevision.local.process import free_port

BINARY = Path("/usr/bin/prometheus")
SCRAPE_SECONDS = 1
JOB = "kubevision"


class PrometheusServer:
    def __init__(self, metrics_ports: list[int]) -> None:
        if not BINARY.exists():
            raise RuntimeError("Prometheus is not installed: make test installs Debian's prometheus package")
        self.folder = Path(tempfile.mkdtemp(prefix="kubevision-prometheus-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets = [f"127.0.0.1:{port}" for port in metrics_ports]
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> PrometheusServer:
        config = self.folder / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"},
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": self.targets}]}]}))
        with open(self.folder / "prometheus.log", "wb") as log:
            self._process = subprocess.Popen(
                [str(BINARY), f"--config.file={config}", f"--storage.tsdb.path={self.folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Prometheus did not become ready: {self.log()}")
            time.sleep(0.1)
        return self

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        path = self.folder / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def query(self, promql: str) -> list[dict]:
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        if body.get("status") != "success":
            raise RuntimeError(f"{promql}: {body}")
        return body["data"]["result"]

    def wait_for_scrape(self, timeout: float = 30) -> None:
        """Returns once every target has been scraped, successfully, after this call began: what the targets count
        now is in Prometheus."""
        since = time.time()
        deadline = time.monotonic() + timeout
        while True:
            # timestamp() of a bare selector is the time of each target's last scrape (of an expression, it is now)
            scraped = self.query(f'timestamp(up{{job="{JOB}"}})')
            up = self.query(f'up{{job="{JOB}"}} == 1')
            if len(up) == len(scraped) == len(self.targets) and all(float(s["value"][1]) >= since for s in scraped):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Prometheus did not scrape {self.targets} in {timeout}s: {self.log()}")
            time.sleep(SCRAPE_SECONDS / 4)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
