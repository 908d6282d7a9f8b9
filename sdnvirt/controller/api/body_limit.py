"""A bound on what one request may make the controller read.

Every route of the API wants its body whole (JSON), so the body is read here,
before the route runs, and refused with 413 as soon as it is known to be over
the limit: from its Content-Length before reading any of it, or, for a chunked
body, at the first chunk that goes over. The connection is closed then, so the
server does not go on reading what the client still sends.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 2 << 20  # bytes: a topology file at its own limit (1 MiB of YAML) as JSON text, with room


class BodyLimit:
    """ASGI middleware: bodies over `limit` bytes get 413, in the API's error shape."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _content_length(scope) > self.limit:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before it had sent its request
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            more = message.get("more_body", False)
        await self.app(scope, _replaying(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(status_code=413, headers={"Connection": "close"}, content={"detail": {
            "field": "body", "message": f"the request body is over {self.limit} bytes"}})
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int:
    """The length the client announced; 0 when it announced none (or one the server will refuse)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The body as one message, then whatever comes next (a disconnect, which streaming
    responses wait for)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
