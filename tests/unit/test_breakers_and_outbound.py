"""Circuit breakers (SPEC §6 windowed rule on pybreaker), the egress guard and the retries of
transient errors inside one attempt. No network: a resolver stub and httpx.MockTransport."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from application.ports import ActionResult
from infrastructure.actions import ActionRegistry
from infrastructure.actions.breakers import BreakerRule, CircuitBreakers, breaker_target
from infrastructure.actions.outbound import (
    EgressPolicy,
    EgressRefusedError,
    RetryPolicy,
    check_url,
    send_with_retries,
)


def wait_until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# --- breakers -------------------------------------------------------------------------------


def test_the_target_is_the_connection_else_the_host() -> None:
    assert breaker_target({"type": "slack", "connection": "ops"}) == "connection:ops"
    assert breaker_target({"type": "http", "url": "https://ERP.example/x"}) == "host:erp.example"
    assert breaker_target({"type": "http", "url": "http://h:8080/"}) == "host:h:8080"
    assert breaker_target({"type": "noop"}) is None


def test_a_breaker_opens_at_half_failures_over_ten_calls_not_before() -> None:
    breakers = CircuitBreakers(BreakerRule(open_seconds=30))
    for _ in range(9):
        assert breakers.admit("t") is None
        breakers.record("t", failed=True)
    assert breakers.states()["t"]["state"] == "closed"  # 9 calls: below the minimum
    assert breakers.admit("t") is None
    breakers.record("t", failed=True)
    until = breakers.admit("t")
    assert until is not None and 29 < (until - datetime.now(UTC)).total_seconds() <= 30
    assert breakers.states()["t"]["state"] == "open"


def test_a_mostly_succeeding_target_stays_closed() -> None:
    breakers = CircuitBreakers()
    for i in range(40):
        breakers.record("t", failed=i % 3 == 0)  # a third fail: below one half
    assert breakers.admit("t") is None


def test_calls_older_than_the_window_do_not_count() -> None:
    now = [0.0]
    breakers = CircuitBreakers(BreakerRule(window_seconds=60), monotonic=lambda: now[0])
    for _ in range(9):
        breakers.record("t", failed=True)
    now[0] = 61.0  # those nine left the window
    breakers.record("t", failed=True)
    assert breakers.admit("t") is None


def test_half_open_lets_one_trial_through_success_closes_failure_reopens() -> None:
    breakers = CircuitBreakers(BreakerRule(min_calls=2, open_seconds=0.2))
    for _ in range(2):
        breakers.record("t", failed=True)
    assert breakers.admit("t") is not None
    wait_until(lambda: breakers.admit("t") is None)  # the trial call
    assert breakers.states()["t"]["state"] == "half-open"
    assert breakers.admit("t") is not None  # a second caller waits for the trial
    breakers.record("t", failed=True)  # the trial failed: open again for the full time
    assert breakers.states()["t"]["state"] == "open"
    wait_until(lambda: breakers.admit("t") is None)
    breakers.record("t", failed=False)
    assert breakers.states()["t"]["state"] == "closed"
    assert breakers.admit("t") is None


def test_the_registry_defers_calls_to_an_open_target_without_calling_it() -> None:
    calls: list[str] = []

    def failing(action: dict, key: str, timeout: float) -> ActionResult:  # type: ignore[type-arg]
        calls.append(key)
        return ActionResult(ok=False, error="down", retryable=True)

    registry = ActionRegistry(breakers=CircuitBreakers(BreakerRule(min_calls=3)))
    registry.register("svc", failing)
    action = {"type": "svc", "connection": "down-service"}
    results = [registry.run(action, idempotency_key=f"k{i}", timeout=1) for i in range(5)]
    assert len(calls) == 3
    assert [r.deferred_until is not None for r in results] == [False] * 3 + [True] * 2
    # A non-transient failure (the target answered) and internal actions count nothing.
    assert registry.run({"type": "noop", "url": "http://x/"}, idempotency_key="n", timeout=1).ok


# --- egress guard ---------------------------------------------------------------------------


class StubResolver:
    """Answers from a table; never asks DNS."""

    def __init__(self, table: dict[str, list[str]]):
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return self.table[host]


RESOLVER = StubResolver(
    {
        "public.test": ["93.184.216.34"],
        "sneaky.test": ["127.0.0.1"],
        "mixed.test": ["93.184.216.34", "10.1.2.3"],
        "v6.test": ["2606:2800:220:1:248:1893:25c8:1946"],
        "mapped.test": ["::ffff:127.0.0.1"],
        "internal.corp": ["10.20.30.40"],
    }
)


def production(allow: str = "") -> EgressPolicy:
    return EgressPolicy.parse(allow, production=True, resolver=RESOLVER)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8000/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://172.16.0.5/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://169.254.10.10/", "link-local"),
        ("http://0.0.0.0/", "not a routable"),
        ("http://sneaky.test/", "loopback"),
        ("http://mapped.test/", "loopback"),
        ("http://mixed.test/", "private"),  # one bad address refuses the name
        ("http://nowhere.test/", "cannot resolve"),
    ],
)
def test_production_refuses_internal_addresses(url: str, reason: str) -> None:
    with pytest.raises(EgressRefusedError, match=reason):
        check_url(url, production())


def test_production_allows_public_addresses_and_allow_listed_ones() -> None:
    for url in ("https://public.test/x", "http://v6.test/", "http://93.184.216.34/"):
        check_url(url, production())
    policy = production("internal.corp, 127.0.0.0/8")
    check_url("http://internal.corp/x", policy)
    check_url("http://127.0.0.1:9/x", policy)
    check_url("http://sneaky.test/x", policy)  # resolves into an allowed network
    with pytest.raises(EgressRefusedError, match="metadata"):
        check_url("http://169.254.169.254/", production("169.254.0.0/16"))
    check_url("http://169.254.169.254/", production("169.254.169.254"))  # named exactly


def test_development_allows_loopback_only() -> None:
    policy = EgressPolicy.parse("", production=False, resolver=RESOLVER)
    check_url("http://127.0.0.1:8000/", policy)
    check_url("http://sneaky.test/", policy)
    with pytest.raises(EgressRefusedError, match="private"):
        check_url("http://10.0.0.1/", policy)
    with pytest.raises(EgressRefusedError, match="metadata"):
        check_url("http://169.254.169.254/", policy)


def test_the_guard_can_be_switched_off_explicitly() -> None:
    check_url("http://10.0.0.1/", EgressPolicy.parse("", production=True, guard=False))


# --- retries inside one attempt -------------------------------------------------------------


def scripted(*answers: int | type[Exception], retry_after: str | None = None):  # type: ignore[no-untyped-def]
    script = list(answers)
    sent: list[float] = []

    def send(seconds_left: float) -> httpx.Response:
        sent.append(seconds_left)
        answer = script.pop(0)
        if isinstance(answer, type):
            raise answer("boom")
        headers = {"Retry-After": retry_after} if retry_after else {}
        return httpx.Response(answer, headers=headers)

    return send, sent


def test_503_then_200_succeeds_after_one_pause() -> None:
    send, sent = scripted(503, 503, 200)
    pauses: list[float] = []
    response = send_with_retries(send, timeout=60, policy=RetryPolicy(), sleep=pauses.append)
    assert response.status_code == 200
    assert len(sent) == 3
    assert pauses == [1.0, 1.5]  # SPEC §6: 1 s ×1.5


def test_connection_errors_are_tried_again_and_the_last_one_raised() -> None:
    send, sent = scripted(httpx.ConnectError, httpx.ReadError, httpx.ConnectError)
    with pytest.raises(httpx.ConnectError):
        send_with_retries(send, timeout=60, policy=RetryPolicy(initial=0), sleep=lambda s: None)
    assert len(sent) == 3


def test_429_waits_as_retry_after_asks_and_without_it_is_not_retried() -> None:
    send, sent = scripted(429, 200, retry_after="2")
    pauses: list[float] = []
    assert send_with_retries(send, timeout=60, policy=RetryPolicy(), sleep=pauses.append)
    assert pauses == [2.0]
    send, sent = scripted(429, 200)
    assert send_with_retries(send, timeout=60, policy=RetryPolicy()).status_code == 429
    send, sent = scripted(500, 200)  # not among the transient statuses
    assert send_with_retries(send, timeout=60, policy=RetryPolicy()).status_code == 500


def test_no_pause_starts_that_would_end_after_the_timeout() -> None:
    send, sent = scripted(503, 200)
    pauses: list[float] = []
    response = send_with_retries(send, timeout=0.5, policy=RetryPolicy(), sleep=pauses.append)
    assert response.status_code == 503 and pauses == [] and len(sent) == 1


def test_check_url_applies_the_policy_of_the_registry_running_the_call() -> None:
    def calls_out(action: dict, key: str, timeout: float) -> ActionResult:  # type: ignore[type-arg]
        check_url(action["url"])  # as the slack/teams/sms actions do before each call
        return ActionResult(ok=True, output="sent")

    strict = ActionRegistry(egress=production())
    strict.register("notify", calls_out)
    refused = strict.run(
        {"type": "notify", "url": "http://127.0.0.1/"}, idempotency_key="k", timeout=1
    )
    assert not refused.ok and not refused.retryable
    assert "egress refused: 127.0.0.1 is a loopback address" in (refused.error or "")
    # Outside that registry's calls, the development default applies (loopback allowed)
    check_url("http://127.0.0.1/")
    relaxed = ActionRegistry(egress=production("127.0.0.1"))
    relaxed.register("notify", calls_out)
    assert relaxed.run(
        {"type": "notify", "url": "http://127.0.0.1/"}, idempotency_key="k", timeout=1
    ).ok
