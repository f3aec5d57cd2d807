"""Cron `schedule` triggers against the real PostgreSQL, with a clock the test controls:
ticks fire once, two scheduler replicas (each on a pool of its own) start each tick once,
both daylight-saving changes in Europe/Berlin, the catch-up policy after downtime,
disabling, validation at publish, and `started_by` on every kind of start."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from application.commands import DeliverEvent, StartInstance, TriggerWebhook
from application.errors import InvalidDefinitionError

pytestmark = pytest.mark.integration

TENANT = "acme"
BERLIN = "Europe/Berlin"


class SteppedClock:
    """The scheduler's clock: moved by the test, never by time."""

    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def scheduled(name: str, cron: str, timezone: str = BERLIN, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [{"id": "done", "type": "end"}],
        "triggers": [{"type": "schedule", "cron": cron, "timezone": timezone}],
        **extra,
    }


@pytest.fixture
def api(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    built = build_api(
        Settings(
            database_url=database_url,
            api_keys="k=acme:admin",
            tenant_secrets="acme=s3cret",
            db_pool_size=3,
        )
    )
    yield built
    built.close()


def scheduler_replica(database_url: str, clock: SteppedClock, catchup: str = "latest") -> Any:
    """A timer worker's container (its own core and pool) whose scheduler reads `clock`."""
    from infrastructure.settings import Settings
    from infrastructure.worker_bootstrap import build_timer_worker

    settings = Settings(database_url=database_url, db_pool_size=2, schedule_catchup=catchup)
    container = build_timer_worker(settings)
    container.schedules.clock = clock
    return container


@pytest.fixture
def replicas(database_url: str) -> Iterator[tuple[SteppedClock, list[Any]]]:
    clock = SteppedClock(utc(2027, 1, 4, 7))  # Monday 08:00 in Berlin
    built = [scheduler_replica(database_url, clock) for _ in range(2)]
    yield clock, built
    for container in built:
        container.close()


def publish(api: Any, document: dict[str, Any], at: datetime) -> None:
    """Publish, as if at `at` (the scheduler starts a new definition's ticks from then)."""
    api.definitions.publish(TENANT, document)
    with psycopg.connect(api.database_url) as conn:
        conn.execute(
            "UPDATE definitions SET created_at = %s WHERE tenant = %s AND name = %s",
            (at, TENANT, document["name"]),
        )


def started(database_url: str, definition: str) -> list[dict[str, Any]]:
    """The started_by of every instance of `definition`, by tick."""
    with psycopg.connect(database_url) as conn:
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM instances WHERE tenant = %s AND definition = %s",
                (TENANT, definition),
            )
        ]
    return ids


def ticks_of(api: Any, database_url: str, definition: str) -> list[str]:
    ticks = []
    for instance_id in started(database_url, definition):
        view = api.instances.get(TENANT, instance_id)
        assert view["started_by"]["kind"] == "schedule"
        ticks.append(view["started_by"]["tick"])
    return sorted(ticks)


def test_each_tick_starts_one_instance_and_records_it(
    api: Any, database_url: str, replicas: tuple[SteppedClock, list[Any]]
) -> None:
    clock, (scheduler, _) = replicas
    publish(api, scheduled("standup", "0 9 * * MON-FRI"), clock.at)
    service = scheduler.schedules

    # Given 08:00 in Berlin: nothing due yet, and the alarm is set for 09:00
    assert service.fire_due() == 0
    assert service.seconds_until_next() == 3600
    # When the clock passes 09:00 (08:00 UTC), and the scheduler looks again and again
    clock.advance(hours=1, seconds=2)
    assert service.fire_due() == 1
    assert service.fire_due() == 0
    clock.advance(minutes=30)
    assert service.fire_due() == 0
    # Then one instance, for that tick, says what started it
    assert ticks_of(api, database_url, "standup") == ["2027-01-04T08:00:00+00:00"]
    instance_id = started(database_url, "standup")[0]
    view = api.instances.get(TENANT, instance_id)
    assert view["started_by"] == {
        "kind": "schedule",
        "tick": "2027-01-04T08:00:00+00:00",
        "cron": "0 9 * * MON-FRI",
        "timezone": BERLIN,
    }
    history, _ = api.instances.history(TENANT, instance_id)
    assert history[0].type == "Started"
    assert history[0].data["started_by"]["tick"] == "2027-01-04T08:00:00+00:00"
    # And through the week: one per weekday morning, none at the weekend
    for _ in range(7 * 24):
        clock.advance(hours=1)
        service.fire_due()
    assert ticks_of(api, database_url, "standup") == [
        f"2027-01-{day:02d}T08:00:00+00:00" for day in (4, 5, 6, 7, 8, 11)
    ]


