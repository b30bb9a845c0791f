"""Download links that work without a key, from outside the cluster: the gateway serves image bytes and exported
models itself, behind a URL signed with the namespace's Training-Key (HMAC-SHA256) that expires. A rotated key ends
every link it signed."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

PREFIX = "/customvision/files"


def _signature(key: str, path: str, expires: int) -> str:
    return hmac.new(key.encode(), f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def sign(base_url: str, key: str, path: str, seconds: int) -> str:
    """`path` is below PREFIX, e.g. "<project>/images/<sha256>"."""
    expires = int(time.time()) + seconds
    query = urlencode({"expires": expires, "signature": _signature(key, path, expires)})
    return f"{base_url.rstrip('/')}{PREFIX}/{path}?{query}"


def valid(key: str, path: str, expires: int, signature: str) -> bool:
    return bool(key) and expires >= time.time() and hmac.compare_digest(_signature(key, path, expires), signature)
