"""Fault injection for the simulators: one aiohttp middleware, driven from tests and demo.

Faults are armed for a number of requests (or until cleared), optionally only for some
paths, and optionally at random with a seeded generator so demo runs are repeatable.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

# What a vendor does now and then: errors and unreadable replies, never a hang.
RANDOM_FAULT_KINDS = (
    "http_500",
    "http_503",
    "rate_limit",
    "garbage",
    "malformed",
    "truncate",
    "reset",
)

KINDS = (
    "latency",
    "http_500",
    "http_503",
    "rate_limit",
    "timeout",
    "reset",
    "truncate",
    "garbage",
    "malformed",
    "auth",
)

# A vendor's own kind of broken reply, made from a good one (a wrong XML root, a JSON
# object instead of an array, a table whose rows do not fit its header).
Malformer = Callable[[bytes], bytes]


@dataclass
class Fault:
    kind: str
    remaining: int | None = None  # None: until cleared
    path_contains: str = ""
    seconds: float = 0.0  # latency, timeout length, Retry-After


class Faults:
    def __init__(self, seed: int = 0, malformed: Malformer | None = None) -> None:
        self.malformed = malformed
        self.armed: list[Fault] = []
        self.random_rate = 0.0
        self.random_kinds: tuple[str, ...] = ("http_500",)
        self._rng = random.Random(seed)
        self.injected: dict[str, int] = {}

    def inject(
        self, kind: str, count: int | None = 1, path_contains: str = "", seconds: float = 0.0
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(KINDS)}")
        self.armed.append(Fault(kind, count, path_contains, seconds))

    def clear(self) -> None:
        self.armed.clear()
        self.random_rate = 0.0

    def set_random(self, rate: float, kinds: tuple[str, ...]) -> None:
        self.random_rate, self.random_kinds = rate, kinds

    def take(self, path: str) -> Fault | None:
        for fault in self.armed:
            if fault.path_contains and fault.path_contains not in path:
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.armed.remove(fault)
            return fault
        if self.random_rate and self._rng.random() < self.random_rate:
            return Fault(self._rng.choice(self.random_kinds), seconds=1.0)
        return None

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def inject_faults(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            fault = self.take(request.path)
            if fault is None:
                return await handler(request)
            self.injected[fault.kind] = self.injected.get(fault.kind, 0) + 1
            return await self._apply(fault, request, handler)

        return inject_faults

    async def _apply(
        self,
        fault: Fault,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if fault.kind == "latency":
            await asyncio.sleep(fault.seconds)
            return await handler(request)
        if fault.kind == "timeout":
            await asyncio.sleep(fault.seconds or 3600)
            return web.Response(status=504)
        if fault.kind == "http_500":
            return web.Response(status=500, text="Internal Server Error")
        if fault.kind == "http_503":
            return web.Response(status=503, text="Service Unavailable")
        if fault.kind == "rate_limit":
            return web.Response(
                status=429,
                text="Too Many Requests",
                headers={"Retry-After": str(int(fault.seconds or 30))},
            )
        if fault.kind == "auth":
            return web.Response(status=401, text="Unauthorized")
        if fault.kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError()
        response = await handler(request)
        body = getattr(response, "body", None) or b""
        if not isinstance(body, bytes):
            body = bytes(body)
        if fault.kind == "truncate":
            return await _truncated(request, response, body)
        if fault.kind == "malformed" and self.malformed is not None:
            return _clone(response, self.malformed(body))
        return _clone(response, b"<<garbage|{\x00not what you expected")  # garbage


async def _truncated(
    request: web.Request, response: web.StreamResponse, body: bytes
) -> web.StreamResponse:
    """Announce the whole body, send half, then drop the connection: a reply cut short
    in transit, as a client sees it."""
    cut = web.StreamResponse(status=response.status)
    cut.content_type = response.content_type or "text/plain"
    cut.content_length = len(body)
    await cut.prepare(request)
    await cut.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.abort()
    return cut


def _clone(response: web.StreamResponse, body: bytes) -> web.Response:
    return web.Response(
        status=response.status, body=body, content_type=response.content_type or "text/plain"
    )
