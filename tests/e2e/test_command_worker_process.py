"""`waymark worker commands` as a real process against the test broker and PostgreSQL:
offsets are committed only after the command (and its reply), so a worker killed with
SIGKILL in between redelivers the message on restart, and the repeat applies nothing twice;
SIGTERM finishes the current message and exits 0."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.conftest import server_env, terminate, unique, wait_for, waymark
from tests.e2e.worker_processes import WorkerProcess
from tests.kafka_commands import TENANT, CommandTopics, approval

pytestmark = pytest.mark.e2e


@pytest.fixture
def published(database_url: str) -> Iterator[str]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    api = build_api(Settings(database_url=database_url))
    name = unique("po")
    try:
        api.definitions.publish(TENANT, approval(name))
        yield name
    finally:
        api.close()


def instances_of(database_url: str, definition: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM instances WHERE definition = %s", (definition,)
        ).fetchone()
    return int(row[0]) if row else 0


def worker_env(database_url: str, topics: CommandTopics, tmp_path: Path) -> dict[str, str]:
    return server_env(
        database_url,
        tmp_path,
        **topics.settings_env(),
        WAYMARK_COMMANDS_POLL_INTERVAL="0.2",
        WAYMARK_COMMANDS_RETRY_MAX_DELAY="0.5",
    )


def start_worker(env: dict[str, str], log: Path) -> WorkerProcess:
    """`waymark worker commands`, once its consumer has started."""
    worker = WorkerProcess(waymark("worker", "commands", env=env, log=log), log)
    try:
        worker.wait_for_log("command-worker: consuming")
    except BaseException:
        terminate(worker.process)  # never leave a worker behind
        raise
    return worker


def kill(worker: WorkerProcess) -> None:
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(10)


def test_sigkill_after_the_db_commit_before_the_offset_commit_applies_once(
    database_url: str, published: str, kafka_broker: Any, tmp_path: Path
) -> None:
    # Given a worker whose replies cannot be published (a replies topic name the broker
    # refuses): it commits the command, then never commits the message's offset
    topics = CommandTopics.create(kafka_broker)
    env = worker_env(database_url, topics, tmp_path)
    broken = {**env, "WAYMARK_COMMANDS_REPLIES_TOPIC": "no such topic!"}
    worker = start_worker(broken, tmp_path / "worker-1.log")
    try:
        topics.send({"command": "start", "definition": published, "correlation_id": "once"})
        wait_for(lambda: instances_of(database_url, published) == 1, what="the instance")
        # (the worker now waits for metadata of a topic that will never exist)
        assert topics.committed() == 0

        # When the worker is killed between the DB commit and the offset commit
        kill(worker)
    finally:
        terminate(worker.process)

    # Then a restarted worker gets the message again, replays the stored result, replies,
    # and commits: exactly one instance
    worker = start_worker(env, tmp_path / "worker-2.log")
    try:
        reply = topics.reply("once", 1)
        assert reply["ok"] and reply["replayed"] is True, reply
        wait_for(lambda: topics.committed() == 1, what="the offset committed")
        assert instances_of(database_url, published) == 1

        # ... and SIGTERM ends it cleanly
        assert terminate(worker.process) == 0
    finally:
        terminate(worker.process)
    assert "stopped" in worker.text()


def test_sigkill_mid_stream_then_restart_every_message_has_exactly_one_effect(
    database_url: str, published: str, kafka_broker: Any, tmp_path: Path
) -> None:
    # Given 40 start commands without idempotency keys (keys derived from their offsets)
    topics = CommandTopics.create(kafka_broker)
    count = 40
    ids = [f"m-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    topics.send(*({"command": "start", "definition": published, "correlation_id": c} for c in ids))
    env = worker_env(database_url, topics, tmp_path)

    # When a worker is killed while it works through them, and another one takes over
    worker = start_worker(env, tmp_path / "worker-1.log")
    try:
        wait_for(lambda: instances_of(database_url, published) >= 5, what="some progress")
        kill(worker)
    finally:
        terminate(worker.process)
    done_before = instances_of(database_url, published)
    worker = start_worker(env, tmp_path / "worker-2.log")
    try:
        # Then every message is answered and applied exactly once
        replies = topics.read_replies(count)
        assert set(ids) <= set(replies)
        wait_for(lambda: topics.committed() == count, what="every offset committed")
        assert instances_of(database_url, published) == count
        assert all(r["ok"] for r in replies.values())
    finally:
        assert terminate(worker.process) == 0
    assert done_before < count, "the kill came too late to test anything"
