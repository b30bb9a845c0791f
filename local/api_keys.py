"""Local mode's API keys: one Prediction-Key and one Training-Key a namespace, kept in the data folder in a file
only its owner can read (created 0600, never widened)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from kubevision.local.private import private_folder, write_private

FILE_NAME = "api-keys.json"


def keys_path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def load(data_dir: Path) -> dict[str, dict[str, str]]:
    """{namespace: {"predictionKey": ..., "trainingKey": ...}}; empty when no key was made yet."""
    path = keys_path(data_dir)
    return json.loads(path.read_text()) if path.is_file() else {}


def ensure(data_dir: Path, namespace: str) -> dict[str, str]:
    """The namespace's keys, made (32 hex characters, as Custom Vision's) if it has none."""
    keys = load(data_dir)
    if namespace not in keys:
        keys[namespace] = {"predictionKey": secrets.token_hex(16), "trainingKey": secrets.token_hex(16)}
        write_private(keys_path(private_folder(data_dir)), json.dumps(keys, indent=2))
    return keys[namespace]
