"""The KubeVision domain nearest to a source project's: the same Azure domain when KubeVision knows its id (all that
Azure documents), else the General domain of the project's type, compact when the source's was."""

from __future__ import annotations

from kubevision.core.api import Domain, ProjectType
from kubevision.core.domains import BY_ID, SHOWN, DomainInfo
from kubevision.core.migration.client import TrainingApi
from kubevision.core.migration.source import field_of


def nearest(source: TrainingApi, domain_id: str) -> tuple[str, DomainInfo]:
    """(the source domain's name, the KubeVision domain it maps to)."""
    known = BY_ID.get(domain_id.lower())
    if known is not None:
        return known.name, known
    body = source.call("GET", f"/domains/{domain_id}")
    name = field_of(body, "name", str, source, "a domain")
    kind = ProjectType.OBJECT_DETECTION if field_of(body, "type", str, source, "a domain") == "ObjectDetection" \
        else ProjectType.CLASSIFICATION
    domain = Domain.GENERAL_COMPACT if "compact" in name.lower() else Domain.GENERAL
    return name, SHOWN[(kind.value, domain.value)]
