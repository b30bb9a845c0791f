"""`kubevision train`: one iteration trained in this process, as a training Job does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubevision.cli.common import DataDir, platform


def train(
    request: Annotated[Path, typer.Option(help="TrainingRequest JSON: the project and the iteration to train.")],
    local: Annotated[bool, typer.Option(help="Use the local platform's S3 and MLflow, not the environment's.")] = True,
    data_dir: DataDir = None,
) -> None:
    """Train one iteration, as a training Job does; exit 2 for a dataset that cannot train, 1 for a crash."""
    from kubevision.trainer.entrypoint import run  # the trainer extras are only needed here

    s3 = mlflow = None
    if local:
        local_platform = platform(data_dir)
        s3, mlflow = local_platform.s3_settings(), local_platform.mlflow_settings()
    raise typer.Exit(int(run(request, s3, mlflow)))
