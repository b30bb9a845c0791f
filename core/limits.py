"""How much each namespace (a team) may use: the platform team's limits, with Azure Custom Vision's S0 tier as the
defaults, and per-namespace overrides.

The platform team writes them once (the chart's `limits` value, rendered into a ConfigMap of the release namespace,
never a tenant's), and the gateway and the operator read the same file. A tenant cannot raise its own limits: the
file lives outside its namespace. The file is read again when it changes, so a new limit applies without a restart.
"""

from __future__ import annotations

import threading
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from kubevision.core.settings import LimitsSettings

LOCAL_FILE = "limits.yaml"  # local mode's limits file, in its data folder


class Limits(BaseModel):
    """One namespace's limits. None means no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    projects: int | None = Field(default=100, ge=0, description="Projects in the namespace.")
    images_per_project: int | None = Field(default=100_000, ge=0, description="Training images in one project.")
    tags_per_project: int | None = Field(default=500, ge=0, description="Tags in one project.")
    iterations_per_project: int | None = Field(default=20, ge=0, description="Iterations kept in one project.")
    concurrent_trainings: int | None = Field(
        default=2, ge=0, description="Trainings of the namespace that run at once; more wait as Queued.")
    advanced_budget_hours: float | None = Field(
        default=None, ge=0, description="Hours of Advanced training the namespace may reserve in a calendar month.")
    stored_predictions_per_second: float | None = Field(
        default=10, gt=0, description="Prediction calls a second, per key, that store their image.")
    predictions_per_second: float | None = Field(
        default=20, gt=0, description="Prediction calls a second, per key, on /nostore routes.")
    train_calls_per_second: float | None = Field(default=10, gt=0, description="train_project calls a second, per "
                                                                               "key.")
    training_calls_per_second: float | None = Field(
        default=10, gt=0, description="Other training API calls a second, per key.")


class LimitsFile(BaseModel):
    """The file's shape: limits for every namespace, and the fields a namespace overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: Limits = Field(default_factory=Limits)
    namespaces: dict[str, dict[str, int | float | None]] = Field(default_factory=dict)

    def model_post_init(self, _context: object) -> None:
        for namespace in self.namespaces:
            self.for_namespace(namespace)  # a wrong override fails when the file is read, naming the field

    def for_namespace(self, namespace: str) -> Limits:
        override = self.namespaces.get(namespace)
        if not override:
            return self.defaults
        return Limits.model_validate(self.defaults.model_dump() | override)


class LimitsSource:
    """The limits in a YAML file, read again when its modification time changes (a mounted ConfigMap is replaced,
    not edited). No file: the defaults. A file that stops parsing keeps the last good limits, so a typo in an
    update never lifts every limit at once; `error` says what is wrong with it."""

    def __init__(self, path: Path | None = None, missing_ok: bool = False) -> None:
        self.path = path
        self.missing_ok = missing_ok  # local mode: no file (yet) is the defaults, and a file written later applies
        self.error = ""
        self._lock = threading.Lock()
        self._seen: float | None = None
        self._limits = LimitsFile()
        if path is not None and not (missing_ok and not path.exists()):
            self._limits = self._read(path)  # a bad file at start is an error, not a silent default
            self._seen = path.stat().st_mtime

    def current(self) -> LimitsFile:
        if self.path is None:
            return self._limits
        with self._lock:
            try:
                modified = self._modified()
                if modified != self._seen:
                    self._seen = modified
                    self._limits = self._read(self.path) if modified is not None else LimitsFile()
                    self.error = ""
            except (OSError, ValueError, yaml.YAMLError) as error:
                self.error = f"{self.path}: {error}"
            return self._limits

    def _modified(self) -> float | None:
        """The file's modification time; None when it is missing and may be."""
        try:
            return self.path.stat().st_mtime
        except FileNotFoundError:
            if self.missing_ok:
                return None
            raise

    def for_namespace(self, namespace: str) -> Limits:
        return self.current().for_namespace(namespace)

    @staticmethod
    def _read(path: Path) -> LimitsFile:
        return LimitsFile.model_validate(yaml.safe_load(path.read_text()) or {})


def local_limits(data_dir: Path) -> LimitsSource:
    """Local mode's limits: the file KUBEVISION_LIMITS_FILE names, or else limits.yaml in the data folder, followed
    as it is written, changed or removed (no file: the defaults)."""
    configured = LimitsSettings().file
    if configured is not None:
        return LimitsSource(configured)
    return LimitsSource(data_dir / LOCAL_FILE, missing_ok=True)
