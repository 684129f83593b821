"""Limits on what a client may send, enforced before a route sees the request.

Two layers, because a slow or huge upload must be stopped while it is still arriving:
- ``GuardedH11Protocol`` (the connection): a request's line and headers must arrive within
  ``header_timeout_s``, or the connection is closed. uvicorn has no such deadline, so a client that
  opens connections and trickles headers would hold them forever.
- ``RequestLimits`` (ASGI middleware): headers larger than ``max_header_bytes`` get 431; a body is read
  chunk by chunk and refused with 413 the moment it passes ``max_body_bytes`` (a declared
  Content-Length is refused before reading anything), or with 408 when it has not fully arrived
  within ``body_timeout_s``. Both answers close the connection, so the rest of the upload is never read.
The route then gets the body from memory.
"""

from __future__ import annotations

import asyncio
import json
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from crossrank.server import errors

_BODY_METHODS = {"POST", "PUT", "PATCH"}


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's line and headers."""

    header_timeout_s = 10.0  # set from the settings by the runner

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _watch_headers(self) -> None:
        """Arm the deadline while a request's headers are awaited: on a fresh connection, or once bytes of a
        next request arrive on a kept-alive one (an idle kept-alive connection is uvicorn's keep-alive timeout's
        to close). Disarm it once the headers are complete."""
        if self.conn.their_state is not h11.IDLE:
            self._cancel_header_timer()
        elif self._header_timer is None and (self.cycle is None or self.conn.trailing_data[0]):
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class RequestLimits:
    """ASGI middleware: header size, body size and body read time, checked as the bytes arrive."""

    def __init__(self, app, max_header_bytes: int, max_body_bytes: int, body_timeout_s: float):
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            await _refuse(send, errors.HeadersTooLarge(
                f"request headers of {header_bytes} bytes exceed the limit of {self.max_header_bytes}"))
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _refuse(send, errors.PayloadTooLarge(
                f"request body of {int(declared)} bytes exceeds the limit of {self.max_body_bytes}"))
            return
        body = await self._read_body(receive, send)
        if body is None:
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)

    async def _read_body(self, receive, send) -> bytes | None:
        """The whole body, or None once a refusal has been sent (or the client has gone)."""
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0))
            except asyncio.TimeoutError:
                await _refuse(send, errors.RequestTimeout(
                    f"the request body did not arrive within {self.body_timeout_s:g} s"))
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _refuse(send, errors.PayloadTooLarge(
                    f"request body exceeds the limit of {self.max_body_bytes} bytes"))
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _refuse(send, error: errors.ApiError) -> None:
    """A JSON error that also closes the connection: whatever the client still sends is never read."""
    payload = json.dumps(errors.body(error)).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})
