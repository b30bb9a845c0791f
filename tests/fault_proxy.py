"""A reverse proxy in front of a real server (S3, MLflow) that injects the faults of a real network: requests that
hang without an answer, and error answers for chosen requests. It runs in its own thread, so synchronous and
asynchronous tests use it alike, and switching a fault off lets the same clients recover."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from kubevision.local.process import free_port

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    code: str  # S3's error code, e.g. AccessDenied, SlowDown

    def body(self, path: str) -> bytes:
        return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{self.code}</Code><Message>{self.code}'
                f"</Message><Resource>{path}</Resource><RequestId>fault-proxy</RequestId></Error>").encode()


class FaultProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream  # host:port
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.hang = False  # every request waits, unanswered, while set
        self.answer: Callable[[str, str], ErrorAnswer | None] = lambda method, path: None
        self.requests = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self.hang = False
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            app = web.Application(client_max_size=1 << 30)  # models and images pass through whole
            self._session = session
            app.router.add_route("*", "/{path:.*}", self._forward)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        while self.hang:  # accepted, never answered: what a stuck server or a dropped route looks like
            await asyncio.sleep(0.05)
        if (error := self.answer(request.method, request.path)) is not None:
            return web.Response(status=error.status, body=error.body(request.path), content_type="application/xml")
        # The Host header goes through unchanged: S3 signatures cover it.
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(request.method, f"http://{self.upstream}{request.rel_url}", headers=headers,
                                   data=await request.read(), allow_redirects=False) as upstream:
            body = await upstream.read()
            answer = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=upstream.status, body=body, headers=answer)
