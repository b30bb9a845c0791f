"""`kubevision crds` and `kubevision validate`: the CRDs generated from the API models, and manifests checked
against them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubevision.cli.common import Manifests, fail


def crds(
    output_dir: Annotated[Path, typer.Option(help="Folder to write the CRD YAML files to.")] = Path("crds"),
    check: Annotated[bool, typer.Option(help="Write nothing; exit 1 if the folder differs from the models.")] = False,
) -> None:
    """Generate the CustomResourceDefinitions from the API models."""
    from kubevision.core import crd

    if check:
        stale = crd.drifted(output_dir)
        if stale:
            raise fail(f"{', '.join(stale)} in {output_dir} differ from the models; run: kubevision crds")
        typer.echo(f"{output_dir} is up to date")
        return
    for path in crd.write_all(output_dir):
        typer.echo(f"wrote {path}")


def validate(files: Manifests) -> None:
    """Check manifests against the CRDs as the Kubernetes API server would (schema, defaults and CEL rules)."""
    import yaml

    from kubevision.core import validation

    invalid = 0
    for path in files:
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except (OSError, yaml.YAMLError) as error:
            raise fail(f"{path}: {error}") from error
        for document in documents:
            try:
                validation.admit(document)
                typer.echo(f"{path}: {document['kind']} {document['metadata']['name']} is valid")
            except validation.InvalidManifest as error:
                invalid += 1
                typer.secho(f"{path}: {error}", err=True, fg=typer.colors.RED)
    if invalid:
        raise typer.Exit(1)
