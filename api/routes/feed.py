"""`/v1/feed`: every stored event of the tenant's instances as CloudEvents, in commit order,
a page at a time or as a Server-Sent Events stream; `/v1/event-types`: what they can be.

Without Kafka this is how another system follows Waymark: read `GET /v1/feed?after=P`
(P = the last `waymarkposition` it processed, or the page's `next_after`), or hold
`GET /v1/feed/stream` open; its `id:` lines are positions, so a reconnecting EventSource
resumes exactly where it stopped (`Last-Event-ID`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.auth import ContainerDep, Reader
from api.responses import AUTHENTICATED, ok, problems
from api.responses_ops import EventTypeCatalogue, FeedPage
from application.envelopes import EventEnvelope
from application.event_schemas import catalogue
from application.feed import MAX_LIMIT, MAX_POSITION, parse_position
from application.views import jsonable
from infrastructure.container import Container

log = logging.getLogger(__name__)

router = APIRouter(tags=["feed"])

EVENT_STREAM = "text/event-stream"
# Events read per query while a stream catches up.
STREAM_BATCH = 200
# How long an EventSource waits before it reconnects after the stream ended (ms).
RECONNECT_MS = 1000

AfterQuery = Annotated[
    int,
    Query(ge=0, le=MAX_POSITION, description="a global position: events after it (0: all)"),
]


def _item(event: EventEnvelope) -> dict[str, Any]:
    return jsonable(event.structured())


@router.get("/v1/feed", responses=ok(FeedPage, *AUTHENTICATED, 400))
def read_feed(
    principal: Reader,
    container: ContainerDep,
    after: AfterQuery = 0,
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, description="a page's `next_cursor` (wins over `after`)"),
) -> dict[str, Any]:
    """The tenant's events after a position, oldest first (commit order)."""
    start = parse_position(cursor, default=after)
    page = container.feed.page(principal.tenant, after=start, limit=limit)
    return {
        "items": [_item(e) for e in page.items],
        "next_after": page.next_after,
        "next_cursor": page.next_cursor,
    }


@router.get(
    "/v1/feed/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `id:` the position, `data:` a CloudEvent "
            "(the feed's item); `:` comment lines keep an idle stream open",
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
        },
        **problems(*AUTHENTICATED, 400),
    },
)
async def stream_feed(
    request: Request,
    principal: Reader,
    container: ContainerDep,
    after: AfterQuery = 0,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="resume after this position (wins over after)"),
    ] = None,
) -> StreamingResponse:
    """The tenant's events as they commit: the events after the position, then each new one."""
    start = parse_position(last_event_id, default=after)
    return StreamingResponse(
        _event_stream(request, container, principal.tenant, start),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _event_stream(
    request: Request, container: Container, tenant: str, after: int
) -> AsyncIterator[str]:
    wakeups = container.feed_wakeups
    settings = container.settings
    poll, keepalive = settings.feed_poll_interval, settings.feed_keepalive_interval
    yield f"retry: {RECONNECT_MS}\n\n"
    sent = time.monotonic()
    while not wakeups.closed and not await request.is_disconnected():
        # The generation before the read: a commit after it wakes the wait below at once.
        seen = wakeups.generation
        try:
            page = await run_in_threadpool(
                container.feed.page, tenant, after=after, limit=STREAM_BATCH
            )
        except Exception:
            # The client reconnects (after `retry`) and resumes from its Last-Event-ID.
            log.exception("feed stream for tenant %s ended by an error", tenant)
            return
        for event in page.items:
            data = json.dumps(_item(event), separators=(",", ":"))
            yield f"id: {event.position}\ndata: {data}\n\n"
            sent = time.monotonic()
        after = page.next_after
        if page.more:
            continue
        idle = time.monotonic() - sent
        if idle >= keepalive:
            yield ": keep-alive\n\n"
            sent, idle = time.monotonic(), 0.0
        await wakeups.wait(seen, timeout=min(poll, keepalive - idle))


@router.get("/v1/event-types", responses=ok(EventTypeCatalogue, *AUTHENTICATED))
def list_event_types(principal: Reader) -> dict[str, Any]:
    """Every event type the feed and Kafka carry, with a JSON Schema of its `data`, and the
    envelope's attributes (docs/events.md has the same, with examples)."""
    return catalogue()
