"""Kafka for the outbox: the producer (aiokafka) behind a circuit breaker, and the message of
an event envelope in the CloudEvents 1.0 Kafka binding, binary mode (SPEC §5).

The message is built with the CNCF `cloudevents` SDK's Kafka binding (`to_binary`): the
`ce_*` headers and `content-type` come from it; Waymark adds `waymark_tenant` and
`waymark_position` (not CloudEvents extensions, so not `ce_`-prefixed). Key = instance id.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pybreaker
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from cloudevents.core.bindings.kafka import to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from application.envelopes import DATA_CONTENT_TYPE, EventEnvelope

logger = logging.getLogger(__name__)

_PARTITIONER = DefaultPartitioner()

TENANT_HEADER = "waymark_tenant"
POSITION_HEADER = "waymark_position"


@dataclass(frozen=True)
class KafkaMessage:
    """What the producer sends: key, JSON value, headers (Kafka header values are bytes)."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class _CompactJSON(JSONFormat):
    # The SDK's JSON format; data is written compactly and with non-ASCII kept as UTF-8.
    def write_data(self, data: Any, datacontenttype: str | None) -> bytes:
        if isinstance(data, dict | list):
            return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        return super().write_data(data, datacontenttype)


_FORMAT = _CompactJSON()


def to_message(envelope: EventEnvelope) -> KafkaMessage:
    """The binary-mode Kafka message of one envelope (raises if it cannot be encoded)."""
    event = CloudEvent(
        attributes={
            "specversion": "1.0",
            "id": envelope.id,
            "type": envelope.type,
            "source": envelope.source,
            "subject": envelope.subject,
            "time": envelope.time,
            "datacontenttype": DATA_CONTENT_TYPE,
        },
        data=envelope.data,
    )
    binary = to_binary(event, _FORMAT, key_mapper=lambda _event: envelope.subject)
    headers = [(name, value) for name, value in binary.headers.items()]
    headers.append((TENANT_HEADER, envelope.tenant.encode()))
    headers.append((POSITION_HEADER, str(envelope.position).encode()))
    key = binary.key if isinstance(binary.key, bytes) else str(binary.key).encode()
    return KafkaMessage(key=key, value=bytes(binary.value or b""), headers=headers)


# --- the producer's settings -----------------------------------------------------------------


@dataclass(frozen=True)
class KafkaConfig:
    """How to reach the cluster and how to produce. `client` holds the options every Kafka
    client of Waymark shares (bootstrap servers, TLS, SASL: `kafka_client_options`)."""

    client: dict[str, Any] = field(default_factory=dict)
    topic: str = "waymark.events"
    client_id: str = "waymark-outbox"
    idempotent: bool = True
    request_timeout: float = 30.0
    max_request_bytes: int = 1_048_576

    def producer_kwargs(self) -> dict[str, Any]:
        return {
            **self.client,
            "client_id": self.client_id,
            # Every in-sync replica has the message before it counts as published.
            "acks": "all",
            "enable_idempotence": self.idempotent,
            "request_timeout_ms": int(self.request_timeout * 1000),
            "max_request_size": self.max_request_bytes,
            # A record batch may be as large as a request: `send_many` puts a partition's
            # share of a publisher batch into as few record batches as it can.
            "max_batch_size": self.max_request_bytes,
        }


# --- the circuit breaker ---------------------------------------------------------------------


@dataclass(frozen=True)
class BreakerRule:
    """SPEC §6: open at `failure_ratio` failures over >= `min_calls` calls within `window`
    seconds, for `reset_timeout` seconds (then one trial call decides)."""

    failure_ratio: float = 0.5
    min_calls: int = 10
    window: float = 60.0
    reset_timeout: float = 30.0


