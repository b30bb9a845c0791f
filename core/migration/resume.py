"""Which target image each source image became, kept on the migrating machine between runs, so that a rerun does
not download an image it moved already (a source image's bytes never change, so its id names them). A lost or
foreign record only costs time: an image the record does not place in the target is downloaded and matched by
content, as on a first run."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def default_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kubevision" / "migrate"


class ResumeRecord:
    """One source project and its target project: {source image id: target image id}."""

    def __init__(self, path: Path | None):
        self.path = path
        self._targets: dict[str, str] = {}
        if path is not None and path.is_file():
            try:
                loaded = json.loads(path.read_text())
            except (OSError, ValueError):
                loaded = {}  # unreadable: the run matches by content instead
            if isinstance(loaded, dict):
                self._targets = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, str)}

    @classmethod
    def of(cls, folder: Path, source_endpoint: str, source_project: str, target_endpoint: str,
           target_project: str) -> ResumeRecord:
        """The record of one pair of projects: named by a hash, so the file name says nothing of either side."""
        pair = "\n".join((source_endpoint, source_project, target_endpoint, target_project))
        return cls(folder / f"{hashlib.sha256(pair.encode()).hexdigest()[:32]}.json")

    def target_of(self, source_image: str) -> str | None:
        return self._targets.get(source_image)

    def remember(self, source_image: str, target_image: str) -> None:
        self._targets[source_image] = target_image

    def save(self) -> None:
        """Written whole to a new file, then renamed: an interrupted save leaves the last record intact."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(self._targets))
        partial.replace(self.path)
