"""The API's bound on request bodies, driven through ASGI by hand: a body over the limit is
refused (413, the API's error shape, the connection closed) having read no more of it than
the limit and one chunk; a body within it reaches the route whole, and what the client
says afterwards (a disconnect) still reaches the route too."""

from __future__ import annotations

import asyncio
import json

from sdnvirt.controller.api.body_limit import BodyLimit

LIMIT = 1000
CHUNK = 64


class Client:
    """The server side of one request: the body in chunks, then a disconnect; counts reads."""

    def __init__(self, body: bytes, content_length: int | None = None):
        self.messages = [{"type": "http.request", "body": body[i:i + CHUNK], "more_body": i + CHUNK < len(body)}
                         for i in range(0, len(body), CHUNK)] or [{"type": "http.request", "body": b""}]
        self.messages.append({"type": "http.disconnect"})
        self.reads = 0
        self.sent: list[dict] = []
        headers = [(b"content-length", str(content_length).encode())] if content_length is not None else []
        self.scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}

    async def receive(self) -> dict:
        self.reads += 1
        return self.messages[self.reads - 1]

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def answer(self) -> tuple[int, dict, dict]:
        start, body = self.sent[0], b"".join(m.get("body", b"") for m in self.sent[1:])
        return start["status"], dict(start["headers"]), json.loads(body)


class Route:
    """What the API behind the limit was given."""

    def __init__(self):
        self.messages: list[dict] = []

    async def __call__(self, scope, receive, send) -> None:
        self.messages = [await receive(), await receive()]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def serve(client: Client) -> Route:
    route = Route()
    asyncio.run(BodyLimit(route, LIMIT)(client.scope, client.receive, client.send))
    return route


REFUSED = {"detail": {"field": "body", "message": f"the request body is over {LIMIT} bytes"}}


def test_an_announced_length_over_the_limit_is_refused_unread():
    client = Client(b"x" * (LIMIT + 1), content_length=LIMIT + 1)
    route = serve(client)
    status, headers, body = client.answer()
    assert (status, body, headers[b"connection"]) == (413, REFUSED, b"close")
    assert client.reads == 0 and route.messages == []


def test_a_chunked_body_is_refused_at_the_first_chunk_over_the_limit():
    client = Client(b"x" * (10 * LIMIT))  # no length announced
    route = serve(client)
    status, _, refusal = client.answer()
    assert (status, refusal) == (413, REFUSED)
    assert client.reads == LIMIT // CHUNK + 1 and route.messages == []


def test_a_body_at_the_limit_reaches_the_route_whole_then_the_disconnect():
    body = bytes(range(256)) * 3 + b"y" * (LIMIT - 768)
    client = Client(body, content_length=LIMIT)
    route = serve(client)
    assert route.messages == [{"type": "http.request", "body": body, "more_body": False},
                              {"type": "http.disconnect"}]
    assert client.sent[0]["status"] == 200


def test_a_request_without_a_body_passes_as_it_is():
    client = Client(b"")
    route = serve(client)
    assert route.messages == [{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}]


def test_other_connections_pass_untouched():
    seen = []

    async def app(scope, receive, send) -> None:
        seen.append(scope["type"])

    asyncio.run(BodyLimit(app, LIMIT)({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]