class FailureRateListener(pybreaker.CircuitBreakerListener):
    """The SPEC rule on pybreaker's hooks: a sliding window of call outcomes; `open()` when
    the failure rate over the window reaches the rule. pybreaker's own consecutive-failure
    rule is disabled (fail_max is effectively infinite); its open → half-open → closed
    cycle and `reset_timeout` do the rest. `on_state(name)` hears every state change."""

    def __init__(
        self,
        rule: BreakerRule,
        on_state: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rule = rule
        self.on_state = on_state
        self.clock = clock
        self._calls: deque[tuple[float, bool]] = deque()
        # The failures among `_calls`, kept as calls enter and leave the window: every send
        # is recorded, so recounting the window (60 s of sends, 60,000 at 1,000 events/s)
        # on each one made the publisher's cost per event grow with its own rate.
        self._failures = 0
        self._lock = threading.Lock()

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        self._record(ok=True)

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        calls, failures = self._record(ok=False)
        if cb.current_state == pybreaker.STATE_CLOSED and self._trips(calls, failures):
            logger.warning(
                "outbox breaker %s: %d of %d calls failed in %g s; opening for %g s",
                cb.name,
                failures,
                calls,
                self.rule.window,
                self.rule.reset_timeout,
            )
            cb.open()

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        if new_state.name == pybreaker.STATE_CLOSED:
            with self._lock:
                self._calls.clear()  # a closed breaker starts a fresh window
                self._failures = 0
        logger.info(
            "outbox breaker %s: %s -> %s",
            cb.name,
            old_state.name if old_state else None,
            new_state.name,
        )
        if self.on_state is not None:
            try:
                self.on_state(new_state.name)
            except Exception:
                logger.exception("outbox breaker %s: reporting the state failed", cb.name)

    def _trips(self, calls: int, failures: int) -> bool:
        return calls >= self.rule.min_calls and failures >= self.rule.failure_ratio * calls

    def _record(self, *, ok: bool) -> tuple[int, int]:
        now = self.clock()
        with self._lock:
            self._calls.append((now, ok))
            self._failures += not ok
            while self._calls and self._calls[0][0] < now - self.rule.window:
                _at, good = self._calls.popleft()
                self._failures -= not good
            return len(self._calls), self._failures


def build_breaker(
    rule: BreakerRule, name: str, on_state: Callable[[str], None] | None = None
) -> pybreaker.CircuitBreaker:
    """A pybreaker breaker following `rule`. A message the broker refuses for its own sake
    (too large) says nothing about the broker's health: it is not a failure."""
    return pybreaker.CircuitBreaker(
        fail_max=2**31,
        reset_timeout=rule.reset_timeout,
        exclude=[MessageSizeTooLargeError],
        listeners=[FailureRateListener(rule, on_state)],
        name=name,
    )


def count_more_calls(
    breaker: pybreaker.CircuitBreaker, extra: int, error: BaseException | None
) -> None:
    """Tell the breaker's listeners of `extra` more calls with the outcome of the one just
    made (`with breaker.calling():` counts one): a record batch of n messages counts as n
    sends, as when each message was sent alone, so the SPEC rule's "10 calls" still means
    10 events. An excluded error (too large) counts as a success, as pybreaker counts it."""
    failed = error is not None and breaker.is_system_error(error)
    for _ in range(extra):
        for listener in breaker.listeners:
            if failed:
                assert error is not None  # noqa: S101 - failed implies an error
                listener.failure(breaker, error)
            else:
                listener.success(breaker)


class KafkaSink:
    """An aiokafka producer for one topic, each send guarded by the breaker.

    pybreaker's `call_async` needs tornado (and counts nothing under asyncio), so the await
    runs inside `with breaker.calling():`, which records the outcome of the awaited send.
    """

    def __init__(self, config: KafkaConfig, breaker: pybreaker.CircuitBreaker) -> None:
        self.config = config
        self.breaker = breaker
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Lock | None = None

    async def start(self) -> None:
        # Concurrent sends (one per instance) share one producer: the first starts it.
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            await self._start()

    async def _start(self) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(**self.config.producer_kwargs())
            try:
                await producer.start()
            except BaseException:
                await producer.stop()  # its connections and tasks, half started
                raise
            self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def send(self, message: KafkaMessage) -> None:
        """Send one message and wait for the broker's acknowledgement (acks=all)."""
        with self.breaker.calling():
            # Bounded: against a broker that stops answering (but keeps its connections),
            # aiokafka may keep a batch pending past its request timeout; a send that never
            # ends would never count as a failure, and the breaker would never open.
            await asyncio.wait_for(self._start_and_send(message), self._send_deadline())

    async def send_many(self, messages: Sequence[KafkaMessage]) -> list[BaseException | None]:
        """Send `messages`; per message, None once the broker acknowledged it, else the error.

        The messages of one partition go in record batches (`create_batch`/`send_batch`), as
        few as fit a request; the next batch of a partition is handed to the producer only
        once the broker acknowledged the previous one, and the first failure ends the
        partition: its later messages get the same error, unsent. A record batch is appended
        to the log whole or not at all, so messages of one key (one partition) can never
        overtake each other, even without an idempotent producer. Partitions go
        concurrently, so one request to a broker carries every partition's batch it leads.
        """
        results: list[BaseException | None] = [None] * len(messages)
        if not messages:
            return results
        try:
            lanes = await self._partitioned(messages)
        except Exception as exc:  # no producer or no metadata: every message failed
            return [exc] * len(messages)
        await asyncio.gather(
            *(self._send_lane(partition, lane, results) for partition, lane in lanes.items())
        )
        return results

    async def _partitioned(
        self, messages: Sequence[KafkaMessage]
    ) -> dict[int, list[tuple[int, KafkaMessage]]]:
        """`_lanes`, where only a contact with the broker is a breaker call.

        Starting the producer talks to the broker: a breaker call (refused while open, the
        half-open trial after the reset timeout). Once it runs, partitioning reads cached
        metadata and proves nothing about the broker: were it a breaker call, it would be the
        half-open trial and close the breaker in the middle of an outage (the record batches
        after it failing again). So it counts only when it fails: every message failed."""
        if self._producer is None:
            await self._guarded(self.start, calls=1, failed_calls=len(messages))
        try:
            return await asyncio.wait_for(self._lanes(messages), self._send_deadline())
        except Exception as exc:
            count_more_calls(self.breaker, len(messages), exc)
            raise

    async def _lanes(
        self, messages: Sequence[KafkaMessage]
    ) -> dict[int, list[tuple[int, KafkaMessage]]]:
        """{partition: [(index, message)]} in the order given, partitioned as `send` would
        (aiokafka's default partitioner: murmur2 of the key over the sorted partitions)."""
        await self.start()
        assert self._producer is not None  # noqa: S101 - start() set it or raised
        partitions = sorted(await self._producer.partitions_for(self.config.topic))
        lanes: dict[int, list[tuple[int, KafkaMessage]]] = defaultdict(list)
        for index, message in enumerate(messages):
            partition = _PARTITIONER(message.key, partitions, partitions)
            lanes[partition].append((index, message))
        return lanes

    async def _send_lane(
        self,
        partition: int,
        lane: list[tuple[int, KafkaMessage]],
        results: list[BaseException | None],
    ) -> None:
        producer = self._producer
        assert producer is not None  # noqa: S101 - _lanes started it
        limit = len(lane)
        at = 0
        while at < len(lane):
            batch = producer.create_batch()
            taken: list[int] = []
            for index, message in lane[at : at + limit]:
                size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
                    message.key, message.value, message.headers
                )
                if size > self.config.max_request_bytes:
                    if taken:
                        break  # sent alone next, so it is refused on its own
                    # What `send` refuses before sending: never sendable, never a failure
                    results[index] = MessageSizeTooLargeError(
                        f"The message is {size} bytes when serialized which is larger "
                        "than the maximum request size (WAYMARK_KAFKA_MAX_REQUEST_BYTES)"
                    )
                    at += 1
                    break
                appended = batch.append(
                    timestamp=None, key=message.key, value=message.value, headers=message.headers
                )
                if appended is None:
                    break  # the batch is full: the rest goes in the next one
                taken.append(index)
            if not taken:
                continue
            try:
                await self._guarded(
                    functools.partial(self._send_batch, batch, partition),
                    calls=len(taken),
                    failed_calls=len(taken),
                )
            except MessageSizeTooLargeError:
                if len(taken) == 1:
                    results[taken[0]] = MessageSizeTooLargeError("refused by the broker")
                    at += 1
                # The broker's limit is below ours: from here on, one message per batch
                limit = 1
                continue
            except Exception as exc:
                for index, _message in lane[at:]:
                    results[index] = exc
                return
            at += len(taken)

    async def _send_batch(self, batch: Any, partition: int) -> None:
        assert self._producer is not None  # noqa: S101 - _lanes started it
        future = await self._producer.send_batch(batch, self.config.topic, partition=partition)
        await future

    async def _guarded(
        self, call: Callable[[], Awaitable[Any]], *, calls: int, failed_calls: int
    ) -> Any:
        """`call()` as `calls` breaker calls (`failed_calls` if it fails), bounded in time
        (as `send`). An open breaker refuses before `call` is made."""
        try:
            with self.breaker.calling():
                result = await asyncio.wait_for(call(), self._send_deadline())
        except pybreaker.CircuitBreakerError:
            raise  # refused while open: no call was made, none is counted
        except BaseException as exc:
            count_more_calls(self.breaker, failed_calls - 1, exc)
            raise
        count_more_calls(self.breaker, calls - 1, None)
        return result

    def _send_deadline(self) -> float:
        return 2 * self.config.request_timeout + 1.0

    async def _start_and_send(self, message: KafkaMessage) -> None:
        await self.start()  # a failed start is a failed call: counted by the breaker
        assert self._producer is not None  # noqa: S101 - start() set it or raised
        await self._producer.send_and_wait(
            self.config.topic, message.value, key=message.key, headers=message.headers
        )
