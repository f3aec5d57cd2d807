"""The outbox's Kafka parts without a broker: the CloudEvents message of an envelope, and
the SPEC breaker rule on pybreaker's hooks (50 % failures over >= 10 calls in 60 s)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pybreaker
import pytest

from application.envelopes import EventEnvelope
from infrastructure.kafka import BreakerRule, build_breaker, to_message


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def envelope() -> EventEnvelope:
    return EventEnvelope(
        id="6f1c6c1e-0000-4000-8000-000000000001:3",
        type="waymark.instance.bookmark_created",
        source="/waymark/tenants/acme",
        subject="6f1c6c1e-0000-4000-8000-000000000001",
        time=datetime(2026, 12, 1, 12, 0, 0, 250000, tzinfo=UTC),
        tenant="acme",
        position=42,
        data={"bookmark_id": "approve", "note": "grüße"},
    )


def test_the_message_is_cloudevents_binary_mode_with_waymark_headers() -> None:
    message = to_message(envelope())
    headers = dict(message.headers)
    assert message.key == b"6f1c6c1e-0000-4000-8000-000000000001"
    assert headers == {
        "ce_id": b"6f1c6c1e-0000-4000-8000-000000000001:3",
        "ce_type": b"waymark.instance.bookmark_created",
        "ce_source": b"/waymark/tenants/acme",
        "ce_subject": b"6f1c6c1e-0000-4000-8000-000000000001",
        "ce_specversion": b"1.0",
        "ce_time": b"2026-12-01T12:00:00.250000Z",
        "content-type": b"application/json",
        "waymark_tenant": b"acme",
        "waymark_position": b"42",
    }
    assert json.loads(message.value) == {"bookmark_id": "approve", "note": "grüße"}


def _breaker(states: list[str], clock: Clock, reset: float = 30.0) -> pybreaker.CircuitBreaker:
    breaker = build_breaker(BreakerRule(reset_timeout=reset), "test", states.append)
    breaker.listeners[0].clock = clock  # type: ignore[attr-defined]
    return breaker


def _call(breaker: pybreaker.CircuitBreaker, ok: bool) -> Any:
    try:
        with breaker.calling():
            if not ok:
                raise ConnectionError("broker down")
    except (ConnectionError, pybreaker.CircuitBreakerError) as exc:
        return exc
    return None


def test_fewer_than_ten_calls_never_open_the_breaker() -> None:
    states: list[str] = []
    breaker = _breaker(states, Clock())
    for _ in range(9):
        _call(breaker, ok=False)
    assert breaker.current_state == "closed" and states == []
    _call(breaker, ok=False)  # the tenth: 100 % of 10
    assert breaker.current_state == "open" and states == ["open"]


def test_half_the_calls_failing_opens_it_and_less_does_not() -> None:
    clock = Clock()
    breaker = _breaker([], clock)
    for i in range(20):  # 8 failures of 20: 40 %
        _call(breaker, ok=i % 5 < 3)
    assert breaker.current_state == "closed"
    for _ in range(3):  # 11 of 23
        _call(breaker, ok=False)
    assert breaker.current_state == "closed"
    _call(breaker, ok=False)  # 12 of 24: 50 %
    assert breaker.current_state == "open"


def test_failures_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    breaker = _breaker([], clock)
    for _ in range(9):
        _call(breaker, ok=False)
    clock.now += 61
    _call(breaker, ok=False)
    assert breaker.current_state == "closed"


def test_failures_leaving_the_window_stop_counting_towards_the_ratio() -> None:
    # The failure count is kept as calls enter and leave the window (not recounted per call):
    # 9 failures expire, so 8 new ones against 9 recent successes stay under 50 %, and the
    # 9th reaches it. Had the expired failures still counted, the first new one would open it.
    clock = Clock()
    breaker = _breaker([], clock)
    for _ in range(9):
        _call(breaker, ok=False)
    clock.now += 30
    for _ in range(9):
        _call(breaker, ok=True)
    clock.now += 31  # the 9 failures are now older than the 60 s window; the successes not
    for _ in range(8):
        _call(breaker, ok=False)
        assert breaker.current_state == "closed"  # at most 8 of 17
    _call(breaker, ok=False)  # 9 of 18
    assert breaker.current_state == "open"


def test_after_the_reset_timeout_one_good_call_closes_it() -> None:
    states: list[str] = []
    breaker = _breaker(states, Clock(), reset=0.05)
    for _ in range(10):
        _call(breaker, ok=False)
    assert isinstance(_call(breaker, ok=True), pybreaker.CircuitBreakerError)  # open: refused
    # pybreaker measures the reset timeout on the wall clock
    deadline = time.monotonic() + 5
    while isinstance(result := _call(breaker, ok=True), pybreaker.CircuitBreakerError):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert result is None
    assert breaker.current_state == "closed"
    assert states == ["open", "half-open", "closed"]


def test_a_message_too_large_is_not_a_breaker_failure() -> None:
    from aiokafka.errors import MessageSizeTooLargeError

    breaker = _breaker([], Clock())
    for _ in range(20):
        with pytest.raises(MessageSizeTooLargeError), breaker.calling():
            raise MessageSizeTooLargeError()
    assert breaker.current_state == "closed"


def _guarded(breaker: pybreaker.CircuitBreaker, ok: bool, messages: int) -> None:
    import asyncio
    import contextlib

    from infrastructure.kafka import KafkaConfig, KafkaSink

    async def send() -> None:
        if not ok:
            raise ConnectionError("broker down")

    sink = KafkaSink(KafkaConfig(), breaker)
    with contextlib.suppress(ConnectionError):
        asyncio.run(sink._guarded(send, calls=messages, failed_calls=messages))


def test_a_record_batch_counts_one_breaker_call_per_message() -> None:
    # One failed record batch of 10 messages is 10 failed sends: the breaker opens
    breaker = _breaker([], Clock())
    _guarded(breaker, ok=False, messages=10)
    assert breaker.current_state == "open"
    # Negative control: counted once per batch, the same outage stays under 10 calls
    once = _breaker([], Clock())
    _guarded(once, ok=False, messages=1)
    assert once.current_state == "closed"


def test_an_acknowledged_record_batch_counts_its_messages_as_successes() -> None:
    breaker = _breaker([], Clock())
    _guarded(breaker, ok=True, messages=10)
    for _ in range(9):  # 9 of 19 failed: under 50 %
        _call(breaker, ok=False)
    assert breaker.current_state == "closed"
    _call(breaker, ok=False)  # 10 of 20
    assert breaker.current_state == "open"
