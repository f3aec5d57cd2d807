"""The consumer of `outbox-lag` (bench/outbox_lag.py), a process of its own:
`python -m bench.outbox_consumer BOOTSTRAP TOPIC`.

It joins a consumer group on the topic (from the earliest offset), prints `ready` once it has
its partitions, and records for every message its `waymark_position` header, its CloudEvent
`ce_time` (the event's timestamp, taken by the command just before its commit) and when it
was consumed (wall clock; same machine, same clock); the audit log's entries, which the relay
exports too (with positions of their own sequence), are skipped. Then it reads one line on stdin,
`<first> <last> <expected>`: it keeps consuming until it has seen `expected` distinct
positions in `first..last` (or `WAIT_SECONDS` pass), prints one JSON line — the lags
(consumed - ce_time, seconds) of those positions, how many it saw, duplicates — and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime
from typing import Any

WAIT_SECONDS = 60.0
POSITION_HEADER = "waymark_position"


async def consume(bootstrap: str, topic: str) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-lag-{time.time_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,  # a consumer that waits long for a full fetch would add lag
    )
    await consumer.start()
    seen: dict[int, float] = {}  # position -> lag (first delivery)
    duplicates = 0
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise RuntimeError("no partitions assigned within 30 s")
            await consumer.getmany(timeout_ms=100)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        request = loop.run_in_executor(None, sys.stdin.readline)
        stop_at: float | None = None
        first = last = expected = 0
        while True:
            batches = await consumer.getmany(timeout_ms=50, max_records=2000)
            now = time.time()
            for messages in batches.values():
                for message in messages:
                    headers = dict(message.headers)
                    if headers["ce_id"].startswith(b"audit:"):
                        continue  # the audit log's export: its own sequence of positions
                    position = int(headers[POSITION_HEADER])
                    if position in seen:
                        duplicates += 1
                        continue
                    at = datetime.fromisoformat(headers["ce_time"].decode()).timestamp()
                    seen[position] = now - at
            if stop_at is None and request.done():
                first, last, expected = (int(x) for x in request.result().split())
                stop_at = time.monotonic() + WAIT_SECONDS
            if stop_at is not None:
                inside = [lag for p, lag in seen.items() if first <= p <= last]
                if len(inside) >= expected or time.monotonic() > stop_at:
                    return {
                        "expected": expected,
                        "consumed": len(inside),
                        "duplicates": duplicates,
                        "lags": [round(x, 5) for x in inside],
                    }
    finally:
        await consumer.stop()


def main() -> int:
    bootstrap, topic = sys.argv[1], sys.argv[2]
    try:
        result = asyncio.run(consume(bootstrap, topic))
    except KeyboardInterrupt:
        return 130
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
