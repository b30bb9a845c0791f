"""Limits files (core/limits.py) as the platform team writes them, for the gateways that tests start. A real
gateway without one keeps Azure's S0 limits; tests that call the API back to back for other reasons lift the
per-second limits (UNLIMITED_RATES), and the rate limit tests set their own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

UNLIMITED_RATES: dict[str, Any] = {"stored_predictions_per_second": None, "predictions_per_second": None,
                                   "train_calls_per_second": None, "training_calls_per_second": None}


def write_limits(path: Path, defaults: dict[str, Any] | None = None,
                 namespaces: dict[str, dict[str, Any]] | None = None) -> Path:
    return write_limits_text(path, yaml.safe_dump({"defaults": defaults or {}, "namespaces": namespaces or {}}))


def write_limits_text(path: Path, text: str) -> Path:
    """The file, with a modification time of its own: a rewrite within the file system's clock tick is seen too."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))
    return path
