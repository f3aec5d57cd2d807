"""Helpers of the outbox tests: a Kafka consumer in a thread, the committed events, the
checks (nothing lost, per-instance order), workflows started from many threads, and the
publisher as a real `waymark worker outbox` process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

TENANT = "acme"
WAIT_THEN_END = {
    "name": "wait-then-end",
    "nodes": [
        {"id": "approve", "type": "wait"},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "approve", "to": "done"}],
}


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@dataclass(frozen=True)
class Received:
    key: bytes
    headers: dict[str, bytes]
    value: bytes
    partition: int
    at: float  # time.time() when the consumer got it

    @property
    def ce_id(self) -> str:
        return self.headers["ce_id"].decode()

    @property
    def position(self) -> int:
        return int(self.headers["waymark_position"])


class Consumer:
    """Reads the topic from the beginning in a thread until closed; `records` grows."""

    def __init__(self, bootstrap: str, topic: str, *, audit: bool = False) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        # Audit entries share the topic (`waymark.audit.recorded`, their own sequence): the
        # instance-event checks leave them out unless asked (tests/integration/
        # test_audit_export.py checks them).
        self.audit = audit
        self.records: list[Received] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Consumer:
        self._thread.start()
        wait_for(self._ready.is_set, 30, "the consumer to join")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.records)

    def ce_ids(self) -> set[str]:
        return {r.ce_id for r in self.snapshot()}

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=f"test-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=20,  # measure the publisher's lag, not the consumer's long poll
        )
        await consumer.start()
        self._ready.set()
        try:
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                now = time.time()
                with self._lock:
                    for tp, messages in batches.items():
                        for m in messages:
                            if not self.audit and (
                                dict(m.headers).get("ce_type") == b"waymark.audit.recorded"
                            ):
                                continue
                            self.records.append(
                                Received(m.key, dict(m.headers), m.value, tp.partition, now)
                            )
        finally:
            await consumer.stop()


def committed_events(database_url: str) -> dict[str, int]:
    """{ce_id: position} of every event stored."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT originator_id, originator_version, notification_id FROM waymark_events"
        ).fetchall()
    return {f"{o}:{v}": n for o, v, n in rows}


def missing(committed: dict[str, int], seen: set[str]) -> set[str]:
    return set(committed) - seen


def order_violations(records: list[Received]) -> list[str]:
    """Instances whose events, first occurrences kept (de-duplicated by ce_id), are not in
    version order; and messages of one key on two partitions."""
    first: dict[str, list[int]] = {}
    partitions: dict[bytes, set[int]] = {}
    seen: set[str] = set()
    for r in records:
        partitions.setdefault(r.key, set()).add(r.partition)
        if r.ce_id in seen:
            continue
        seen.add(r.ce_id)
        instance, _, version = r.ce_id.rpartition(":")
        first.setdefault(instance, []).append(int(version))
    bad = [i for i, versions in first.items() if versions != sorted(versions)]
    bad += [k.decode() for k, parts in partitions.items() if len(parts) > 1]
    return bad


def start_workflows(container: Any, count: int, threads: int, resume: bool = True) -> list[str]:
    """`count` instances started (and resumed) from `threads` threads at once."""
    from application.commands import ResumeBookmark, StartInstance

    def one(_: int) -> str:
        view, _created = container.instances.start(StartInstance(TENANT, "wait-then-end"))
        instance_id = view["id"]
        if resume:
            bookmark = next(b["id"] for b in view["bookmarks"] if b["kind"] == "wait")
            container.instances.resume(
                ResumeBookmark(TENANT, uuid.UUID(str(instance_id)), bookmark, {"ok": True})
            )
        return str(instance_id)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def outbox_env(database_url: str, bootstrap: str, topic: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "WAYMARK_KAFKA_TOPIC": topic,
        "WAYMARK_KAFKA_IDEMPOTENT": "false",
        "WAYMARK_OUTBOX_POLL_INTERVAL": "0.5",
        "WAYMARK_OUTBOX_LEADER_RETRY_INTERVAL": "0.3",
        "WAYMARK_OUTBOX_RETRY_INITIAL_DELAY": "0.1",
        "WAYMARK_OUTBOX_RETRY_MAX_DELAY": "1",
        "WAYMARK_KAFKA_REQUEST_TIMEOUT": "3",
        "WAYMARK_LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


@contextmanager
def outbox_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real `waymark worker outbox` process (killed at the end if still running)."""
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "api.cli", "worker", "outbox"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def leads(log: Path) -> bool:
    return "acquired (this process leads)" in log.read_text(errors="replace")


class AsgiClient:
    """The real FastAPI app over the test's container (httpx ASGITransport, no lifespan)."""

    def __init__(self, container: Any) -> None:
        from api.app import create_app

        self.app = create_app(lambda: container)
        self.app.state.container = container

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        import httpx

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)
