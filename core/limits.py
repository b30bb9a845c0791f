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
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from kubevision.core.settings import LimitsSettings


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

    _resolved: dict[str, Limits] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: object) -> None:
        # Each override merged once, when the file is read (a wrong one fails then, naming the field), not on every
        # request that asks for its namespace's limits.
        self._resolved = {namespace: Limits.model_validate(self.defaults.model_dump() | override)
                          for namespace, override in self.namespaces.items() if override}

    def for_namespace(self, namespace: str) -> Limits:
        return self._resolved.get(namespace, self.defaults)


class LimitsSource:
    """The limits in a YAML file, read again when its modification time changes (a mounted ConfigMap is replaced,
    not edited). No file (yet, or any more): the defaults. A file that stops parsing keeps the last good limits, so
    a typo in an update never lifts every limit at once; `error` says what is wrong with it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.error = ""
        self._lock = threading.Lock()
        self._seen: float | None = None
        self._limits = LimitsFile()
        if path is not None:
            self._seen = _modified(path)
            if self._seen is not None:
                self._limits = self._read(path)  # a bad file at start is an error, not a silent default

    def current(self) -> LimitsFile:
        if self.path is None:
            return self._limits
        with self._lock:
            try:
                modified = _modified(self.path)  # one stat a call: the gateway asks on every request
                if modified != self._seen:
                    self._limits = self._read(self.path) if modified is not None else LimitsFile()
                    self._seen = modified
                    self.error = ""
            except (OSError, ValueError, yaml.YAMLError) as error:
                self.error = f"{self.path}: {error}"
            return self._limits

    def for_namespace(self, namespace: str) -> Limits:
        return self.current().for_namespace(namespace)

    @staticmethod
    def _read(path: Path) -> LimitsFile:
        return LimitsFile.model_validate(yaml.safe_load(path.read_text()) or {})


def _modified(path: Path) -> float | None:
    """The file's modification time; None when there is no file."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


LOCAL_FILE = "limits.yaml"


def limits_source(local_data_dir: Path | None = None) -> LimitsSource:
    """The limits a component reads: the file LimitsSettings names (KUBEVISION_LIMITS_FILE: the chart's ConfigMap),
    else local mode's `limits.yaml` in its data folder, read once it exists (one written while the platform runs
    applies too). Neither: Azure's S0 limits for every namespace."""
    configured = LimitsSettings().file
    if configured is None and local_data_dir is not None:
        configured = local_data_dir / LOCAL_FILE
    return LimitsSource(configured)
