"""Download links that work without a key, from outside the cluster: the gateway serves image bytes and exported
models itself, behind a URL signed with the namespace's Training-Key (HMAC-SHA256) that expires. A rotated key ends
every link it signed."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

PREFIX = "/customvision/files"
_IMAGE_PATH = re.compile(rf"^{PREFIX}/([^/]+)/images/([^/]+)$")


def _signature(key: str, path: str, expires: int) -> str:
    return hmac.new(key.encode(), f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def sign(base_url: str, key: str, path: str, seconds: int) -> str:
    """`path` is below PREFIX, e.g. "<project>/images/<sha256>"."""
    expires = int(time.time()) + seconds
    query = urlencode({"expires": expires, "signature": _signature(key, path, expires)})
    return f"{base_url.rstrip('/')}{PREFIX}/{path}?{query}"


def valid(key: str, path: str, expires: int, signature: str) -> bool:
    return bool(key) and expires >= time.time() and hmac.compare_digest(_signature(key, path, expires), signature)


def image_path(project_id: str, sha256: str) -> str:
    """The path below PREFIX of a project's image, as links to it are signed."""
    return f"{project_id}/images/{sha256}"


@dataclass(frozen=True)
class ImageLink:
    """What an image link names and the signature it carries."""

    project_id: str
    sha256: str
    expires: int
    signature: str

    @property
    def path(self) -> str:
        return image_path(self.project_id, self.sha256)


def image_link(url: str) -> ImageLink | None:
    """The image link `url` is, by its path and query, or None for any other URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    match = _IMAGE_PATH.match(parts.path)
    query = parse_qs(parts.query)
    expires, signature = query.get("expires", [""])[-1], query.get("signature", [""])[-1]
    if not match or not expires.isdigit() or not signature:
        return None
    return ImageLink(match[1], match[2], int(expires), signature)


class Signer:
    """Signs links with the namespace's Training-Key, from the catalog as it is now (a rotated key signs at once)."""

    def __init__(self, settings, source):
        self.settings = settings  # GatewaySettings: public_url, link_seconds
        self.source = source  # the catalog source: each namespace's keys

    def link(self, namespace: str, base_url: str, path: str) -> str:
        key = self.source.catalog.keys[namespace].training
        return sign(self.settings.public_url or base_url, key, path, self.settings.link_seconds)
