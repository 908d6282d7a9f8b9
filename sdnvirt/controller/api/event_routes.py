"""`GET /events`: the controller's event stream, as server-sent events.

Each event is `id:`, `event:` (its kind) and `data:` (one JSON object); a
comment line keeps an idle connection open. A client that reconnects with
`Last-Event-ID` (or `?after=`) first gets the kept events it missed. A stream
holds no worker thread: it awaits the publisher's wake-up. At most
MAX_SUBSCRIBERS clients follow at once (503 beyond).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.responses import StreamingResponse

from sdnvirt.controller.events import KINDS, EventStream, Subscription

KEEPALIVE = 5.0  # seconds of silence before a comment line
KindsQuery = Annotated[list[str] | None, Query(description=f"Kinds to follow (default all): {', '.join(KINDS)}")]
AfterQuery = Annotated[int | None, Query(description="Replay the kept events after this id")]


def event_routes(events: EventStream) -> APIRouter:
    router = APIRouter(tags=["events"])

    @router.get("/events", response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                                 "description": "Server-sent events: VM lifecycle, bindings, switch-overs, "
                                                "migrations, topology changes"}})
    async def stream(kind: KindsQuery = None, after: AfterQuery = None,
                     last_event_id: Annotated[int | None, Header()] = None) -> StreamingResponse:
        kind = kind or list(KINDS)
        unknown = sorted(set(kind) - set(KINDS))
        if unknown:
            raise HTTPException(422, detail={"field": "kind", "message": f"no event kind {', '.join(unknown)}; "
                                                                         f"kinds are {', '.join(KINDS)}"})
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()
        subscription = events.subscribe(kind, after if after is not None else last_event_id,
                                        lambda: loop.call_soon_threadsafe(woken.set))
        return StreamingResponse(_lines(subscription, woken), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return router


async def _lines(subscription: Subscription, woken: asyncio.Event) -> AsyncIterator[str]:
    with subscription:
        yield ": sdnvirt events\n\n"
        missed = 0
        while True:
            batch = subscription.pending()
            if not batch:
                woken.clear()
                batch = subscription.pending()  # what came between the look and the clear
            if not batch:
                try:
                    await asyncio.wait_for(woken.wait(), KEEPALIVE)
                except TimeoutError:
                    yield ": keepalive\n\n"
                continue
            if subscription.missed != missed:
                yield f": {subscription.missed - missed} events missed, this client fell behind\n\n"
                missed = subscription.missed
            for event in batch:
                data = json.dumps({"at": event.at, **event.data}, separators=(",", ":"))
                yield f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"
