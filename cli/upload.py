"""`kubevision upload`: a folder of tagged images into a project, through local mode's label store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubevision.cli.common import DataDir, fail, platform, read_manifests, store


def upload(
    project_file: Annotated[Path, typer.Option("--filename", "-f", help="The CustomVisionProject manifest.")],
    folder: Annotated[Path, typer.Argument(help="One subfolder per tag, holding that tag's images.")],
    data_dir: DataDir = None,
) -> None:
    """Add a folder of tagged images to a project through local mode's label store, then export the project's
    manifest. Each file is checked first (format, size, decodable); a refused file is listed with its reason and not
    stored, and the command then exits 1. An image stored already (same bytes) is skipped. The project is applied
    first if it is not yet."""
    from kubevision.cli.progress import progress
    from kubevision.core import validation
    from kubevision.core.labelstore.errors import StoreError
    from kubevision.core.labelstore.upload import tagged_files, upload_folders
    from kubevision.core.storage import ObjectStore, StorageUnavailable, retrying

    documents = [d for _, d in read_manifests([project_file]) if d.get("kind") == "CustomVisionProject"]
    if len(documents) != 1:
        raise fail(f"{project_file} holds {len(documents)} CustomVisionProjects; give the manifest of the one "
                   "project to add the images to")
    tag_folders = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    total = len(tagged_files(tag_folders))
    if not total:
        raise fail(f"{folder} holds no tag folders with files; put each tag's images in {folder}/<tag>/")
    local_platform = platform(data_dir)
    s3 = local_platform.s3_settings()  # fails first when the platform is not up: nothing is applied then
    resources = store(data_dir)
    meta = documents[0].get("metadata") or {}
    body = resources.get("CustomVisionProject", meta.get("namespace", "default"), meta.get("name", ""))
    if body is None:
        try:
            body, action = resources.apply(documents[0])
        except validation.InvalidManifest as error:
            raise fail(f"{project_file}: {error}") from error
        typer.echo(f"customvisionproject.kubevision.io/{body['metadata']['name']} {action}")
    project = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
    objects = ObjectStore(s3)
    try:
        retrying(lambda: objects.ensure_bucket(body["spec"]["dataset"]["bucket"]), "the dataset's bucket")
    except StorageUnavailable as error:
        raise fail(f"project {project}: S3 is not answering ({error}); check it with: kubevision local status") \
            from error
    try:
        with progress("uploading", total, "files") as advance:
            report = upload_folders(local_platform.data_dir, objects, body, tag_folders, advance)
    except StoreError as error:
        raise fail(f"project {project}: {error.message}") from error
    location = f"s3://{body['spec']['dataset']['bucket']}/{body['spec']['dataset'].get('prefix', '')}"
    typer.echo(f"{report.added} added, {report.present} already present: project {project} ({location})")
    for refused in report.refused:
        typer.secho(f"refused {folder / refused.file}: {refused.reason}", err=True, fg=typer.colors.RED)
    if report.refused:
        raise fail(f"{len(report.refused)} of {total} files refused, not stored in project {project}; fix or "
                   "remove them and run the same upload again (images stored already are skipped)")
