"""The publisher's batched sends against real PostgreSQL and the real test broker (tansu):
a batch goes to the broker in a few record batches (one chain per partition), the events of
one instance stay in order in the topic, and a broker failure in the middle of a batch is
retried without loss or reordering. A negative control keeps sending a partition's later
record batches after one failed, and the same check sees instances out of order."""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.outbox_support import (
    TENANT,
    WAIT_THEN_END,
    Consumer,
    committed_events,
    missing,
    order_violations,
    start_workflows,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(kafka_broker: Any) -> str:
    name = f"batches-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(name, partitions=3)
    return name


@pytest.fixture
def api(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    container = build_api(Settings(database_url=database_url, api_keys="k=acme:admin"))
    container.definitions.publish(TENANT, WAIT_THEN_END)
    yield container
    container.close()


def relay(database_url: str, bootstrap: str, topic: str, **overrides: Any) -> Any:
    """The outbox worker's container (a real KafkaSink), retries fast."""
    from infrastructure.outbox import RetryPolicy
    from infrastructure.settings import Settings
    from infrastructure.worker_bootstrap import build_outbox_worker

    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap,
        "kafka_topic": topic,
        "kafka_idempotent": False,  # the test broker has no idempotent producer
        "kafka_request_timeout": 1.0,
        "outbox_batch_size": 500,
        **overrides,
    }
    container = build_outbox_worker(Settings(**values))
    container.publisher.retry = RetryPolicy(attempts=8, initial=0.2, max_delay=1.0)
    return container


class BatchLog:
    """Wraps a KafkaSink's `_send_batch`: counts record batches per partition, and can fail
    a partition's `fail_nth` batch once (before sending it) or call `after_acks` after
    `pause_after` acknowledged batches."""

    def __init__(self, sink: Any, *, fail_nth: int | None = None) -> None:
        self.sink = sink
        self.fail_nth = fail_nth
        self.sent: dict[int, int] = {}
        self.acked = 0
        self.failed = 0
        self.failed_once: set[int] = set()
        self.pause_after: int | None = None
        self.after_acks: Any = None
        self._inner = sink._send_batch
        sink._send_batch = self._send_batch

    async def _send_batch(self, batch: Any, partition: int) -> None:
        self.sent[partition] = self.sent.get(partition, 0) + 1
        if (
            self.fail_nth is not None
            and self.sent[partition] == self.fail_nth
            and partition not in self.failed_once
        ):
            self.failed_once.add(partition)
            self.failed += 1
            raise ConnectionError(f"injected: batch {self.fail_nth} of partition {partition}")
        try:
            await self._inner(batch, partition)
        except Exception:
            self.failed += 1
            raise
        self.acked += 1
        if self.pause_after is not None and self.acked == self.pause_after:
            self.after_acks()


def drain(container: Any) -> None:
    while container.publisher.publish_batch():
        pass


def complete_and_ordered(database_url: str, consumer: Consumer) -> list[str]:
    """Waits for every committed event; the instances whose events arrived out of order."""
    committed = committed_events(database_url)
    wait_for(lambda: not missing(committed, consumer.ce_ids()), 60, "every event")
    return order_violations(consumer.snapshot())


def test_a_batch_goes_in_one_record_batch_per_partition_in_instance_order(
    api: Any, database_url: str, kafka_broker: Any, topic: str
) -> None:
    start_workflows(api, 60, threads=4)
    committed = committed_events(database_url)
    container = relay(database_url, kafka_broker.bootstrap, topic)
    log = BatchLog(container.publisher.sink)
    try:
        with Consumer(kafka_broker.bootstrap, topic) as consumer:
            assert container.publisher.publish_batch() == len(committed)
            # One record batch per partition for the whole batch of events (each of them
            # one broker request at most; before, one per event of the busiest instance)
            assert sum(log.sent.values()) <= 3 and set(log.sent) <= {0, 1, 2}
            assert container.publisher.published == len(committed)
            assert api.outbox.status().pending == 0
            assert complete_and_ordered(database_url, consumer) == []
            assert {r.ce_id for r in consumer.snapshot()} == set(committed)  # none twice
            assert len(consumer.snapshot()) == len(committed)
    finally:
        container.close()


def test_a_broker_stopping_mid_batch_is_retried_without_loss_or_reordering(
    api: Any, database_url: str, kafka_broker: Any, topic: str
) -> None:
    # Small record batches (4 KB): each partition's share of the batch is a chain of several
    start_workflows(api, 40, threads=1)
    committed = committed_events(database_url)
    container = relay(database_url, kafka_broker.bootstrap, topic, kafka_max_request_bytes=4000)
    log = BatchLog(container.publisher.sink)
    resumed = threading.Event()

    def outage() -> None:  # the broker stops answering after 4 acknowledged record batches
        kafka_broker.pause()
        timer = threading.Timer(3.0, lambda: (kafka_broker.resume(), resumed.set()))
        timer.daemon = True
        timer.start()

    log.pause_after, log.after_acks = 4, outage
    try:
        with Consumer(kafka_broker.bootstrap, topic) as consumer:
            drain(container)
            assert resumed.is_set()
            assert log.failed >= 1  # the outage did fail batches: the retries sent them
            assert sum(log.sent.values()) > 6  # several record batches per partition
            assert api.outbox.status().pending == 0
            assert api.outbox.status().dead_letters == 0
            assert complete_and_ordered(database_url, consumer) == []
            assert {r.ce_id for r in consumer.snapshot()} == set(committed)
    finally:
        kafka_broker.resume()
        container.close()


def _fail_second_batches(
    api: Any, database_url: str, kafka_broker: Any, topic: str, sink_class: Any
) -> tuple[list[str], int]:
    """40 workflows (their events contiguous per instance), record batches of at most 3
    messages, the second record batch of every partition failing once: (out-of-order
    instances at the consumer, injected failures)."""
    start_workflows(api, 40, threads=1)
    container = relay(database_url, kafka_broker.bootstrap, topic)
    sink = container.publisher.sink
    container.publisher.sink = sink_class(sink.config, sink.breaker)
    log = BatchLog(container.publisher.sink, fail_nth=2)
    try:
        with Consumer(kafka_broker.bootstrap, topic) as consumer:
            drain(container)
            assert api.outbox.status().pending == 0
            return complete_and_ordered(database_url, consumer), log.failed
    finally:
        container.close()


def _three_per_batch() -> Any:
    from infrastructure.kafka import KafkaSink

    class ThreePerBatch(KafkaSink):
        """The real sink, record batches cut at 3 messages (so instances span batches)."""

        async def _send_lane(self, partition: int, lane: Any, results: Any) -> None:
            for at in range(0, len(lane), 3):
                chunk = lane[at : at + 3]
                if not await self._send_chunk(partition, chunk, results):
                    for index, _message in lane[at + 3 :]:
                        results[index] = results[chunk[0][0]]  # the rest: not sent
                    return

        async def _send_chunk(self, partition: int, chunk: Any, results: Any) -> bool:
            assert self._producer is not None
            batch = self._producer.create_batch()
            for _index, m in chunk:
                batch.append(timestamp=None, key=m.key, value=m.value, headers=m.headers)
            try:
                await self._guarded(
                    functools.partial(self._send_batch, batch, partition),
                    calls=len(chunk),
                    failed_calls=len(chunk),
                )
            except Exception as exc:
                for index, _message in chunk:
                    results[index] = exc
                return False
            return True

    return ThreePerBatch


def test_a_failed_record_batch_stops_its_partition_so_the_retry_keeps_order(
    api: Any, database_url: str, kafka_broker: Any, topic: str
) -> None:
    violations, failed = _fail_second_batches(
        api, database_url, kafka_broker, topic, _three_per_batch()
    )
    assert failed >= 2  # injected in at least two partitions
    assert violations == []


def test_negative_control_sending_on_after_a_failed_record_batch_reorders_an_instance(
    api: Any, database_url: str, kafka_broker: Any, topic: str
) -> None:
    base = _three_per_batch()

    class KeepsGoing(base):  # type: ignore[misc, valid-type]
        """Pipelined without the rule: a partition's later batches go after one failed."""

        async def _send_lane(self, partition: int, lane: Any, results: Any) -> None:
            for at in range(0, len(lane), 3):
                await self._send_chunk(partition, lane[at : at + 3], results)

    violations, failed = _fail_second_batches(api, database_url, kafka_broker, topic, KeepsGoing)
    assert failed >= 2
    # The retry resends the failed batch after its successors: an instance whose events
    # spanned the failed batch and the next arrives out of order (first occurrences kept)
    assert violations != []


def _half_open_trial_during_an_outage(
    api: Any, database_url: str, kafka_broker: Any, topic: str, lookup_guarded: bool
) -> list[str]:
    """A relay that has published once (producer started, metadata cached), its breaker
    opened, the broker paused past the reset timeout; one publish attempt: the breaker's
    states from the opening on. `lookup_guarded` makes the cached partition lookup a breaker
    call, as it was before (the negative control)."""
    from infrastructure.outbox import PublishFailedError, RetryPolicy

    start_workflows(api, 5, threads=1)
    container = relay(database_url, kafka_broker.bootstrap, topic, outbox_breaker_reset_timeout=0.2)
    sink = container.publisher.sink
    states: list[str] = []
    sink.breaker.listeners[0].on_state = states.append
    if lookup_guarded:
        inner = sink._partitioned

        async def guarded(messages: Any) -> Any:
            return await sink._guarded(lambda: inner(messages), calls=1, failed_calls=len(messages))

        sink._partitioned = guarded
    try:
        drain(container)  # the producer runs and knows the topic's partitions
        start_workflows(api, 5, threads=1)
        kafka_broker.pause()
        sink.breaker.open()
        wait_for(lambda: sink.breaker.current_state == "open", 5, "an open breaker")
        threading.Event().wait(0.3)  # past the reset timeout: the next call is the trial
        container.publisher.retry = RetryPolicy(attempts=1, initial=0.1, max_delay=0.1)
        with pytest.raises(PublishFailedError):
            container.publisher.publish_batch()
        return states
    finally:
        kafka_broker.resume()
        container.close()


def test_the_half_open_trial_is_a_broker_send_so_an_outage_keeps_the_breaker_open(
    api: Any, database_url: str, kafka_broker: Any, topic: str
) -> None:
    states = _half_open_trial_during_an_outage(
        api, database_url, kafka_broker, topic, lookup_guarded=False
    )
    # Each partition's record batch may be a trial of its own; none of them got through
    assert states[:2] == ["open", "half-open"] and "closed" not in states, states
    assert states[-1] == "open"


def test_negative_control_a_cached_lookup_as_the_trial_closes_the_breaker_mid_outage(
    api: Any, database_url: str, kafka_broker: Any, topic: str
) -> None:
    states = _half_open_trial_during_an_outage(
        api, database_url, kafka_broker, topic, lookup_guarded=True
    )
    assert states[:3] == ["open", "half-open", "closed"], states
