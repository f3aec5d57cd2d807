"""The HTTP event feed against a real `waymark serve`: pages scoped to the key's tenant and
resumed exactly by `after`, every event of a real run valid against the JSON Schema that
`GET /v1/event-types` publishes, and the Server-Sent Events stream: an event committed after
connecting arrives within a second (woken by NOTIFY: the stream's poll is 30 s here),
`Last-Event-ID` resumes, idle streams get keep-alive comments, and SIGTERM ends them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.e2e.conftest import (
    Server,
    Target,
    is_problem,
    open_bookmark,
    server_env,
    serving,
    start,
    wait_for,
)
from tests.e2e.event_feed_support import run_a_bit_of_everything, waiting

pytestmark = pytest.mark.e2e

# Only a NOTIFY can wake a stream within a second; idle streams send a comment every 0.5 s.
FEED_ENV = {"WAYMARK_FEED_POLL_INTERVAL": "30", "WAYMARK_FEED_KEEPALIVE_INTERVAL": "0.5"}


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("waymark-feed")
    with serving(server_env(module_database_url, workdir, **FEED_ENV), workdir) as running:
        yield running


def read_all(client: httpx.Client, *, after: int = 0, limit: int = 7) -> list[dict[str, Any]]:
    """Every event after `after`, following `next_cursor` page by page."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"after": after, "limit": limit}
    while True:
        response = client.get("/v1/feed", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        params = {"cursor": page["next_cursor"], "limit": limit}


def head(client: httpx.Client) -> int:
    """Where the tenant's feed stands now (its `next_after` once caught up)."""
    after = 0
    while True:
        page = client.get("/v1/feed", params={"after": after, "limit": 500}).json()
        after = page["next_after"]
        if page["next_cursor"] is None:
            return after


def test_pages_hold_only_the_tenants_events_in_commit_order(
    acme: httpx.Client, globex: httpx.Client
) -> None:
    # Given instances of two tenants, started and resumed interleaved
    mine, theirs = waiting(acme), waiting(globex)
    acme_ids, globex_ids = [], []
    for _ in range(3):
        acme_ids.append(start(acme, mine)["id"])
        globex_ids.append(start(globex, theirs)["id"])
    for instance_id in acme_ids[:2]:
        view = acme.get(f"/v1/instances/{instance_id}").json()
        bookmark = open_bookmark(view, "wait")["id"]
        resumed = acme.post(
            f"/v1/instances/{instance_id}/bookmarks/{bookmark}/resume", json={"payload": 1}
        )
        assert resumed.status_code == 200, resumed.text

    # When acme reads its whole feed a few events a page
    items = read_all(acme, limit=3)

    # Then it holds every event of acme's instances and none of globex's, oldest first
    positions = [i["waymarkposition"] for i in items]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    subjects = {i["subject"] for i in items}
    assert set(acme_ids) <= subjects and not subjects & set(globex_ids)
    assert {i["waymarktenant"] for i in items} == {"acme"}
    assert {i["source"] for i in items} == {"/waymark/tenants/acme"}
    # and each instance's events are its history, in version order, with the same positions
    for instance_id in acme_ids:
        history = acme.get(f"/v1/instances/{instance_id}/history").json()["items"]
        ours = [i for i in items if i["subject"] == instance_id]
        assert [i["id"] for i in ours] == [f"{instance_id}:{h['version']}" for h in history]
        assert [i["waymarkposition"] for i in ours] == [h["position"] for h in history]
    # and globex's feed is the mirror image
    theirs_items = read_all(globex)
    assert {i["subject"] for i in theirs_items} >= set(globex_ids)
    assert not {i["subject"] for i in theirs_items} & set(acme_ids)


def test_after_resumes_exactly_where_a_reader_stopped(acme: httpx.Client) -> None:
    start(acme, waiting(acme))
    items = read_all(acme)
    assert len(items) >= 3
    for cut in (0, 1, len(items) // 2, len(items) - 1):
        after = items[cut]["waymarkposition"]
        rest = read_all(acme, after=after, limit=2)
        assert [i["id"] for i in rest] == [i["id"] for i in items[cut + 1 :]]
    # Caught up: an empty page, and next_after never goes backwards
    last = items[-1]["waymarkposition"]
    page = acme.get("/v1/feed", params={"after": last}).json()
    assert page["items"] == [] and page["next_cursor"] is None and page["next_after"] >= last
    beyond = acme.get("/v1/feed", params={"after": last + 10_000}).json()
    assert beyond["items"] == [] and beyond["next_after"] == last + 10_000


def test_bad_positions_are_problems(acme: httpx.Client, server: Server) -> None:
    is_problem(acme.get("/v1/feed", params={"cursor": "abc"}), 400, "invalid-cursor")
    is_problem(acme.get("/v1/feed", params={"after": -1}), 422, "invalid-request")
    stream = acme.get("/v1/feed/stream", headers={"Last-Event-ID": "x1"})
    is_problem(stream, 400, "invalid-cursor")
    with server.client(None) as anonymous:
        is_problem(anonymous.get("/v1/feed"), 401, "unauthorized")
        is_problem(anonymous.get("/v1/feed/stream"), 401, "unauthorized")


# --- every event of a real run against its published schema --------------------------------
# The run that records every event type is `run_a_bit_of_everything` in event_feed_support.py
# (a new event type: make that run produce it).


def test_every_event_of_a_real_run_matches_its_published_schema(
    acme: httpx.Client, target: Target
) -> None:
    # Given the published catalogue
    response = acme.get("/v1/event-types")
    assert response.status_code == 200, response.text
    catalogue = response.json()
    schemas = {t["type"]: t["data_schema"] for t in catalogue["items"]}
    for schema in [catalogue["envelope"], *schemas.values()]:
        jsonschema.Draft202012Validator.check_schema(schema)
    envelope = jsonschema.Draft202012Validator(catalogue["envelope"])

    # When instances run through most of the engine
    ids = run_a_bit_of_everything(acme, target)

    # Then every event they stored validates: the envelope, and its data against its type
    events = [e for e in read_all(acme, limit=200) if e["subject"] in ids]
    for event in events:
        envelope.validate(event)
        jsonschema.Draft202012Validator(schemas[event["type"]]).validate(event["data"])
    seen = {e["type"] for e in events}
    missing = set(schemas) - seen
    print(f"validated {len(events)} events of {len(seen)} types; not produced: {sorted(missing)}")
    assert not missing


def test_a_published_schema_refuses_data_of_the_wrong_shape(acme: httpx.Client) -> None:
    # Negative control: the schemas are not so loose that anything passes.
    schemas = {t["name"]: t["data_schema"] for t in acme.get("/v1/event-types").json()["items"]}
    bad = [
        ("Started", {"tenant": "acme"}),  # required members missing
        ("NodeEntered", {"node_id": 1, "node_type": "set", "via_route": None}),
        ("TaskClaimed", {"bookmark_id": "b", "claimed_by": None}),
        ("Completed", {"node_id": "done", "output": [], "at": "2026-01-01T00:00:00+00:00"}),
    ]
    for name, data in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(data, schemas[name])


# --- the Server-Sent Events stream -------------------------------------------------------


class StreamReader:
    """Reads `GET /v1/feed/stream` in a thread: its events and comments as they arrive."""

    def __init__(self, server: Server, key: str, **kwargs: Any) -> None:
        self.events: list[tuple[str, dict[str, Any], float]] = []
        self.comments: list[str] = []
        self.ended = threading.Event()
        self.connected = threading.Event()
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._client = server.client(key)
        self._kwargs = kwargs
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/v1/feed/stream", **self._kwargs) as response:
                self.status, self.headers = response.status_code, response.headers
                self.connected.set()
                event: dict[str, str] = {}
                for line in response.iter_lines():
                    if line.startswith(":"):
                        with self._lock:
                            self.comments.append(line)
                    elif line == "":
                        if "data" in event:
                            with self._lock:
                                self.events.append(
                                    (event["id"], json.loads(event["data"]), time.monotonic())
                                )
                        event = {}
                    else:
                        field, _, value = line.partition(":")
                        event[field] = value.removeprefix(" ")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.connected.set()
            self.ended.set()

    def subjects(self) -> list[str]:
        with self._lock:
            return [data["subject"] for _, data, _ in self.events]

    def close(self) -> None:
        self._client.close()
        self._thread.join(5)


@pytest.fixture
def streams() -> Iterator[list[StreamReader]]:
    opened: list[StreamReader] = []
    yield opened
    for reader in opened:
        reader.close()


def test_the_stream_delivers_an_event_committed_after_connecting_within_a_second(
    server: Server, acme: httpx.Client, globex: httpx.Client, streams: list[StreamReader]
) -> None:
    # Given a stream opened at the tenant's current head, idle for a moment
    definition, other = waiting(acme), waiting(globex)
    reader = StreamReader(server, "k-acme", params={"after": head(acme)})
    streams.append(reader)
    assert reader.connected.wait(10) and reader.status == 200
    assert reader.headers is not None
    assert reader.headers["content-type"].startswith("text/event-stream")
    wait_for(lambda: reader.comments, timeout=5, what="a keep-alive comment")
    assert reader.events == []

    # When another tenant and then this one commit new instances
    start(globex, other)
    committed = time.monotonic()
    started = start(acme, definition)

    # Then this tenant's events arrive within a second (the stream's poll is 30 s) ...
    wait_for(lambda: started["id"] in reader.subjects(), timeout=5, what="the new instance")
    [first] = [at for _, data, at in reader.events if data["subject"] == started["id"]][:1]
    latency = first - committed
    print(f"stream latency: {latency * 1000:.0f} ms")
    assert latency < 1.0
    # ... as the feed's items, with the position as the SSE id, and nothing of the other's
    ids = [event_id for event_id, _, _ in reader.events]
    positions = [data["waymarkposition"] for _, data, _ in reader.events]
    assert ids == [str(p) for p in positions] and positions == sorted(positions)
    assert {data["waymarktenant"] for _, data, _ in reader.events} == {"acme"}
    page = acme.get("/v1/feed", params={"after": positions[0] - 1, "limit": len(ids)}).json()
    assert [data for _, data, _ in reader.events] == page["items"]


def test_last_event_id_resumes_the_stream_exactly(
    server: Server, acme: httpx.Client, streams: list[StreamReader]
) -> None:
    start(acme, waiting(acme))
    items = read_all(acme, limit=500)
    resume_after = items[-3]["waymarkposition"]
    # An EventSource reconnects with its original URL and the last id it saw: the id wins
    reader = StreamReader(
        server, "k-acme", params={"after": 0}, headers={"Last-Event-ID": str(resume_after)}
    )
    streams.append(reader)
    wait_for(lambda: len(reader.events) >= 2, timeout=5, what="the two events after the id")
    assert [data["id"] for _, data, _ in reader.events[:2]] == [i["id"] for i in items[-2:]]


def test_a_stream_ends_cleanly_when_the_server_shuts_down(
    module_database_url: str, tmp_path: Path
) -> None:
    # Given a second server with an open, idle stream
    env = server_env(module_database_url, tmp_path, **FEED_ENV)
    with serving(env, tmp_path) as running:
        reader = StreamReader(running, "k-acme", params={"after": 2**62})
        assert reader.connected.wait(10) and reader.status == 200
        wait_for(lambda: reader.comments, timeout=5, what="a keep-alive comment")
        # When it is told to stop (the context's exit sends SIGTERM and waits)
        stopping = time.monotonic()
    stopped = time.monotonic() - stopping
    # Then the stream ended (the response completed, no error) and the server did not sit out
    # its 20 s grace period waiting for the stream
    assert reader.ended.wait(5)
    assert reader.error is None, reader.error
    print(f"server with an open stream stopped in {stopped:.2f} s")
    assert stopped < 10
    reader.close()


def test_the_stream_route_refuses_a_viewer_nothing(server: Server) -> None:
    # Read-only keys may follow the feed (it is a GET)
    with server.client("k-acme-viewer") as viewer:
        assert viewer.get("/v1/feed").status_code == 200
        assert viewer.get("/v1/event-types").status_code == 200
