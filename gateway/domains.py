"""Custom Vision's domains as the API finds them: by id (with Custom Vision's errors), and the one a project shows.
The table itself is core's (kubevision.core.domains), which the migration shares."""

from __future__ import annotations

from kubevision.core.domains import BY_ID, DEFAULT, DOMAINS, SHOWN, DomainInfo
from kubevision.gateway.errors import CustomVisionError, NotFound

__all__ = ["BY_ID", "DEFAULT", "DOMAINS", "SHOWN", "DomainInfo", "domain", "shown"]


def domain(domain_id: str, not_found: bool = False) -> DomainInfo:
    found = BY_ID.get(domain_id.lower())
    if found is None:
        if not_found:
            raise NotFound(f"Domain {domain_id} not found.", "NotFoundDomain")
        raise CustomVisionError(f"Unknown domain {domain_id}; GET /domains lists them.",
                                "BadRequestProjectUnknownDomain")
    return found


def shown(project_type: str, kubevision_domain: str) -> DomainInfo:
    return SHOWN.get((project_type, kubevision_domain), DEFAULT)
