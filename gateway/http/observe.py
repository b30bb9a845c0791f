"""One ASGI middleware in front of every route: Custom Vision paths matched case-insensitively, and each request
counted, timed and written to the access log (route template, status, duration, bytes; never keys or images)."""

from __future__ import annotations

import json
import logging
import time

from kubevision.gateway import metrics

access_log = logging.getLogger("kubevision.gateway.access")
CASE_INSENSITIVE_PREFIX = "/customvision/"


class Observe:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"].lower().startswith(CASE_INSENSITIVE_PREFIX):
            # The SDKs say /prediction and the REST docs /Prediction; our ids and publish names are lower case.
            scope["path"] = scope["path"].lower()
            scope["raw_path"] = scope.get("raw_path", b"").lower()
        started = time.perf_counter()
        status, received = 500, 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def status_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, counting_receive, status_send)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            metrics.REQUESTS.labels(template, str(status)).inc()
            metrics.REQUEST_SECONDS.labels(template).observe(seconds)
            metrics.REQUEST_BYTES.labels(template).inc(received)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(json.dumps({"method": scope["method"], "route": template, "status": status,
                                            "ms": round(seconds * 1000, 2), "bytes": received}))
