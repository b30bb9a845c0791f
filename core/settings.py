"""Settings of every component, read from the environment (prefix KUBEVISION_) or passed explicitly.

One class per concern. An environment variable is the field name in upper case under the class's prefix, e.g.
KUBEVISION_S3_ENDPOINT for S3Settings.endpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from kubevision.core.images import MAX_PIXELS, MAX_PREDICTION_BYTES


class S3Settings(BaseSettings):
    """Where images, manifests and model repositories are kept."""

    model_config = SettingsConfigDict(env_prefix="KUBEVISION_S3_")

    endpoint: str = Field(default="127.0.0.1:8333", description="host:port of the S3 API, no scheme.")
    access_key: str = Field(default="", description="S3 access key id.")
    secret_key: SecretStr = Field(default=SecretStr(""), description="S3 secret key.")
    secure: bool = Field(default=False, description="Use HTTPS.")
    region: str = Field(default="us-east-1", description="S3 region (SeaweedFS and MinIO accept any).")
    models_bucket: str = Field(default="kubevision-models", description="Bucket of the Triton model repositories.")
    timeout_seconds: float = Field(
        default=30, gt=0, description="Longest wait for S3 to connect or answer, before the request is retried."
    )

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"


class MLflowSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBEVISION_MLFLOW_")

    tracking_uri: str = Field(default="http://127.0.0.1:5000", description="MLflow tracking server URL.")


class TritonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBEVISION_TRITON_")

    http_url: str = Field(default="127.0.0.1:8000", description="host:port of Triton's HTTP/REST endpoint.")
    grpc_url: str = Field(default="127.0.0.1:8001", description="host:port of Triton's gRPC endpoint.")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "kubevision"


class LimitsSettings(BaseSettings):
    """Where the gateway and the operator read each namespace's limits (kubevision.core.limits)."""

    model_config = SettingsConfigDict(env_prefix="KUBEVISION_LIMITS_")

    file: Path | None = Field(default=None, description="YAML file of the limits (the chart mounts its ConfigMap); "
                                                        "none: Azure's S0 limits for every namespace. Local mode "
                                                        "reads limits.yaml in its data folder.")


class LocalSettings(BaseSettings):
    """Local mode: every service on one machine, state under one folder. A port of 0 means any free port."""

    model_config = SettingsConfigDict(env_prefix="KUBEVISION_LOCAL_")

    data_dir: Path = Field(default_factory=default_data_dir, description="Folder of all local state and logs.")
    s3_port: int = Field(default=8333, ge=0, le=65535, description="S3 API port of SeaweedFS.")
    mlflow_port: int = Field(default=5000, ge=0, le=65535, description="MLflow tracking server port.")
    triton_http_port: int = Field(default=8000, ge=0, le=65535, description="Triton HTTP port.")
    triton_grpc_port: int = Field(default=8001, ge=0, le=65535, description="Triton gRPC port.")
    triton_metrics_port: int = Field(default=8002, ge=0, le=65535, description="Triton Prometheus metrics port.")
    gateway_port: int = Field(default=8080, ge=0, le=65535, description="Port of the Custom Vision API gateway.")
    start_timeout_seconds: float = Field(default=180, gt=0, description="How long a service may take to be healthy.")


class OperatorSettings(BaseSettings):
    """What the operator puts into the objects it creates. Credentials are only ever Secret references; S3 is the
    operator's own (S3Settings), seen the same from the pods it creates."""

    model_config = SettingsConfigDict(env_prefix="KUBEVISION_OPERATOR_")

    namespaces: list[str] = Field(default_factory=list, description="Namespaces to watch; empty means all.")
    trainer_image: str = Field(default="ghcr.io/kubevision/trainer:0.1.0", description="Image of training Jobs.")
    triton_image: str = Field(default="nvcr.io/nvidia/tritonserver:24.10-py3", description="Triton serving image.")
    s3_secret_name: str = Field(
        default="kubevision-s3", description="Secret (in each watched namespace) with keys accessKey and secretKey."
    )
    mlflow_tracking_uri: str = Field(default="http://mlflow.kubevision.svc:5000", description="MLflow, seen from pods.")
    mlflow_timeout_seconds: int = Field(
        default=10, ge=1, description="Longest wait for an answer from MLflow before a reconcile reports it away."
    )
    training_backoff_limit: int = Field(default=2, ge=0, description="Retries of a crashed trainer pod.")
    training_cpu: str = Field(default="2", description="CPU request of a training pod.")
    training_memory: str = Field(default="6Gi", description="Memory request and limit of a training pod.")
    triton_cpu: str = Field(default="1", description="CPU request of a Triton pod.")
    triton_memory: str = Field(default="2Gi", description="Memory request and limit of a Triton pod.")
    triton_gpus: int = Field(default=0, ge=0, description="GPUs of each Triton pod.")
    gpu_tolerations: bool = Field(
        default=True, description="Tolerate the nvidia.com/gpu taint on pods that request GPUs."
    )
    metrics_port: int = Field(default=8080, ge=1, le=65535, description="Port of the operator's Prometheus metrics.")
    kueue_queue_name: str = Field(
        default="", max_length=63, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
        description="Kueue's LocalQueue (in each namespace) that training Jobs go to, created suspended for Kueue to "
        "admit by its ClusterQueue's quota; then the namespace's concurrent-training limit does not apply. Empty: no "
        "Kueue.")
    resync_seconds: float = Field(
        default=600, gt=0, description="Seconds between a resource's reconciles when nothing it watches changed: a "
        "safety net under the watches, jittered by up to a fifth so resources do not all come due at once."
    )

    @classmethod
    def from_file(cls, path: Path | None) -> OperatorSettings:
        """Settings from a YAML file of these fields (a ConfigMap mounted in the operator's pod); the environment
        overrides the file. An unknown key or a wrong value is a ValidationError that names the field."""
        if path is None:
            return cls()
        if not path.is_file():
            raise FileNotFoundError(f"operator config {path} does not exist")

        class FromFile(cls):  # the file as the lowest-priority source
            @classmethod
            def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                           file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
                return init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file=path)

        return FromFile()


