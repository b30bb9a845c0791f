"""How the gateway's HTTP server runs (uvicorn, h11): one configuration for `kubevision gateway` and the tests.

uvicorn times only an idle keep-alive connection: a client that opens a connection and sends its headers a byte at
a time would hold it for ever. HeaderDeadline gives every request head `header_timeout_seconds`, from the
connection or from the first byte of a later request on it, then answers 408 and closes. Between requests a
connection is idle, not slow: only the keep-alive timeout closes it, silently (a 408 written then would be read as
the answer to the client's next request). Bodies are timed by the guard (guard.py)."""

from __future__ import annotations

import json

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from kubevision.core.settings import GatewaySettings

MAX_HEAD_BYTES = 16 * 1024  # the request line and headers; larger is 400 (h11)
# An idle connection is closed after this long: longer than common clients keep an idle pooled connection (httpx
# 5 s, aiohttp 15 s, .NET 60 s, Go 90 s), so that the client, not the server, closes it, and a request never races
# the server's close on a reused connection. (Python's requests never expires one: docs/gateway.md says what to retry.)
KEEP_ALIVE_SECONDS = 120


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's head."""

    header_timeout = 10.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_timer = None
        self._time_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._untime_head()  # the head is in: the body is the guard's
        elif self._head_timer is None and not self.transport.is_closing():
            self._time_head()  # the head of the connection's next request has begun

    def connection_lost(self, exc: Exception | None) -> None:
        self._untime_head()
        super().connection_lost(exc)

    def _time_head(self) -> None:
        self._untime_head()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _untime_head(self) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        body = json.dumps({"code": "BadRequest", "message": f"The request's headers took over "
                                                            f"{self.header_timeout:g} s."}).encode()
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                             b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        self.transport.close()


def server_config(app, settings: GatewaySettings, host: str | None = None, port: int | None = None) -> uvicorn.Config:
    """The server of `app`, on the settings' address unless `host` and `port` say otherwise."""
    protocol = type("GatewayHTTP", (HeaderDeadline,), {"header_timeout": settings.header_timeout_seconds})
    return uvicorn.Config(app, host=host or settings.host, port=settings.port if port is None else port,
                          http=protocol, h11_max_incomplete_event_size=MAX_HEAD_BYTES,
                          timeout_keep_alive=KEEP_ALIVE_SECONDS, access_log=False, log_config=None,
                          timeout_graceful_shutdown=10)
