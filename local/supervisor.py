"""The local platform: S3, MLflow, Triton and the local controller on one machine, state in one data folder.

`up` starts what is not running yet and waits until each answers its health check; `down` stops each by its
own pid; `status` tells healthy, unhealthy (running, not answering) and crashed (pid gone) apart. The state file
(platform.json) is what lets a later `kubevision` process find the services that an earlier one started.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from pydantic import BaseModel, SecretStr

from kubevision.core.settings import LocalSettings, MLflowSettings, S3Settings, TritonSettings
from kubevision.core.storage import ObjectStore
from kubevision.local import api_keys, memory, process, services
from kubevision.local.private import private_folder, write_private
from kubevision.local.services import Credentials, ServiceSpec

MLFLOW_BUCKET = "mlflow"
SERVICES = ("s3", "mlflow", "triton", "controller", "gateway")
S3_CLIENTS = ("mlflow", "triton", "gateway")  # they read S3's address once, when they start
DEFAULT_NAMESPACE = "default"


class ServiceRecord(BaseModel):
    name: str
    pid: int
    identity: str | None = None  # tells this process from a later one with the same pid (process.identity)
    log: Path
    health_url: str
    ports: dict[str, int]
    endpoints: dict[str, str]
    s3_port: int | None = None  # for S3_CLIENTS: the S3 port it was started against


class ServiceStatus(BaseModel):
    name: str
    state: str  # healthy | unhealthy | crashed | stopped
    pid: int | None = None
    endpoints: dict[str, str] = {}
    detail: str = ""
    memory_bytes: int | None = None  # resident, over the service's process tree


class PlatformState(BaseModel):
    access_key: str
    secret_key: str
    s3_port: int
    services: dict[str, ServiceRecord] = {}


class LocalPlatform:
    def __init__(self, settings: LocalSettings | None = None):
        self.settings = settings or LocalSettings()
        self.data_dir = private_folder(self.settings.data_dir.resolve())
        self.state_path = self.data_dir / "platform.json"
        self.trainings_dir = self.data_dir / "trainings"  # the local controller's trainer processes, beside its store
        self.logs = self.data_dir / "logs"
        self._children: dict[str, object] = {}  # Popen objects, kept so that they are reaped

    # ------------------------------------------------------------------------------------------------------------
    # state

    def load_state(self) -> PlatformState | None:
        if not self.state_path.is_file():
            return None
        return PlatformState.model_validate_json(self.state_path.read_text())

    def _save_state(self, state: PlatformState) -> None:
        write_private(self.state_path, state.model_dump_json(indent=2))  # it holds the S3 secret key

    def _credentials(self, state: PlatformState | None) -> Credentials:
        if state:
            return Credentials(state.access_key, state.secret_key)
        return Credentials("kv" + secrets.token_hex(8), secrets.token_urlsafe(30))

    # ------------------------------------------------------------------------------------------------------------
    # settings that other components use to reach the services

    def s3_settings(self) -> S3Settings:
        state = self._require_state()
        return S3Settings(
            endpoint=f"127.0.0.1:{state.s3_port}", access_key=state.access_key,
            secret_key=SecretStr(state.secret_key), secure=False,
        )

    def mlflow_settings(self) -> MLflowSettings:
        return MLflowSettings(tracking_uri=self._require_state().services["mlflow"].endpoints["mlflow"])

    def triton_settings(self) -> TritonSettings:
        endpoints = self._require_state().services["triton"].endpoints
        return TritonSettings(http_url=endpoints["http"].removeprefix("http://"), grpc_url=endpoints["grpc"])

    def _require_state(self) -> PlatformState:
        state = self.load_state()
        if state is None:
            raise process.ServiceError(f"the local platform is not up (no {self.state_path}); run: kubevision local up")
        return state

    # ------------------------------------------------------------------------------------------------------------
    # lifecycle

    def up(self) -> list[ServiceStatus]:
        """Start every service that is not running: one that crashed on the ports it had, while they are free, so
        that whoever knew its address still reaches it. A service that reaches S3 at an address S3 no longer has
        (S3 came back on another port) is restarted. Stop what this call started if one of them fails."""
        old = self.load_state()
        running = {s.name for s in self.status() if s.state in {"healthy", "unhealthy"}}
        had = old.services if old else {}

        def port(name: str, key: str, requested: int, what: str) -> int:
            """The port the service had, unless another one is asked for now or it is taken."""
            previous = had[name].ports.get(key) if name in had else None
            if previous and requested in (0, previous) and process.port_is_free(previous):
                return previous
            return process.pick_port(requested, what)

        credentials = self._credentials(old)
        s3_port = old.s3_port if old and "s3" in running else port("s3", "s3.port", self.settings.s3_port, "S3")
        state = PlatformState(access_key=credentials.access_key, secret_key=credentials.secret_key, s3_port=s3_port)
        state.services = {name: record for name, record in had.items() if name in running}
        for name in S3_CLIENTS:
            record = state.services.get(name)
            if record is not None and record.s3_port not in (None, s3_port):
                process.stop(record.pid, record.identity)
                del state.services[name]
                running.discard(name)
        started: list[str] = []
        try:
            if "s3" not in running:
                ports = {flag: port("s3", flag, 0, "S3") for flag in services.SEAWEEDFS_PORT_FLAGS}
                ports["s3.port"] = s3_port
                self._start(state, services.seaweedfs(self.data_dir, credentials, ports), started)
            self._ensure_buckets(state)
            pending = []
            if "mlflow" not in running:
                spec = services.mlflow(self.data_dir, credentials, port("mlflow", "http", self.settings.mlflow_port,
                                                                         "MLflow"), s3_port, MLFLOW_BUCKET)
                pending.append(self._spawn(state, spec, started))
            if "triton" not in running:
                ports = {
                    "http": port("triton", "http", self.settings.triton_http_port, "Triton HTTP"),
                    "grpc": port("triton", "grpc", self.settings.triton_grpc_port, "Triton gRPC"),
                    "metrics": port("triton", "metrics", self.settings.triton_metrics_port, "Triton metrics"),
                }
                pending.append(self._spawn(state, self._triton_spec(state, ports), started))
            api_keys.ensure(self.data_dir, DEFAULT_NAMESPACE)
            if "gateway" not in running:  # it needs S3 only: Triton is called per request
                spec = services.gateway(self.data_dir, port("gateway", "http", self.settings.gateway_port, "gateway"),
                                        port("gateway", "metrics", 0, "gateway metrics"))
                pending.append(self._spawn(state, spec, started))
            for spec in pending:  # MLflow, Triton and the gateway start side by side; each takes a while
                self._wait(state, spec)
            if "controller" not in running:  # last: it needs the others
                spec = services.controller(self.data_dir, port("controller", "metrics", 0, "controller"))
                self._start(state, spec, started)
        except BaseException:
            for name in started:
                process.stop(state.services[name].pid, state.services[name].identity)
                state.services.pop(name)
            self._save_state(state)
            raise
        return self.status()

    def _spawn(self, state: PlatformState, spec: ServiceSpec, started: list[str]) -> ServiceSpec:
        log = self.logs / f"{spec.name}.log"
        child = process.spawn(spec.command, log, {**services.base_env(), **spec.env}, cwd=self.data_dir)
        self._children[spec.name] = child
        state.services[spec.name] = ServiceRecord(
            name=spec.name, pid=child.pid, identity=process.identity(child.pid), log=log,
            health_url=spec.health_url, ports=spec.ports, endpoints=spec.endpoints,
            s3_port=state.s3_port if spec.name in S3_CLIENTS else None,
        )
        started.append(spec.name)
        self._save_state(state)
        return spec

    def _wait(self, state: PlatformState, spec: ServiceSpec) -> None:
        record = state.services[spec.name]
        process.wait_healthy(spec.name, record.pid, spec.healthy, record.log, self.settings.start_timeout_seconds)

    def _start(self, state: PlatformState, spec: ServiceSpec, started: list[str]) -> None:
        self._wait(state, self._spawn(state, spec, started))

    def _ensure_buckets(self, state: PlatformState) -> None:
        self._save_state(state)
        store = ObjectStore(self.s3_settings())
        deadline = time.monotonic() + 30
        while True:  # the S3 gateway answers health checks a moment before its filer takes writes
            try:
                for bucket in (MLFLOW_BUCKET, store.settings.models_bucket):
                    store.ensure_bucket(bucket)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def restart_triton(self) -> None:
        """Start Triton again on its ports, over the model repositories now in S3: Triton reads its list of
        repositories only when it starts, so a new project's repository needs this."""
        state = self._require_state()
        old = state.services.pop("triton")
        process.stop(old.pid, old.identity)
        started: list[str] = []
        self._start(state, self._triton_spec(state, old.ports), started)

    def _triton_spec(self, state: PlatformState, ports: dict[str, int]) -> ServiceSpec:
        credentials = Credentials(state.access_key, state.secret_key)
        return services.triton(self.data_dir, credentials, state.s3_port, ports, self._model_repositories(state))

    def _model_repositories(self, state: PlatformState) -> list[str]:
        """Every project's Triton model repository present in S3 (triton/<namespace>/<project>/)."""
        s3 = self.s3_settings()
        store = ObjectStore(s3)
        projects = sorted({"/".join(key.split("/")[:3]) for key in store.keys(s3.models_bucket, "triton/")})
        host = f"127.0.0.1:{state.s3_port}"
        return [f"s3://{host}/{s3.models_bucket}/{project}" for project in projects if project.count("/") == 2]

    def down(self) -> list[str]:
        """Stop every running training, then every recorded service, by its pid. Returns what was stopped: the
        services' names, and "training <name>" for each training (its Iteration fails when the platform comes back)."""
        stopped = []
        for folder in sorted(self.trainings_dir.glob("*/")):  # first: a trainer outliving S3 and MLflow only fails
            if (folder / "pid").is_file() and process.is_running(*process.recorded(folder)):
                process.stop(*process.recorded(folder))
                stopped.append(f"training {folder.name}")
        state = self.load_state()
        if state is None:
            return stopped
        for name in reversed([n for n in SERVICES if n in state.services]):  # S3 last: the others write to it
            record = state.services[name]
            if process.is_running(record.pid, record.identity):
                process.stop(record.pid, record.identity)
                stopped.append(name)
        state.services = {}
        self._save_state(state)
        return stopped

    def status(self) -> list[ServiceStatus]:
        state = self.load_state()
        result = []
        for name in SERVICES:
            record = state.services.get(name) if state else None
            if record is None:
                result.append(ServiceStatus(name=name, state="stopped"))
            elif not process.is_running(record.pid, record.identity):
                result.append(ServiceStatus(
                    name=name, state="crashed", pid=record.pid, endpoints=record.endpoints,
                    detail=f"pid {record.pid} is gone (or no longer ours); last lines of {record.log}:\n"
                           f"{process.log_tail(record.log)}",
                ))
            else:
                detail = "" if services.http_ok(record.health_url) else f"{record.health_url} does not answer 200"
                if record.s3_port not in (None, state.s3_port):
                    detail = (f"it reaches S3 at port {record.s3_port}, and S3 is at port {state.s3_port} now: run "
                              "kubevision local up to restart it")
                result.append(ServiceStatus(
                    name=name, state="unhealthy" if detail else "healthy", pid=record.pid,
                    endpoints=record.endpoints, detail=detail, memory_bytes=memory.tree_rss_bytes(record.pid),
                ))
        return result
