"""The outbox publisher: every stored event, in position order, to Kafka (at-least-once).

One batch (`publish_batch`):
1. read up to `batch_size` events after the stored position (the event store is the outbox:
   see infrastructure/postgres/outbox.py for why tailing the notification ids skips none);
2. send them, all at once: a sink with `send_many` (KafkaSink) puts each partition's share
   in record batches and hands a partition's next batch to the producer only once the broker
   acknowledged the previous one; a record batch is appended whole or not at all, so an
   instance's events (one key, one partition) can never overtake each other, even without an
   idempotent producer, and a batch costs about one broker round trip, not one per event of
   its busiest instance. A sink with only `send` gets the events of one instance one after
   another (each waits for the acknowledgement), different instances concurrently;
3. store the new position only for the prefix of the batch the broker acknowledged (or that
   was dead-lettered), in one transaction with the dead letters. A crash anywhere before
   that republishes the batch: duplicates, never gaps. Consumers de-duplicate by `ce_id`;
4. what failed is retried with tenacity (SPEC §6: 5 attempts, backoff x2.0, max 30 s), from
   the first unacknowledged event; after the last attempt the batch fails and the worker's
   runner backs off, the position still where the broker's acknowledgements left it.

An event that can never be published (too large for the broker, undecodable) becomes a dead
letter and does not hold back the rest. The circuit breaker (SPEC rule) stops hammering a
dead broker: while it is open, sends fail at once and the retries wait it out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import pybreaker
from aiokafka.errors import MessageSizeTooLargeError
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from infrastructure import metrics
from infrastructure.kafka import KafkaMessage, to_message
from infrastructure.postgres.outbox import OutboxRecord, PostgresOutbox
from infrastructure.tracing import inject_headers, publish_span

logger = logging.getLogger(__name__)

# Errors about the message itself: retrying cannot help, so it is dead-lettered at once.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (MessageSizeTooLargeError,)


class EventSink(Protocol):
    """Where messages go (the Kafka producer); `send` returns once the broker acknowledged.

    A sink may also have `send_many(messages) -> list[BaseException | None]` (one outcome per
    message, None = acknowledged) that keeps the messages of one key in order: once one of
    them failed, none after it was sent. The publisher then sends a batch in one call."""

    async def send(self, message: KafkaMessage) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """SPEC §6: 5 attempts, backoff x2.0, max delay 30 s (first delay `initial`)."""

    attempts: int = 5
    initial: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 30.0


class PublishingStoppedError(Exception):
    """The worker is stopping: the retries end (the position stays where it is)."""


class PublishFailedError(Exception):
    """Part of a batch was not acknowledged after every attempt (the position stays)."""

    def __init__(self, position: int, cause: BaseException):
        super().__init__(
            f"the broker did not acknowledge the event at position {position}: "
            f"{type(cause).__name__}: {cause}"
        )
        self.position = position
        self.cause = cause


@dataclass
class _Outcome:
    ok: bool = False
    dead: str | None = None  # why it can never be published
    error: BaseException | None = None  # retryable failure (or not attempted: None, not ok)


class OutboxPublisher:
    """Publishes batches of stored events; `publish_batch()` is one worker tick's work."""

    def __init__(
        self,
        outbox: PostgresOutbox,
        sink: EventSink,
        *,
        batch_size: int = 500,
        retry: RetryPolicy | None = None,
        breaker: pybreaker.CircuitBreaker | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.sink = sink
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()
        self.breaker = breaker
        # How the retries wait (tenacity's time.sleep unless given): the worker passes one
        # that a shutdown interrupts.
        self.sleep = sleep
        self.loop = asyncio.new_event_loop()
        self.published = 0  # acknowledged messages since start (duplicates included)

    def publish_batch(self) -> int:
        """Publish the next batch (and requested re-drives); how many events it handled."""
        handled = self._redrive()
        position = self.outbox.position()
        records = self.outbox.read_after(position, self.batch_size)
        if not records:
            return handled
        remaining = records
        for attempt in self._retrying():
            with attempt:
                remaining = self._attempt(remaining)
        return handled + len(records)

    def publish_audit_batch(self) -> int:
        """Send the audit entries not yet exported (in id order), mark the acknowledged ones;
        a failure leaves the rest for the next tick (the worker's runner backs off)."""
        envelopes = self.outbox.unexported_audit(self.batch_size)
        if not envelopes:
            return 0
        acknowledged: list[int] = []
        try:
            for found in envelopes:
                self.loop.run_until_complete(self.sink.send(to_message(found)))
                acknowledged.append(found.position)
                self.published += 1
        finally:
            if acknowledged:
                self.outbox.audit_exported(acknowledged)
        return len(acknowledged)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.sink.stop())
        finally:
            self.loop.close()

    def _retrying(self) -> Retrying:
        policy = self.retry
        kwargs = {} if self.sleep is None else {"sleep": self.sleep}
        return Retrying(
            stop=stop_after_attempt(policy.attempts),
            wait=wait_exponential(
                multiplier=policy.initial, exp_base=policy.multiplier, max=policy.max_delay
            ),
            retry=retry_if_exception_type(PublishFailedError),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
            **kwargs,  # type: ignore[arg-type]
        )

    def _attempt(self, records: list[OutboxRecord]) -> list[OutboxRecord]:
        """Send `records`; store the acknowledged prefix; raise if anything is left."""
        outcomes = self.loop.run_until_complete(self._send_all(records))
        done = 0
        dead: list[tuple[OutboxRecord, str]] = []
        for record in records:
            outcome = outcomes[record.position]
            if outcome.dead is not None:
                dead.append((record, outcome.dead))
            elif not outcome.ok:
                break
            done += 1
        if done:
            for record, error in dead:
                logger.error(
                    "outbox: event %s (position %d) dead-lettered: %s",
                    record.envelope.id if record.envelope else record.instance_id,
                    record.position,
                    error,
                )
            self.outbox.advance(records[done - 1].position, dead)
        if done == len(records):
            return []
        failed = records[done]
        cause = outcomes[failed.position].error or RuntimeError("not acknowledged")
        raise PublishFailedError(failed.position, cause)

    async def _send_all(self, records: list[OutboxRecord]) -> dict[int, _Outcome]:
        send_many = getattr(self.sink, "send_many", None)
        if send_many is not None:
            return await self._send_pipelined(records, send_many)
        by_instance: dict[UUID, list[OutboxRecord]] = defaultdict(list)
        for record in records:
            by_instance[record.instance_id].append(record)
        outcomes = {record.position: _Outcome() for record in records}
        await asyncio.gather(
            *(self._send_in_order(group, outcomes) for group in by_instance.values())
        )
        return outcomes

    async def _send_in_order(
        self, group: list[OutboxRecord], outcomes: dict[int, _Outcome]
    ) -> None:
        # One instance's events, one at a time: the next is sent only once the broker has
        # acknowledged the previous, so they reach the partition in order. The first
        # failure stops the group; the retry resends from there.
        for record in group:
            outcome = outcomes[record.position]
            if record.envelope is None:
                outcome.dead = record.error or "no envelope"
                continue
            try:
                message = to_message(record.envelope)
            except Exception as exc:  # not encodable: it never will be
                outcome.dead = f"{type(exc).__name__}: {exc}"
                metrics.OUTBOX_PUBLISHED.labels("dead_lettered").inc()
                continue
            envelope = record.envelope
            with publish_span(str(record.instance_id), envelope.type, envelope.data):
                inject_headers(message.headers)  # the consumer continues the trace
                try:
                    await self.sink.send(message)
                except PERMANENT_ERRORS as exc:
                    outcome.dead = f"{type(exc).__name__}: {exc}"
                    metrics.OUTBOX_PUBLISHED.labels("dead_lettered").inc()
                    continue
                except Exception as exc:
                    outcome.error = exc
                    return
            outcome.ok = True
            self.published += 1
            metrics.OUTBOX_PUBLISHED.labels("published").inc()

    async def _send_pipelined(
        self,
        records: list[OutboxRecord],
        send_many: Callable[[list[KafkaMessage]], Awaitable[list[BaseException | None]]],
    ) -> dict[int, _Outcome]:
        outcomes = {record.position: _Outcome() for record in records}
        sending: list[tuple[OutboxRecord, KafkaMessage]] = []
        for record in records:
            message = self._message(record, outcomes[record.position])
            if message is not None:
                sending.append((record, message))
        errors = await send_many([message for _, message in sending])
        for (record, _message), error in zip(sending, errors, strict=True):
            outcome = outcomes[record.position]
            if error is None:
                outcome.ok = True
                self.published += 1
                metrics.OUTBOX_PUBLISHED.labels("published").inc()
            elif isinstance(error, PERMANENT_ERRORS):
                outcome.dead = f"{type(error).__name__}: {error}"
                metrics.OUTBOX_PUBLISHED.labels("dead_lettered").inc()
            else:
                outcome.error = error
        return outcomes

    @staticmethod
    def _message(record: OutboxRecord, outcome: _Outcome) -> KafkaMessage | None:
        """The message of `record` with its trace headers; None (and `outcome` dead) when it
        has none. The producer span covers building the message: the send is the batch's."""
        if record.envelope is None:
            outcome.dead = record.error or "no envelope"
            return None
        try:
            message = to_message(record.envelope)
        except Exception as exc:  # not encodable: it never will be
            outcome.dead = f"{type(exc).__name__}: {exc}"
            metrics.OUTBOX_PUBLISHED.labels("dead_lettered").inc()
            return None
        envelope = record.envelope
        with publish_span(str(record.instance_id), envelope.type, envelope.data):
            inject_headers(message.headers)  # the consumer continues the trace
        return message

    def _redrive(self) -> int:
        """Publish the dead letters operators asked to retry (once each; dead again on error)."""
        requested = self.outbox.retries_requested(self.batch_size)
        if not requested:
            return 0
        records = {r.position: r for r in self.outbox.read_positions([p for _, p in requested])}
        for dead_letter_id, position in requested:
            record = records.get(position)
            error: str | None
            if record is None:
                error = "the event is no longer stored"
            else:
                outcomes = self.loop.run_until_complete(self._send_all([record]))
                outcome = outcomes[position]
                error = None if outcome.ok else (outcome.dead or repr(outcome.error))
            self.outbox.redriven(dead_letter_id, error)
            logger.info("outbox: re-drive of dead letter %d: %s", dead_letter_id, error or "ok")
        return len(requested)
