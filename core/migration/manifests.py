"""The CustomVisionProject manifest of each migrated project, written to a folder for teams that keep their platform
in Git and apply it with Argo CD: the target gateway answers it (KubeVision's manifest route), so the file describes
the very resource the migration made, and applying it adopts that project instead of making another."""

from __future__ import annotations

from pathlib import Path

import yaml

from kubevision.core.migration.client import KUBEVISION_PATH, MigrationError, TrainingApi


def write_manifest(target: TrainingApi, project_id: str, folder: Path) -> Path:
    """`folder/<resource name>.yaml`, replaced whole if it exists (a rerun writes the same)."""
    manifest = target.call("GET", f"/projects/{project_id}/manifest", under=KUBEVISION_PATH,
                           not_found=f"the target at {target.endpoint} serves no project manifests (is it a "
                                     f"KubeVision gateway?) or lost project {project_id}")
    name = manifest.get("metadata", {}).get("name") if isinstance(manifest, dict) else None
    if not isinstance(name, str) or not name or "/" in name:
        raise MigrationError(f"the target at {target.endpoint} answered a manifest without a resource name")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False, width=120))
    return path
