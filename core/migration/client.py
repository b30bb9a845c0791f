"""One Custom Vision training API (v3.3) over HTTP: the calls a migration makes, with the waits the service asks for
(429 and Retry-After) and errors that say which side failed and why. The key travels in its header only: no message,
log line or exception names it."""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx

API_PATH = "/customvision/v3.3/training"
KUBEVISION_PATH = "/kubevision/v1"  # KubeVision's own routes, beside Custom Vision's (a target has them)
ATTEMPTS = 6  # for a throttled or failing call; a 429's Retry-After is waited in full each time
MAX_WAIT_SECONDS = 60.0  # the longest single wait, whatever a Retry-After asks for
TIMEOUT_SECONDS = 120.0


class MigrationError(Exception):
    """A migration cannot go on: bad credentials, a missing project, an answer that is not Custom Vision's."""


class TrainingApi:
    """`role` ("source" or "target") names the side in every error."""

    def __init__(self, endpoint: str, key: str, role: str, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        if not endpoint.startswith(("http://", "https://")):
            raise MigrationError(f"the {role} endpoint {endpoint!r} is no http(s) URL")
        if not key:
            raise MigrationError(f"no training key for the {role}")
        self.endpoint = endpoint.rstrip("/")
        self.role = role
        self._sleep = sleep
        self._http = httpx.Client(base_url=self.endpoint, headers={"Training-Key": key},
                                  timeout=TIMEOUT_SECONDS, transport=transport, verify=tls())
        # Signed links carry no key; several threads download at once (httpx's pool is thread-safe).
        self._files = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=True, transport=transport,
                                   verify=tls())

    def close(self) -> None:
        self._http.close()
        self._files.close()

    def __enter__(self) -> TrainingApi:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
             not_found: str | None = None, under: str = API_PATH) -> Any:
        """The answer's JSON (None for 204) for `path` below `under`. `not_found` is the message for a 404."""
        response = self._send(lambda: self._http.request(method, under + path, params=params, json=json),
                              f"{method} {path}")
        if response.status_code == 204:
            return None
        body = self._json(response, f"{method} {path}")
        if response.status_code in (401, 403):
            raise MigrationError(f"the {self.role} at {self.endpoint} refused its training key "
                                 f"({response.status_code} {error_code(body)}): check the key and the endpoint")
        if response.status_code == 404 and not_found:
            raise MigrationError(not_found)
        if response.status_code >= 400:
            raise MigrationError(f"the {self.role} refused {method} {path}: {response.status_code} "
                                 f"{error_code(body)}: {error_message(body)}")
        return body

    def download(self, url: str) -> bytes:
        """An image's bytes from the URI the API gave (signed: no key is sent along)."""
        response = self._send(lambda: self._files.get(url), "an image")
        if response.status_code != 200:
            raise MigrationError(f"its original image answered {response.status_code}")
        return response.content

    def _send(self, request: Callable[[], httpx.Response], what: str) -> httpx.Response:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = request()
            except httpx.HTTPError as error:
                if attempt == ATTEMPTS:
                    raise MigrationError(f"the {self.role} at {self.endpoint} is not answering {what}: "
                                         f"{type(error).__name__}") from None
                self._sleep(min(2.0 ** attempt, MAX_WAIT_SECONDS))
                continue
            if response.status_code == 429 or (response.status_code >= 500 and attempt < ATTEMPTS):
                if attempt == ATTEMPTS:
                    raise MigrationError(f"the {self.role} at {self.endpoint} kept throttling {what}")
                self._sleep(retry_after(response, default=2.0 ** attempt))
                continue
            return response
        raise AssertionError("unreachable")

    def _json(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise MigrationError(
                f"the {self.role} at {self.endpoint} did not answer {what} as a Custom Vision training API does "
                f"({response.status_code}, {response.headers.get('content-type') or 'no content type'}, not JSON)"
            ) from None


@functools.cache
def tls() -> ssl.SSLContext:
    """One context for every client: each new one would load the certificate bundle again (tens of ms)."""
    return httpx.create_ssl_context()


def retry_after(response: httpx.Response, default: float) -> float:
    try:
        wanted = float(response.headers.get("Retry-After", default))
    except ValueError:
        wanted = default
    return min(max(wanted, 0.1), MAX_WAIT_SECONDS)


def error_code(body: Any) -> str:
    error = body.get("error", body) if isinstance(body, dict) else {}
    return str(error.get("code", "no error code")) if isinstance(error, dict) else "no error code"


def error_message(body: Any) -> str:
    error = body.get("error", body) if isinstance(body, dict) else {}
    return str(error.get("message", "")) if isinstance(error, dict) else ""
