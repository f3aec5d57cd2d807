"""The Kafka command consumer: `waymark worker commands` (SPEC §5, topic `waymark.commands`).

Each message is one command (`application/command_messages.py`: start, resume, event,
cancel, complete_task) for the tenant named by its `waymark_tenant` header, run through the
same use case as the HTTP API. Delivery guarantees, in the order things happen to a message:

1. the command commits in PostgreSQL (or is refused: nothing is stored);
2. the outcome is published to the replies topic, with the message's correlation id;
3. only then is the message's offset committed for the consumer group.

A crash between 1 and 3 redelivers the message; every command is keyed (the message's
`idempotency_key`, else one derived from its place in the log: topic, partition, offset and
timestamp), so the repeat replays the stored result and applies nothing twice (at-least-once
consumption, effectively-once effects). Replies are at-least-once too.

A message that cannot be processed (not JSON, not a command, no tenant, an unexpected
error) is logged, copied to the dead-letter topic with the error in its headers, answered
with a failed reply, and skipped. A refused command (not found, bookmark already consumed,
invalid input ...) is an answer, not a poison message: a failed reply only. A transient
failure (database unavailable or timed out, concurrency conflict, broker unreachable for the
reply) is retried with backoff; after the last attempt the message is neither dead-lettered
nor committed: the consumer seeks back to it and the runner's tick backoff takes over, so
the partition resumes at that message once the dependency is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from application.command_messages import (
    InvalidMessageError,
    ParsedMessage,
    correlation_of,
    parse_message,
    problem,
    problem_of,
)
from application.errors import CommandConflictError
from infrastructure.container import CommandWorkerContainer
from workers.probes import run_until_stopped
from workers.runner import WorkerRunner

logger = logging.getLogger(__name__)

TENANT_HEADER = "waymark_tenant"
CORRELATION_HEADER = "waymark_correlation_id"
SOURCE = "kafka"
FIRST_RETRY_DELAY = 0.5
MAX_DLQ_DETAIL = 1000


class TransientFailureError(Exception):
    """A message could not be processed for now; it stays uncommitted."""


@dataclass(frozen=True)
class Outcome:
    """What the reply says about one message; `dead_letter` when it goes to the DLQ too."""

    kind: str | None
    correlation_id: str | None
    ok: bool
    body: dict[str, Any]
    replayed: bool = False
    dead_letter: bool = False


def transient_errors() -> tuple[type[BaseException], ...]:
    """Errors that say "not now" rather than "never": retry, never dead-letter."""
    import psycopg
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, RequestTimedOutError
    from eventsourcing.persistence import InterfaceError, OperationalError

    from infrastructure.postgres.datastore import DatabaseTimeoutError, DatabaseUnavailableError

    return (
        CommandConflictError,
        DatabaseUnavailableError,
        DatabaseTimeoutError,
        OperationalError,
        InterfaceError,
        psycopg.OperationalError,
        KafkaConnectionError,
        KafkaTimeoutError,
        RequestTimedOutError,
    )


class CommandWorker:
    """Consumes the command topic in a consumer group, one message at a time per fetch."""

    def __init__(self, container: CommandWorkerContainer):
        settings = container.settings
        self.container = container
        self.settings = settings
        self.commands = container.commands
        self.runner = WorkerRunner(
            self.tick,
            name="command-worker",
            poll_interval=settings.commands_poll_interval,
            shutdown_grace=settings.worker_shutdown_grace,
        )
        self.transient = transient_errors()
        self.loop = asyncio.new_event_loop()
        self.consumer: Any = None
        self.producer: Any = None
        self.handled = 0  # messages whose offsets were committed (for tests and logs)

    # --- the runner's tick ------------------------------------------------------------

    def tick(self) -> int:
        return self.loop.run_until_complete(self._tick())

    async def _tick(self) -> int:
        await self._connect()
        fetched = await self.consumer.getmany(
            timeout_ms=int(self.settings.commands_poll_interval * 1000),
            max_records=self.settings.commands_batch_size,
        )
        if not fetched:
            # The fetch itself waited the poll interval: fetch again at once.
            self.runner.wake()
            return 0
        done = 0
        pending = {tp: list(records) for tp, records in fetched.items()}
        try:
            for tp, records in pending.items():
                while records and not self.runner.stopping:
                    record = records[0]
                    await self._process(record)
                    await self._commit(tp, record.offset + 1)
                    records.pop(0)
                    done += 1
        finally:
            # Stopping, or a transient failure: what was fetched but not committed is
            # fetched again (here after the backoff, or by the group's next owner).
            for tp, records in pending.items():
                if records:
                    self._rewind(tp, records[0].offset)
        return done

    def _rewind(self, tp: Any, offset: int) -> None:
        try:
            self.consumer.seek(tp, offset)
        except Exception as e:  # noqa: BLE001 - no longer ours: its next owner reads it
            logger.info("command-worker: not rewinding %s to %s: %s", tp, offset, e)

    async def _connect(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        options = self.container.kafka_options
        if self.producer is None:
            producer = AIOKafkaProducer(acks="all", **options)
            await producer.start()
            self.producer = producer
        if self.consumer is None:
            consumer = AIOKafkaConsumer(
                self.settings.commands_topic,
                group_id=self.settings.commands_group_id,
                enable_auto_commit=False,  # committed by hand, after the command committed
                auto_offset_reset="earliest",  # a new group misses no command already sent
                **options,
            )
            await consumer.start()
            self.consumer = consumer
            logger.info(
                "command-worker: consuming %s in group %s (replies to %s, dead letters to %s)",
                self.settings.commands_topic,
                self.settings.commands_group_id,
                self.settings.commands_replies_topic,
                self.settings.commands_dlq_topic,
            )

    async def _commit(self, tp: Any, offset: int) -> None:
        from aiokafka.errors import CommitFailedError

        try:
            await self.consumer.commit({tp: offset})
        except CommitFailedError as e:
            # The group rebalanced: the partition's next owner gets the message again and
            # replays its stored result (every command is keyed).
            logger.warning("command-worker: offset %s of %s not committed: %s", offset, tp, e)
        self.handled += 1

    # --- one message ------------------------------------------------------------------

    async def _process(self, record: Any) -> None:
        outcome = await self._outcome(record)
        if outcome.dead_letter:
            await self._send(self.settings.commands_dlq_topic, *self._dead_letter(record, outcome))
        await self._send(self.settings.commands_replies_topic, *self._reply(record, outcome))

    async def _outcome(self, record: Any) -> Outcome:
        headers = _headers(record.headers)
        tenant = headers.get(TENANT_HEADER)
        correlation = headers.get(CORRELATION_HEADER)
        where = f"{record.topic}:{record.partition}:{record.offset}"
        try:
            if not tenant:
                raise InvalidMessageError(
                    f"the message has no {TENANT_HEADER} header",
                    [{"path": f"headers.{TENANT_HEADER}", "code": "missing", "message": "missing"}],
                )
            parsed = parse_message(
                record.value,
                tenant=tenant,
                # Stable across redeliveries of this message, different for any other (the
                # timestamp tells a recreated topic's offsets from the old ones).
                default_key=f"kafka:{where}:{record.timestamp}",
                source=SOURCE,
            )
        except InvalidMessageError as e:
            logger.warning("command-worker: message %s dead-lettered: %s", where, e)
            correlation = correlation or correlation_of(record.value)
            return Outcome(None, correlation, False, problem_of(e) or {}, dead_letter=True)
        return await self._run(parsed, correlation or parsed.correlation_id, where)

    async def _run(self, parsed: ParsedMessage, correlation: str | None, where: str) -> Outcome:
        from infrastructure.postgres.recorder import StoredEventTooLargeError

        attempts = self.settings.commands_retry_attempts
        for attempt in range(1, attempts + 1):
            try:
                result, replayed = await asyncio.to_thread(self.commands.run, parsed.command)
            except self.transient as e:
                if attempt == attempts or self.runner.stopping:
                    raise TransientFailureError(f"message {where}: {e}") from e
                delay = self._delay(attempt)
                logger.warning(
                    "command-worker: message %s failed (attempt %d of %d), retrying in %g s: %s",
                    where,
                    attempt,
                    attempts,
                    delay,
                    e,
                )
                await asyncio.sleep(delay)
                continue
            except StoredEventTooLargeError as e:
                body = problem(
                    "command-too-large", str(e), limit=e.limit, size=e.size, maximum=e.maximum
                )
                return Outcome(parsed.kind, correlation, False, body)
            except Exception as e:
                refused = problem_of(e)
                if refused is not None:  # an answer (not found, already consumed, ...)
                    return Outcome(parsed.kind, correlation, False, refused)
                logger.exception("command-worker: message %s dead-lettered", where)
                body = problem("internal-error", "an unexpected error occurred")
                return Outcome(parsed.kind, correlation, False, body, dead_letter=True)
            return Outcome(parsed.kind, correlation, True, result, replayed=replayed)
        raise AssertionError("unreachable")

    # --- what goes out ----------------------------------------------------------------

    def _reply(self, record: Any, outcome: Outcome) -> tuple[bytes | None, bytes, list[Any]]:
        reply: dict[str, Any] = {
            "correlation_id": outcome.correlation_id,
            "command": outcome.kind,
            "ok": outcome.ok,
            "result" if outcome.ok else "problem": outcome.body,
            "replayed": outcome.replayed,
            "source": {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
        }
        headers = [(k, v) for k, v in record.headers if k in (TENANT_HEADER, CORRELATION_HEADER)]
        if outcome.correlation_id and not any(k == CORRELATION_HEADER for k, _ in headers):
            headers.append((CORRELATION_HEADER, outcome.correlation_id.encode()))
        headers.append(("content-type", b"application/json"))
        return record.key, json.dumps(reply, default=str).encode(), headers

    def _dead_letter(self, record: Any, outcome: Outcome) -> tuple[bytes | None, bytes, list[Any]]:
        detail = str(outcome.body.get("detail", ""))[:MAX_DLQ_DETAIL]
        headers = list(record.headers) + [
            ("waymark_error_code", str(outcome.body.get("code", "")).encode()),
            ("waymark_error", detail.encode()),
            ("waymark_source_topic", record.topic.encode()),
            ("waymark_source_partition", str(record.partition).encode()),
            ("waymark_source_offset", str(record.offset).encode()),
        ]
        return record.key, record.value or b"", headers

    async def _send(
        self, topic: str, key: bytes | None, value: bytes, headers: Sequence[Any]
    ) -> None:
        from aiokafka.errors import MessageSizeTooLargeError

        attempts = self.settings.commands_retry_attempts
        for attempt in range(1, attempts + 1):
            try:
                await self.producer.send_and_wait(topic, value, key=key, headers=list(headers))
                return
            except MessageSizeTooLargeError:
                if topic != self.settings.commands_replies_topic:
                    raise
                value = _without_body(value)  # a huge result: the reply says it was left out
            except self.transient as e:
                if attempt == attempts or self.runner.stopping:
                    raise TransientFailureError(f"publishing to {topic}: {e}") from e
                logger.warning(
                    "command-worker: publishing to %s failed (attempt %d of %d), retrying: %r",
                    topic,
                    attempt,
                    attempts,
                    e,
                )
                await asyncio.sleep(self._delay(attempt))
        raise TransientFailureError(f"publishing to {topic}: gave up")

    def _delay(self, attempt: int) -> float:
        """0.5 s doubling per attempt, at most WAYMARK_COMMANDS_RETRY_MAX_DELAY."""
        return min(FIRST_RETRY_DELAY * 2 ** (attempt - 1), self.settings.commands_retry_max_delay)

    def close(self) -> None:
        """Leave the group (uncommitted messages go to the partitions' next owners)."""

        async def stop() -> None:
            for client in (self.consumer, self.producer):
                if client is not None:
                    try:
                        await client.stop()
                    except Exception:  # noqa: BLE001 - closing anyway
                        logger.warning("command-worker: closing a client failed", exc_info=True)

        try:
            self.loop.run_until_complete(stop())
            # The threads that ran commands (asyncio.to_thread) end with the loop.
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.consumer = self.producer = None
            self.loop.close()


def _headers(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers or ():
        try:
            out[key] = (value or b"").decode()
        except UnicodeDecodeError:
            continue
    return out


def _without_body(value: bytes) -> bytes:
    reply = json.loads(value)
    member = "result" if reply.get("ok") else "problem"
    reply[member] = {"omitted": "larger than the broker accepts"}
    return json.dumps(reply).encode()


def main(container: CommandWorkerContainer) -> None:
    """`waymark worker commands`: run until SIGTERM/SIGINT (the current message finishes and
    its offset is committed; then the consumer leaves its group)."""
    worker = CommandWorker(container)
    run_until_stopped(container, worker)