def test_two_replicas_start_each_tick_exactly_once(
    api: Any, database_url: str, replicas: tuple[SteppedClock, list[Any]]
) -> None:
    clock, schedulers = replicas
    publish(api, scheduled("every-minute", "* * * * *", "UTC"), clock.at)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def fire(container: Any) -> None:
        try:
            barrier.wait(5)
            container.schedules.fire_due()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    # Given two replicas that look at the same moments (the clock moves a minute a round)
    for _ in range(20):
        clock.advance(minutes=1)
        threads = [threading.Thread(target=fire, args=(c,)) for c in schedulers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert not errors
    # Then every tick started once
    ticks = ticks_of(api, database_url, "every-minute")
    assert len(ticks) == len(set(ticks)) == 20


def test_a_replica_that_computed_a_tick_already_started_finds_its_instance(
    api: Any, database_url: str, replicas: tuple[SteppedClock, list[Any]]
) -> None:
    clock, (first, second) = replicas
    publish(api, scheduled("hourly", "0 * * * *", "UTC"), clock.at)
    clock.advance(hours=1, seconds=1)
    assert first.schedules.fire_due() == 1
    # The second replica computed the same tick before the cursor moved (forget the cursor)
    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM schedule_ticks")
    assert second.schedules.fire_due() == 0
    assert len(ticks_of(api, database_url, "hourly")) == 1


def test_without_the_tick_key_the_second_replica_would_start_it_again(
    api: Any, database_url: str, replicas: tuple[SteppedClock, list[Any]], monkeypatch: Any
) -> None:
    # Negative control: a key that differs per replica (here: per call) lets both start.
    import uuid

    import application.schedules

    monkeypatch.setattr(application.schedules, "tick_key", lambda tick: str(uuid.uuid4()))
    clock, (first, second) = replicas
    publish(api, scheduled("hourly", "0 * * * *", "UTC"), clock.at)
    clock.advance(hours=1, seconds=1)
    first.schedules.fire_due()
    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM schedule_ticks")
    second.schedules.fire_due()
    assert len(started(database_url, "hourly")) == 2


@pytest.mark.parametrize(
    ("start", "tick"),
    [
        # 2027-03-28: clocks jump 02:00 CET → 03:00 CEST; 02:30 fires at the jump
        (utc(2027, 3, 27, 12), "2027-03-28T01:00:00+00:00"),
        # 2027-10-31: clocks go back 03:00 CEST → 02:00 CET; 02:30 fires once, the first time
        (utc(2027, 10, 30, 12), "2027-10-31T00:30:00+00:00"),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_daylight_saving_changes_in_berlin(
    api: Any,
    database_url: str,
    replicas: tuple[SteppedClock, list[Any]],
    start: datetime,
    tick: str,
) -> None:
    clock, (scheduler, _) = replicas
    clock.at = start
    publish(api, scheduled("nightly", "30 2 * * *"), clock.at)
    scheduler.schedules.fire_due()
    # Walk the night in 5-minute steps, as a scheduler woken by its alarm or poll would
    for _ in range(24 * 12):
        clock.advance(minutes=5)
        scheduler.schedules.fire_due()
    assert ticks_of(api, database_url, "nightly") == [tick]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("latest", ["2027-01-04T12:00:00+00:00"]),
        ("none", []),
        ("all", [f"2027-01-04T{h:02d}:00:00+00:00" for h in range(8, 13)]),
    ],
)
def test_catch_up_policy_after_downtime(
    api: Any, database_url: str, policy: str, expected: list[str]
) -> None:
    clock = SteppedClock(utc(2027, 1, 4, 7, 0, 1))
    scheduler = scheduler_replica(database_url, clock, catchup=policy)
    try:
        publish(api, scheduled("hourly", "0 * * * *", "UTC"), clock.at - timedelta(minutes=1))
        assert scheduler.schedules.fire_due() == 1  # 07:00, on time
        # The scheduler is down from 07:00:01 to 12:30: five ticks (08:00 .. 12:00) missed
        clock.at = utc(2027, 1, 4, 12, 30)
        scheduler.schedules.fire_due()
        ticks = ticks_of(api, database_url, "hourly")
        assert ticks == ["2027-01-04T07:00:00+00:00", *expected]
        # Nothing is fired twice afterwards
        assert scheduler.schedules.fire_due() == 0
    finally:
        scheduler.close()


def test_catch_up_all_is_bounded(api: Any, database_url: str) -> None:
    clock = SteppedClock(utc(2027, 1, 4, 7, 0, 30))
    scheduler = scheduler_replica(database_url, clock, catchup="all")
    try:
        publish(api, scheduled("minutely", "* * * * *", "UTC"), clock.at - timedelta(minutes=1))
        scheduler.schedules.fire_due()
        clock.advance(minutes=300)  # 300 ticks missed
        assert scheduler.schedules.fire_due() == 100  # the newest 100
        ticks = ticks_of(api, database_url, "minutely")
        assert len(ticks) == 101 and ticks[-1] == "2027-01-04T12:00:00+00:00"
    finally:
        scheduler.close()


def test_disabling_stops_it_and_enabling_does_not_fire_the_ticks_it_missed(
    api: Any, database_url: str, replicas: tuple[SteppedClock, list[Any]]
) -> None:
    clock, (scheduler, _) = replicas
    publish(api, scheduled("hourly", "0 * * * *", "UTC"), clock.at)
    clock.advance(hours=1, seconds=1)  # 08:00 fires
    assert scheduler.schedules.fire_due() == 1
    # When disabled, two ticks pass
    api.definitions.set_enabled(TENANT, "hourly", False)
    for _ in range(2):
        clock.advance(hours=1)
        assert scheduler.schedules.fire_due() == 0
    assert scheduler.schedules.seconds_until_next() is None  # no alarm for it
    # Enabled again: the missed ticks stay missed, the next one fires
    api.definitions.set_enabled(TENANT, "hourly", True)
    assert scheduler.schedules.fire_due() == 0
    clock.advance(hours=1)
    assert scheduler.schedules.fire_due() == 1
    assert ticks_of(api, database_url, "hourly") == [
        "2027-01-04T08:00:00+00:00",
        "2027-01-04T11:00:00+00:00",
    ]


@pytest.mark.parametrize(
    ("trigger", "path"),
    [
        ({"type": "schedule", "cron": "61 * * * *"}, "$.triggers[0].cron"),
        ({"type": "schedule", "cron": "0 0 31 2 *"}, "$.triggers[0].cron"),
        ({"type": "schedule", "cron": "0 9 * * *", "timezone": "Berlin"}, "$.triggers[0].timezone"),
    ],
)
def test_publish_refuses_a_schedule_that_cannot_run(
    api: Any, trigger: dict[str, Any], path: str
) -> None:
    document = {"name": "bad", "nodes": [{"id": "done", "type": "end"}], "triggers": [trigger]}
    with pytest.raises(InvalidDefinitionError) as refused:
        api.definitions.publish(TENANT, document)
    assert [p.path for p in refused.value.problems] == [path]


def test_started_by_api_event_webhook_and_parent(api: Any) -> None:
    from application.callbacks import sign
    from domain.origin import by_api

    child = {
        "name": "child",
        "nodes": [{"id": "wait", "type": "wait"}, {"id": "done", "type": "end"}],
    }
    child["routes"] = [{"from": "wait", "to": "done"}]
    api.definitions.publish(TENANT, child)
    parent = {
        "name": "parent",
        "nodes": [
            {"id": "call", "type": "sub_workflow", "definition": "child"},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "call", "to": "done"}],
        "triggers": [{"type": "event", "event": "order.placed"}, {"type": "webhook"}],
    }
    api.definitions.publish(TENANT, parent)

    by_key, _ = api.instances.start(StartInstance(TENANT, "parent", started_by=by_api("key-1")))
    assert by_key["started_by"] == {"kind": "api", "key_name": "key-1"}
    plain, _ = api.instances.start(StartInstance(TENANT, "parent"))
    assert plain["started_by"] == {"kind": "api"}

    result, _ = api.instances.deliver_event(
        DeliverEvent(TENANT, "order.placed", correlation="o-1", payload={})
    )
    [event_started] = result["started"]
    assert api.instances.get(TENANT, event_started)["started_by"] == {
        "kind": "event",
        "event_type": "order.placed",
        "correlation": "o-1",
    }

    body = b"{}"
    at = int(datetime.now(UTC).timestamp())
    hooked, _ = api.webhooks.trigger(
        TriggerWebhook(TENANT, "parent", body, sign("s3cret", body, at, "/v1/webhooks/parent"))
    )
    assert hooked["started_by"] == {"kind": "webhook"}

    child_id = by_key["bookmarks"][0]["child_id"]
    assert api.instances.get(TENANT, child_id)["started_by"] == {
        "kind": "parent",
        "parent_id": by_key["id"],
        "node_id": "call",
    }
