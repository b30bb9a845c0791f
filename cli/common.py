"""What the command groups share: the error line, the common options, and the local platform and store they open."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[
    Path | None, typer.Option(help="Folder of local state and logs [default: $KUBEVISION_LOCAL_DATA_DIR or "
                                   "~/.local/share/kubevision].")
]
Manifests = Annotated[
    list[Path], typer.Option("--filename", "-f", help="Manifest files (YAML, several documents).")
]


def fail(message: str) -> typer.Exit:
    """Print one clear line (plus detail lines if the message has them) and exit 1."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(1)


def read_manifests(files: list[Path]) -> list[tuple[Path, dict]]:
    import yaml

    documents = []
    for path in files:
        try:
            documents += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
        except (OSError, yaml.YAMLError) as error:
            raise fail(f"{path}: {error}") from error
    return documents


def platform(data_dir: Path | None, **ports: int | None):
    from kubevision.core.settings import LocalSettings
    from kubevision.local.supervisor import LocalPlatform  # the local extras are only needed here

    overrides = {k: v for k, v in {"data_dir": data_dir, **ports}.items() if v is not None}
    return LocalPlatform(LocalSettings(**overrides))


def store(data_dir: Path | None):
    from kubevision.local.store import LocalStore

    return LocalStore(platform(data_dir).data_dir / "resources.db")
