"""The publisher's bookkeeping against real PostgreSQL, with a sink that fails on purpose in
place of the broker: the position covers only acknowledged events, an instance's events are
never sent past one that failed, and retries resume from the first unacknowledged one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.outbox_support import TENANT, WAIT_THEN_END, start_workflows

pytestmark = pytest.mark.integration


class FlakySink:
    """Acknowledges every message except those of `failing` (ce_id), `times` times each."""

    def __init__(self, failing: set[str], times: int) -> None:
        self.failing = {ce_id: times for ce_id in failing}
        self.sent: list[str] = []  # acknowledged, in acknowledgement order

    async def send(self, message: Any) -> None:
        ce_id = dict(message.headers)["ce_id"].decode()
        if self.failing.get(ce_id, 0) > 0:
            self.failing[ce_id] -= 1
            raise ConnectionError(f"no acknowledgement for {ce_id}")
        self.sent.append(ce_id)

    async def stop(self) -> None:
        return None


@pytest.fixture
def api(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    container = build_api(Settings(database_url=database_url, api_keys="k=acme:admin"))
    container.definitions.publish(TENANT, WAIT_THEN_END)
    yield container
    container.close()


def publisher(api: Any, sink: FlakySink, attempts: int = 5) -> Any:
    from infrastructure.bootstrap import outbox_tables
    from infrastructure.outbox import OutboxPublisher, RetryPolicy

    return OutboxPublisher(
        outbox_tables(api.core),
        sink,
        batch_size=50,
        retry=RetryPolicy(attempts=attempts, initial=0.0, max_delay=0.0),
        sleep=lambda _seconds: None,
    )


def events(database_url: str) -> list[tuple[str, int, int]]:
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT originator_id, originator_version, notification_id FROM waymark_events "
            "ORDER BY notification_id"
        ).fetchall()
    return [(str(o), v, n) for o, v, n in rows]


def test_a_failure_that_never_ends_leaves_the_position_before_it(
    api: Any, database_url: str
) -> None:
    from infrastructure.outbox import PublishFailedError

    start_workflows(api, 6, threads=1)
    stored = events(database_url)
    victim_instance, _, victim_position = stored[len(stored) // 2]
    victim = next(f"{o}:{v}" for o, v, n in stored if n == victim_position)
    sink = FlakySink({victim}, times=10**6)
    pub = publisher(api, sink)
    try:
        with pytest.raises(PublishFailedError):
            pub.publish_batch()
        status = api.outbox.status()
        # The position stops right before the unacknowledged event: it is not skipped
        assert status.position == max(n for _, _, n in stored if n < victim_position)
        # The victim's instance got nothing after it; the other instances got everything
        later_of_victim = {
            f"{o}:{v}" for o, v, n in stored if o == victim_instance and n > victim_position
        }
        assert later_of_victim and not later_of_victim & set(sink.sent)
        others = {f"{o}:{v}" for o, v, n in stored if o != victim_instance}
        assert others <= set(sink.sent)
    finally:
        pub.loop.close()


def test_retries_resume_at_the_first_unacknowledged_event_and_keep_instance_order(
    api: Any, database_url: str
) -> None:
    start_workflows(api, 6, threads=1)
    stored = events(database_url)
    victims = {f"{o}:{v}" for o, v, _ in stored[1::7]}
    sink = FlakySink(victims, times=2)  # each fails twice, then goes through
    pub = publisher(api, sink)
    try:
        assert pub.publish_batch() == len(stored)
    finally:
        pub.loop.close()
    assert api.outbox.status().pending == 0
    assert {f"{o}:{v}" for o, v, _ in stored} == set(sink.sent)
    first: dict[str, list[int]] = {}
    seen: set[str] = set()
    for ce_id in sink.sent:  # de-duplicated, as a consumer would
        if ce_id not in seen:
            seen.add(ce_id)
            instance, _, version = ce_id.rpartition(":")
            first.setdefault(instance, []).append(int(version))
    assert all(versions == sorted(versions) for versions in first.values())


def test_negative_control_a_reader_that_stores_the_position_before_acks_loses_events(
    api: Any, database_url: str
) -> None:
    """What the at-least-once rule prevents: store the position first, crash, lose events."""
    from infrastructure.bootstrap import outbox_tables

    start_workflows(api, 3, threads=1)
    stored = events(database_url)
    outbox = outbox_tables(api.core)
    records = outbox.read_after(outbox.position(), 50)
    outbox.advance(records[-1].position, [])  # position first ...
    # ... then the process dies before sending: a restarted publisher finds nothing to send
    assert outbox.read_after(outbox.position(), 50) == []
    assert len(stored) == len(records)  # every one of them lost for Kafka
