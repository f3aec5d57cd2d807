"""The Kafka command consumer against the real test broker and PostgreSQL: every command kind
round-trips with a reply, a repeated message applies nothing twice, a malformed one is
dead-lettered while the consumer goes on, and transient failures are retried, never
dead-lettered or committed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.e2e.conftest import unique, wait_for
from tests.kafka_commands import TENANT, CommandTopics, approval

pytestmark = pytest.mark.integration


@dataclass
class Rig:
    topics: CommandTopics
    api: Any
    worker: Any
    database_url: str
    thread: Any

    def history_types(self, instance_id: str) -> list[str]:
        entries, _ = self.api.instances.history(TENANT, uuid.UUID(instance_id))
        return [e.type for e in entries]

    def task_ids(self, instance_id: str) -> list[str]:
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT id FROM tasks WHERE instance_id = %s", (uuid.UUID(instance_id),)
            ).fetchall()
        return [r[0] for r in rows]

    def instances_of(self, definition: str) -> int:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM instances WHERE definition = %s", (definition,)
            ).fetchone()
        return int(row[0]) if row else 0


def _settings(database_url: str, topics: CommandTopics, **extra: Any) -> Any:
    from infrastructure.settings import Settings

    return Settings(
        database_url=database_url,
        kafka_bootstrap_servers=topics.bootstrap,
        commands_topic=topics.commands,
        commands_replies_topic=topics.replies,
        commands_dlq_topic=topics.dlq,
        commands_group_id=topics.group,
        commands_poll_interval=0.2,
        commands_retry_attempts=3,
        commands_retry_max_delay=0.2,
        **extra,
    )


@pytest.fixture
def rig(database_url: str, kafka_broker: Any) -> Iterator[Rig]:
    from infrastructure.bootstrap import build_api
    from infrastructure.worker_bootstrap import build_command_worker
    from workers.command_worker import CommandWorker

    topics = CommandTopics.create(kafka_broker)
    settings = _settings(database_url, topics)
    api = build_api(settings)
    worker = CommandWorker(build_command_worker(settings, core=api.core))
    thread = worker.runner.start_in_thread()
    try:
        yield Rig(topics, api, worker, database_url, thread)
    finally:
        worker.runner.stop(30)
        thread.join(30)
        worker.close()
        api.close()


def waits(name: str, event: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {
                "id": "payment",
                "type": "wait",
                "event": event,
                "correlation": "input.order_id",
                "result_var": "paid",
            },
            {"id": "shipment", "type": "wait", "result_var": "shipped"},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "payment", "to": "shipment"}, {"from": "shipment", "to": "done"}],
    }


def test_every_command_kind_round_trips_with_a_reply(rig: Rig) -> None:
    topics, replies = rig.topics, 0
    po, shop, event = unique("po"), unique("shop"), unique("paid")
    rig.api.definitions.publish(TENANT, approval(po))
    rig.api.definitions.publish(TENANT, waits(shop, event))

    # start (twice: one to complete, one to cancel) and a start of the waiting definition
    topics.send(
        {"command": "start", "definition": po, "input": {"n": 1}, "correlation_id": "s1"},
        {"command": "start", "definition": po, "correlation_id": "s2"},
        {
            "command": "start",
            "definition": shop,
            "input": {"order_id": "o-1"},
            "correlation_id": "s3",
        },
    )
    replies += 3
    got = topics.read_replies(replies)
    assert all(got[c]["ok"] and got[c]["command"] == "start" for c in ("s1", "s2", "s3")), got
    first, second, shop_id = (got[c]["result"]["id"] for c in ("s1", "s2", "s3"))
    assert got["s1"]["result"]["status"] == "suspended"
    assert got["s3"]["result"]["correlation_id"] == "s3"  # a start's correlation id is its own

    # complete_task
    (task_id,) = rig.task_ids(first)
    topics.send(
        {
            "command": "complete_task",
            "task_id": task_id,
            "outcome": "approved",
            "comment": "fine",
            "user": "ann",
            "correlation_id": "c1",
        }
    )
    replies += 1
    done = topics.reply("c1", replies)
    assert done["ok"] and done["result"]["status"] == "completed", done

    # cancel
    topics.send(
        {"command": "cancel", "instance_id": second, "reason": "no", "correlation_id": "x1"}
    )
    replies += 1
    cancelled = topics.reply("x1", replies)
    assert cancelled["ok"] and cancelled["result"]["status"] == "cancelled", cancelled

    # event: resumes the waiting payment step
    topics.send(
        {
            "command": "event",
            "type": event,
            "correlation": "o-1",
            "payload": {"amount": 5},
            "correlation_id": "e1",
        }
    )
    replies += 1
    delivered = topics.reply("e1", replies)
    assert delivered["ok"], delivered
    assert delivered["result"]["resumed"] == [
        {"instance_id": shop_id, "bookmark_id": delivered["result"]["resumed"][0]["bookmark_id"]}
    ]

    # resume: the shipment step, by bookmark id
    view = rig.api.instances.get(TENANT, uuid.UUID(shop_id))
    (bookmark,) = [b for b in view["bookmarks"] if b["node_id"] == "shipment"]
    topics.send(
        {
            "command": "resume",
            "instance_id": shop_id,
            "bookmark_id": bookmark["id"],
            "payload": {"carrier": "ups"},
            "correlation_id": "r1",
        }
    )
    replies += 1
    resumed = topics.reply("r1", replies)
    assert resumed["ok"], resumed
    final = rig.api.instances.get(TENANT, uuid.UUID(shop_id))
    assert final["status"] == "completed"
    assert final["variables"]["shipped"] == {"carrier": "ups"}
    assert final["variables"]["paid"] == {"amount": 5}
    wait_for(lambda: topics.committed() == 7, what="every offset committed")
    assert topics.read(topics.dlq, 1, timeout=1) == []


def test_a_repeated_message_applies_nothing_twice(rig: Rig) -> None:
    topics = rig.topics
    name = unique("wait")
    rig.api.definitions.publish(TENANT, waits(name, unique("never")))
    start = {
        "command": "start",
        "definition": name,
        "input": {"order_id": "o"},
        "idempotency_key": "k",
    }
    topics.send({**start, "correlation_id": "a"}, {**start, "correlation_id": "b"}, key=b"k")
    got = topics.read_replies(2)
    assert got["a"]["result"]["id"] == got["b"]["result"]["id"]
    assert [got["a"]["replayed"], got["b"]["replayed"]] == [False, True]
    assert rig.instances_of(name) == 1

    instance_id = got["a"]["result"]["id"]
    (payment,) = rig.api.instances.get(TENANT, uuid.UUID(instance_id))["bookmarks"]
    resume = {
        "command": "resume",
        "instance_id": instance_id,
        "bookmark_id": payment["id"],
        "payload": 1,
        "idempotency_key": "k-resume",
    }
    topics.send({**resume, "correlation_id": "c"}, {**resume, "correlation_id": "d"}, key=b"k")
    got = topics.read_replies(4)
    assert got["c"]["ok"] and got["d"]["ok"], got
    assert got["d"]["replayed"] and got["d"]["result"] == got["c"]["result"]
    assert rig.history_types(instance_id).count("BookmarkResumed") == 1


def test_a_malformed_message_is_dead_lettered_and_the_consumer_goes_on(rig: Rig) -> None:
    topics = rig.topics
    name = unique("po")
    rig.api.definitions.publish(TENANT, approval(name))

    # Given three messages no command can come from, a refused command, and a good one
    topics.send(b"not json {")
    topics.send(
        {"command": "start", "definition": name, "correlation_id": "no-tenant"}, tenant=None
    )
    topics.send(
        {"command": "launch", "definition": name, "correlation_id": "bad-kind"},
        {"command": "resume", "instance_id": "nope", "correlation_id": "bad-id"},
        {"command": "cancel", "instance_id": str(uuid.uuid4()), "correlation_id": "refused"},
        {"command": "start", "definition": name, "correlation_id": "good"},
    )

    # Then the four malformed ones are in the DLQ, with the error and the original value
    dead = topics.read(topics.dlq, 4)
    assert len(dead) == 4
    codes = [d.headers["waymark_error_code"] for d in dead]
    assert sorted(codes) == [
        b"invalid-json",
        b"invalid-request",
        b"invalid-request",
        b"invalid-request",
    ]
    assert b"not json {" in [d.raw for d in dead]
    assert all(d.headers["waymark_source_topic"] == topics.commands.encode() for d in dead)
    # ... every message is answered (the unparseable one without a correlation id)
    got = topics.read_replies(6)
    assert got["no-tenant"]["problem"]["code"] == "invalid-request"
    assert got["bad-kind"]["problem"]["errors"][0]["code"] == "union_tag_invalid"
    assert got["bad-id"]["problem"]["errors"][0]["path"] == "$.instance_id"
    # ... a refused command is an answer, not a poison message: a reply, no dead letter
    assert got["refused"]["ok"] is False
    assert got["refused"]["problem"]["code"] == "not-found"
    assert got["refused"]["problem"]["type"] == "https://waymark.dev/problems/not-found"
    # ... and the consumer went on
    assert got["good"]["ok"] and got["good"]["result"]["status"] == "suspended"
    wait_for(lambda: topics.committed() == 6, what="every offset committed")


class Flaky:
    """The real dispatcher behind a fault: the first `failures` calls raise `error`."""

    def __init__(self, real: Any, failures: int, error: BaseException):
        self.real, self.failures, self.error, self.calls = real, failures, error, 0

    def run(self, command: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.real.run(command)


def test_transient_failures_are_retried_and_never_dead_lettered(rig: Rig) -> None:
    from infrastructure.postgres.datastore import DatabaseUnavailableError

    topics, worker = rig.topics, rig.worker
    name = unique("po")
    rig.api.definitions.publish(TENANT, approval(name))
    # Given a database that is unavailable for 5 calls (3 attempts per tick here)
    flaky = Flaky(worker.commands, 5, DatabaseUnavailableError("database blinked"))
    worker.commands = flaky
    worker.runner.poll_interval = 0.1  # the tick backoff after giving up

    topics.send({"command": "start", "definition": name, "correlation_id": "t1"})

    # Then the message was tried 3 times, given up on (not committed, not dead-lettered),
    # fetched again, and applied once the database came back
    reply = topics.reply("t1", 1)
    assert reply["ok"] and reply["replayed"] is False, reply
    assert flaky.calls == 6
    assert rig.instances_of(name) == 1
    assert topics.read(topics.dlq, 1, timeout=1) == []
    wait_for(lambda: topics.committed() == 1, what="the offset committed")


def test_an_unexpected_error_is_dead_lettered(rig: Rig) -> None:
    topics, worker = rig.topics, rig.worker
    name = unique("po")
    rig.api.definitions.publish(TENANT, approval(name))
    worker.commands = Flaky(worker.commands, 1, RuntimeError("a bug"))

    topics.send(
        {"command": "start", "definition": name, "correlation_id": "boom"},
        {"command": "start", "definition": name, "correlation_id": "fine"},
        key=b"same-partition",
    )

    got = topics.read_replies(2)
    assert got["boom"]["problem"]["code"] == "internal-error"
    assert "a bug" not in str(got["boom"])  # no internals in replies
    assert got["fine"]["ok"]
    (dead,) = topics.read(topics.dlq, 1)
    assert dead.headers["waymark_error_code"] == b"internal-error"
    assert dead.json["correlation_id"] == "boom"


class Slow:
    """The real dispatcher, but each call first waits until `release` is set."""

    def __init__(self, real: Any):
        import threading

        self.real, self.started, self.release = real, threading.Event(), threading.Event()

    def run(self, command: Any) -> Any:
        self.started.set()
        self.release.wait(30)
        return self.real.run(command)


def test_stopping_finishes_the_current_message_and_commits_it(rig: Rig) -> None:
    topics, worker = rig.topics, rig.worker
    name = unique("po")
    rig.api.definitions.publish(TENANT, approval(name))
    slow = Slow(worker.commands)
    worker.commands = slow
    topics.send(
        {"command": "start", "definition": name, "correlation_id": "current"},
        {"command": "start", "definition": name, "correlation_id": "next"},
        key=b"one-partition",
    )
    # Given a worker in the middle of a command
    assert slow.started.wait(30)

    # When it is told to stop (SIGTERM does this) while the command runs
    worker.runner.stop()
    slow.release.set()
    rig.thread.join(30)
    assert not rig.thread.is_alive()

    # Then the current message was finished, answered and committed; the next one was not
    # started (it stays for the group's next consumer)
    assert topics.reply("current", 1)["ok"]
    assert topics.committed() == 1
    assert rig.instances_of(name) == 1
