"""Local state of one user: the S3 keys (platform.json, SeaweedFS's identities), the runs (mlflow.db), the images
(the S3 volume). Readable by its owner only, from the moment it exists."""

from __future__ import annotations

import os
from pathlib import Path


def private_folder(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # one made before, or by an older version, under a umask that left it open
    return path


def write_private(path: Path, text: str) -> None:
    """Write through a new file created with mode 0600 and renamed over `path`: never readable by others, not even
    while it is written, and never half-written for a reader."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)  # left by a process that died mid-write
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(text)
    os.replace(temporary, path)
