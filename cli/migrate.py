"""`kubevision migrate`: projects of a Custom Vision account (or any service speaking its training API v3.3) brought
over to a KubeVision namespace through its training API (kubevision.core.migration does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubevision.cli.common import fail


def migrate(
    source_endpoint: Annotated[str, typer.Option(help="The source's training endpoint, as Azure's portal shows it.")],
    source_key: Annotated[str, typer.Option(envvar="CUSTOMVISION_TRAINING_KEY", show_default=False,
                                            help="The source's training key (better from the environment).")],
    target_endpoint: Annotated[str, typer.Option(help="The KubeVision gateway of the target namespace.")] = "",
    target_key: Annotated[str, typer.Option(envvar="KUBEVISION_TRAINING_KEY", show_default=False,
                                            help="The target namespace's training key.")] = "",
    project: Annotated[list[str] | None, typer.Option("--project", help="A source project id (repeatable).")] = None,
    all_projects: Annotated[bool, typer.Option("--all", help="Every project of the source.")] = False,
    list_only: Annotated[bool, typer.Option("--list", help="Show what would move, and move nothing.")] = False,
    resume_folder: Annotated[Path | None, typer.Option(
        help="Where the record of moved images is kept between runs [default: $XDG_CACHE_HOME/kubevision/migrate]",
        show_default=False)] = None,
    manifests: Annotated[Path | None, typer.Option(
        help="Write each migrated project's CustomVisionProject manifest to this folder, to keep in Git.",
        show_default=False)] = None,
) -> None:
    """Bring projects over: settings, tags, every image at its original resolution with its tags, regions and
    metadata. A rerun resumes an interrupted migration and adds what changed at the source since."""
    from kubevision.cli.progress import progress
    from kubevision.core.migration import source as read
    from kubevision.core.migration.client import MigrationError, TrainingApi
    from kubevision.core.migration.copy import migrate_project
    from kubevision.core.migration.manifests import write_manifest
    from kubevision.core.migration.resume import default_folder

    if bool(project) == all_projects:
        raise fail("name the projects to move with --project ID (repeatable), or move them all with --all")
    try:
        with TrainingApi(source_endpoint, source_key, "source") as source:
            chosen = [read.read_project(source, pid) for pid in (project or read.project_ids(source))]
            if list_only:
                for item in chosen:
                    print_project(source, item)
                return
            if not target_endpoint:
                raise fail("--target-endpoint is needed to migrate (--list needs none)")
            failed = 0
            with TrainingApi(target_endpoint, target_key, "target") as target:
                for item in chosen:
                    with progress(f"{item.name}", item.images, "images") as advance:
                        outcome = migrate_project(source, target, item, advance, resume_folder or default_folder())
                    typer.echo(f"{item.name}: domain {outcome.source_domain} -> {outcome.domain.domain.value}; "
                               f"project {outcome.target_id} {'created' if outcome.created else 'found again'}; "
                               f"{outcome.tags_added} tags added; images: {outcome.added} added, "
                               f"{outcome.present} already there, {outcome.relabelled} relabelled, "
                               f"{len(outcome.failures)} failed")
                    for failure in outcome.failures:
                        typer.secho(f"failed {item.name} image {failure.image}: {failure.reason}", err=True,
                                    fg=typer.colors.RED)
                    failed += len(outcome.failures)
                    if manifests:
                        typer.echo(f"{item.name}: wrote {write_manifest(target, outcome.target_id, manifests)}")
    except MigrationError as error:
        raise fail(str(error)) from error
    if failed:
        raise fail(f"{failed} images did not move; run the same command again to retry them (the rest is kept)")


def print_project(source, item) -> None:
    from kubevision.core.migration import source as read
    from kubevision.core.migration.domains import nearest

    name, domain = nearest(source, item.domain_id)
    regions = sum(len(i.regions) for i in read.images(source, item.id)) if domain.type.value == "ObjectDetection" \
        else 0
    kind = domain.type.value + (f" ({item.classification_type})" if item.classification_type else "")
    published = [f"{i.name} as {i.publish_name}" for i in item.iterations if i.publish_name]
    typer.echo(f"{item.id}  {item.name}\n  type {kind}, domain {name} -> {domain.domain.value}\n"
               f"  images {item.images} ({item.tagged_images} tagged, {item.untagged_images} untagged), "
               f"tags {len(item.tags)}, regions {regions}\n"
               f"  iterations {len(item.iterations)}, published: {', '.join(published) or 'none'}")
