"""One ASGI middleware between the access log and the routes that keeps a request from costing memory it has no
right to: the key is checked, and the call counted against its key's rate limit, before any byte of the body is read
(FastAPI reads a JSON body before it solves the key dependency), a body over its route's limit is refused as soon as
its Content-Length or its bytes say so, and a body that stalls or trickles is cut off. Refusals leave in Custom
Vision's error shape, as the routes' own do."""

from __future__ import annotations

import asyncio
import time

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from kubevision.core.settings import GatewaySettings
from kubevision.gateway.backends.sources import CatalogSource
from kubevision.gateway.catalog import KEY_HEADERS
from kubevision.gateway.errors import CustomVisionError, RequestTimeout, TooManyRequests, Unauthorized
from kubevision.gateway.http.errors import body as error_body
from kubevision.gateway.http.limits import BodyLimit, body_limit, call_kind, key_kind
from kubevision.gateway.rate_limits import RateLimiter


class BodyRefused(Exception):
    """Raised into the route that reads a refused body; the guard answers in its place."""


class Guard:
    def __init__(self, app, source: CatalogSource, settings: GatewaySettings, rates: RateLimiter):
        self.app = app
        self.source = source
        self.settings = settings
        self.rates = rates

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        kind = key_kind(scope["path"])
        if kind is not None:
            try:
                namespace = self.source.catalog.namespace_of(kind, headers.get(KEY_HEADERS[kind]))
            except Unauthorized as error:
                return await answer(error, scope, receive, send)
            wait = await self.rates.admit(namespace, call_kind(kind, scope["method"], scope["path"]))
            if wait is not None:
                return await answer(TooManyRequests(wait), scope, receive, send)
        limit = body_limit(scope["path"], headers.get("content-type", ""), self.settings)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit.bytes:
            # Unread, the rest of the body is dropped by the server as it arrives: nothing of it is kept.
            return await answer(limit.error, scope, receive, send)
        body = WatchedBody(receive, limit, self.settings)
        started = False

        async def send_unless_refused(message):
            nonlocal started
            if body.refusal is not None:
                return  # whatever the route made of the refusal, the guard answers it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body.receive, send_unless_refused)
        except Exception:
            if body.refusal is None or started:
                raise
        if body.refusal is not None and not started:
            # The client is still sending (too much, or too slowly): close the connection rather than read on.
            await answer(body.refusal, scope, receive, send, close=True)


class WatchedBody:
    """The request's receive channel, counting the body's bytes against its limit and timing each piece."""

    def __init__(self, receive, limit: BodyLimit, settings: GatewaySettings):
        self._receive = receive
        self.limit = limit
        self.idle = settings.body_idle_seconds
        self.deadline = time.monotonic() + settings.body_timeout_seconds
        self.received = 0
        self.complete = False
        self.refusal: CustomVisionError | None = None

    async def receive(self):
        if self.complete:  # past the body: only a disconnect is left to hear, whenever it comes
            return await self._receive()
        wait = min(self.idle, self.deadline - time.monotonic())
        try:
            message = await asyncio.wait_for(self._receive(), max(wait, 0))
        except TimeoutError:
            self.refusal = RequestTimeout("The request body arrived too slowly: more than "
                                          f"{self.idle:g} s without a byte, or over the time allowed for it.")
            raise BodyRefused from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit.bytes:
                self.refusal = self.limit.error
                raise BodyRefused
            self.complete = not message.get("more_body", False)
        else:
            self.complete = True
        return message


async def answer(error: CustomVisionError, scope, receive, send, close: bool = False) -> None:
    headers = {**error.headers, **({"Connection": "close"} if close else {})}
    response = JSONResponse(error_body(error.code, error.message), status_code=error.status, headers=headers)
    await response(scope, receive, send)