class GatewaySettings(BaseSettings):
    """The Custom Vision API gateway. In local mode it reads resources and keys from the local data folder; on a
    cluster it watches CustomVisionProjects, Iterations and each namespace's key Secret."""

    model_config = SettingsConfigDict(env_prefix="KUBEVISION_GATEWAY_")

    mode: Literal["local", "kubernetes"] = Field(default="kubernetes", description="Where resources and keys live.")
    data_dir: Path = Field(default_factory=default_data_dir, description="Local mode: the platform's data folder.")
    host: str = Field(default="0.0.0.0", description="Address to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP port of the API.")
    metrics_port: int = Field(default=9090, ge=0, le=65535,
                              description="Port of the Prometheus metrics, apart from the API's: the API port never "
                                          "serves them, so a network policy can keep them in the cluster. 0: none.")
    namespaces: list[str] = Field(default_factory=list, description="Kubernetes: namespaces served; empty means all.")
    keys_secret_name: str = Field(
        default="kubevision-api-keys",
        description="Kubernetes: the Secret in each namespace with keys predictionKey and trainingKey.",
    )
    max_image_bytes: int = Field(default=MAX_PREDICTION_BYTES, gt=0, description="Largest prediction image (Custom "
                                                                            "Vision's limit is 4 MB).")
    max_image_pixels: int = Field(default=MAX_PIXELS, gt=0, description="Largest width x height decoded.")
    url_timeout_seconds: float = Field(default=10, gt=0, description="Time allowed to fetch an image URL.")
    url_max_redirects: int = Field(default=3, ge=0, description="Redirects followed when fetching an image URL.")
    allow_private_urls: bool = Field(
        default=False,
        description="Let image URLs reach private, loopback and link-local addresses (the cluster's own network, "
                    "cloud metadata endpoints). Off on a cluster; local mode allows loopback only.",
    )
    allow_loopback_urls: bool = Field(default=False, description="Let image URLs reach loopback addresses.")
    triton_timeout_seconds: float = Field(default=30, gt=0, description="Time allowed for one Triton inference.")
    retry_after_seconds: int = Field(default=5, ge=1, description="Retry-After sent when Triton is unavailable.")
    store_predictions: bool = Field(
        default=True, description="Keep images and results of predictions made on routes without /nostore."
    )
    refresh_seconds: float = Field(default=1.0, gt=0, description="Local mode: how often resources are re-read.")
    database_url: str = Field(
        default="", description="The label store's database, a SQLAlchemy URL (on a cluster: "
                                "postgresql+psycopg://user:password@host:5432/kubevision). Empty: local mode's SQLite "
                                "file in the data folder.")
    datasets_bucket: str = Field(default="kubevision-datasets",
                                 description="Bucket of the datasets of projects created through the training API.")
    export_quiet_seconds: float = Field(default=2, ge=0, description="A project's manifest is exported once its "
                                                                     "labels have been quiet this long...")
    export_max_wait_seconds: float = Field(default=30, gt=0, description="...or have kept changing this long.")
    link_seconds: int = Field(default=3600, gt=0, description="How long image and model download links work.")
    import_token_seconds: int = Field(default=86400, gt=0, description="How long a project export's import token "
                                      "works (a day); it works in one namespace only, and never once its project is "
                                      "deleted.")
    public_url: str = Field(default="", description="The gateway's URL as its callers reach it, for download links; "
                                                    "empty: the URL a request came to.")
    publish_wait_seconds: float = Field(default=120, ge=0, description="How long publish_iteration waits for the "
                                                                       "model to be served before it answers.")
    max_json_body_bytes: int = Field(default=1024 * 1024, gt=0, description="Largest body of a JSON route; an image "
                                                                          "route's limit follows its images'.")
    max_files_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0, description="Largest body of "
                                      "create_images_from_files (base64 images in JSON; bigger batches go multipart).")
    header_timeout_seconds: float = Field(default=10, gt=0, description="Time a client has to send a request's "
                                                                        "headers, from its connection or last answer.")
    body_idle_seconds: float = Field(default=10, gt=0, description="Longest pause allowed inside a request body.")
    body_timeout_seconds: float = Field(default=300, gt=0, description="Time allowed for a whole request body.")
    usage_write_seconds: float = Field(default=10, gt=0, description="How often the usage counted in memory is "
                                       "written to the label store's usage ledger (a crash loses at most this much).")
