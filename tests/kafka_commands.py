"""Helpers for the Kafka command consumer's tests: per-test topics on the test broker, sending
command messages, reading replies and dead letters, and the consumer group's committed offsets."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

TENANT = "acme"
READ_SECONDS = 30.0


def approval(name: str) -> dict[str, Any]:
    """A definition `name`: one approval by role manager; approved ends it, rejected fails it."""
    return {
        "name": name,
        "nodes": [
            {"id": "approve", "type": "approval", "approver_role": "manager"},
            {"id": "done", "type": "end"},
            {"id": "no", "type": "end", "status": "failed"},
        ],
        "routes": [
            {"from": "approve", "to": "done", "outcome": "approved"},
            {"from": "approve", "to": "no", "outcome": "rejected"},
        ],
    }


@dataclass(frozen=True)
class Received:
    """One message read back: its value (JSON when it parses), headers and key."""

    raw: bytes
    headers: dict[str, bytes]
    key: bytes | None
    offset: int

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass(frozen=True)
class CommandTopics:
    """This test's own topics and consumer group, created on the broker."""

    bootstrap: str
    commands: str
    replies: str
    dlq: str
    group: str

    @classmethod
    def create(cls, broker: Any, *, partitions: int = 2, replies: bool = True) -> CommandTopics:
        tag = uuid.uuid4().hex[:8]
        topics = cls(
            broker.bootstrap,
            f"cmd-{tag}",
            f"cmd-{tag}.replies",
            f"cmd-{tag}.dlq",
            f"grp-{tag}",
        )
        broker.create_topic(topics.commands, partitions=partitions)
        broker.create_topic(topics.dlq, partitions=1)
        if replies:
            broker.create_topic(topics.replies, partitions=1)
        return topics

    def settings_env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "WAYMARK_COMMANDS_TOPIC": self.commands,
            "WAYMARK_COMMANDS_REPLIES_TOPIC": self.replies,
            "WAYMARK_COMMANDS_DLQ_TOPIC": self.dlq,
            "WAYMARK_COMMANDS_GROUP_ID": self.group,
        }

    def send(self, *messages: Any, tenant: str | None = TENANT, key: bytes | None = None) -> None:
        """Each message a dict (sent as JSON) or raw bytes, with the tenant header."""
        asyncio.run(self._send(messages, tenant, key))

    async def _send(self, messages: Any, tenant: str | None, key: bytes | None) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            for message in messages:
                value = message if isinstance(message, bytes) else json.dumps(message).encode()
                headers = [("waymark_tenant", tenant.encode())] if tenant else []
                await producer.send_and_wait(self.commands, value, key=key, headers=headers)
        finally:
            await producer.stop()

    def read(self, topic: str, count: int, timeout: float = READ_SECONDS) -> list[Received]:
        """The first `count` messages of `topic` (all partitions), waiting up to `timeout`."""
        return asyncio.run(self._read(topic, count, timeout))

    async def _read(self, topic: str, count: int, timeout: float) -> list[Received]:
        # Assigned partitions, no consumer group: nothing to join, read from the start.
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        got: list[Received] = []
        deadline = time.monotonic() + timeout
        try:
            partitions = await _partitions(consumer, topic)
            consumer.assign([TopicPartition(topic, p) for p in partitions])
            await consumer.seek_to_beginning()
            while len(got) < count and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    got.extend(Received(r.value, dict(r.headers), r.key, r.offset) for r in records)
        finally:
            await consumer.stop()
        return got

    def read_replies(self, count: int, timeout: float = READ_SECONDS) -> dict[str, dict[str, Any]]:
        """Replies by correlation id (waits for `count` of them)."""
        got = self.read(self.replies, count, timeout)
        assert len(got) >= count, f"{len(got)} of {count} replies: {[r.raw for r in got]}"
        return {r.json["correlation_id"]: r.json for r in got}

    def reply(self, correlation_id: str, count: int) -> dict[str, Any]:
        """The reply to `correlation_id`, once `count` replies are there."""
        found = self.read_replies(count)
        assert correlation_id in found, f"no reply to {correlation_id}: {list(found)}"
        return found[correlation_id]

    def committed(self) -> int:
        """The group's committed offsets summed over the partitions (messages done)."""
        return asyncio.run(self._committed())

    async def _committed(self) -> int:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            total = 0
            partitions = await _partitions(consumer, self.commands)
            for p in partitions:
                offset = await consumer.committed(TopicPartition(self.commands, p))
                total += offset or 0
            return total
        finally:
            await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> set[int]:
    deadline = time.monotonic() + READ_SECONDS
    while time.monotonic() < deadline:
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await consumer._client.force_metadata_update()  # noqa: SLF001 - no public refresh
        await asyncio.sleep(0.1)
    raise AssertionError(f"topic {topic} has no partitions")
