"""Circuit breakers per action target, on pybreaker's state machine (SPEC §6).

A target is the action's connection (`"connection": "slack-ops"`) when it names one, else
the host of its `url`; actions with neither (noop, emit) have none. The rule is SPEC §6's:
a breaker opens when at least half of at least 10 calls within 60 s failed, and stays open
30 s; then one trial call goes through (half-open): success closes it, failure opens it
again. pybreaker's own rule counts consecutive failures, so the breakers run with that rule
switched off (`fail_max` out of reach) and a listener keeps the sliding window and opens the
breaker. pybreaker holds its lock for the whole of a `call`, which would serialise every
call to one host, so the call itself runs outside it: `admit` asks before the call, and
`record` replays the outcome through `CircuitBreaker.call` (the state change and listener
hooks then run as pybreaker defines them, in a call that takes no time).

A call the breaker refuses is not a failure of the activity: the task worker defers it to
the moment the breaker half-opens, without spending its attempt.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pybreaker

logger = logging.getLogger(__name__)

_NEVER = 2**62  # pybreaker's consecutive-failure rule, out of reach
# While a half-open breaker's trial call runs, other calls wait this long (at most).
TRIAL_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class BreakerRule:
    """When a breaker opens (SPEC §6 defaults) and for how long."""

    failure_ratio: float = 0.5
    min_calls: int = 10
    window_seconds: float = 60.0
    open_seconds: float = 30.0


def breaker_target(action: dict[str, Any]) -> str | None:
    """The breaker an action's call goes through: its connection, else its URL's host."""
    connection = action.get("connection")
    if isinstance(connection, str) and connection:
        return f"connection:{connection}"
    url = action.get("url")
    if isinstance(url, str):
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            port = parts.port
        except ValueError:
            return None
        if host:
            return f"host:{host}" if port is None else f"host:{host}:{port}"
    return None


class _TargetFailed(Exception):
    """The outcome replayed into pybreaker for a failed call."""


class _Window(pybreaker.CircuitBreakerListener):
    """The sliding window of outcomes of one breaker; opens it when the rule says so."""

    def __init__(self, rule: BreakerRule, monotonic: Callable[[], float]):
        self.rule = rule
        self.monotonic = monotonic
        self.calls: deque[tuple[float, bool]] = deque()

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self._note(cb, failed=True)

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        self._note(cb, failed=False)

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        # Every state starts with an empty window: a closed breaker judges only calls made
        # since it closed.
        self.calls.clear()
        old = old_state.name if old_state is not None else None
        log = logger.warning if new_state.name == pybreaker.STATE_OPEN else logger.info
        log("circuit breaker %s: %s -> %s", cb.name, old, new_state.name)

    def counts(self) -> tuple[int, int]:
        self._prune()
        return len(self.calls), sum(1 for _, failed in self.calls if failed)

    def _note(self, cb: pybreaker.CircuitBreaker, *, failed: bool) -> None:
        self.calls.append((self.monotonic(), failed))
        if cb.current_state != pybreaker.STATE_CLOSED:
            return  # half-open: pybreaker's own rule decides on the trial call
        calls, failures = self.counts()
        if calls >= self.rule.min_calls and failures >= self.rule.failure_ratio * calls:
            cb.open()

    def _prune(self) -> None:
        horizon = self.monotonic() - self.rule.window_seconds
        while self.calls and self.calls[0][0] < horizon:
            self.calls.popleft()


class _TargetBreaker:
    def __init__(self, target: str, rule: BreakerRule, monotonic: Callable[[], float]):
        self.window = _Window(rule, monotonic)
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=_NEVER,
            reset_timeout=rule.open_seconds,
            listeners=[self.window],
            name=target,
            throw_new_error_on_trip=False,
        )
        self.trial_running = False


class CircuitBreakers:
    """Every action target's breaker in this process (shared by its task-worker threads and
    shown by the API's `/health` when the workers run in the same process)."""

    def __init__(
        self,
        rule: BreakerRule | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.rule = rule or BreakerRule()
        self._monotonic = monotonic
        self._breakers: dict[str, _TargetBreaker] = {}
        self._lock = threading.Lock()

    def admit(self, target: str) -> datetime | None:
        """None: call now. Else the time (UTC) to try again: the breaker is open until then,
        or half-open with its trial call still running."""
        now = datetime.now(UTC)  # pybreaker keeps `opened_at` in UTC wall-clock time
        with self._lock:
            entry = self._entry(target)
            cb = entry.breaker
            state = cb.current_state
            if state == pybreaker.STATE_OPEN:
                until = self._half_open_at(entry)
                if until is not None and now < until:
                    return until
                cb.half_open()
                state = pybreaker.STATE_HALF_OPEN
                entry.trial_running = False
            if state == pybreaker.STATE_HALF_OPEN:
                if entry.trial_running:
                    return now + timedelta(seconds=min(TRIAL_WAIT_SECONDS, self.rule.open_seconds))
                entry.trial_running = True
            return None

    def record(self, target: str, *, failed: bool) -> None:
        """The outcome of an admitted call."""

        def outcome() -> None:
            if failed:
                raise _TargetFailed(target)

        with self._lock:
            entry = self._entry(target)
            entry.trial_running = False
            # A failure is noted by raising; a breaker opened meanwhile notes nothing.
            with contextlib.suppress(_TargetFailed, pybreaker.CircuitBreakerError):
                entry.breaker.call(outcome)

    def states(self) -> dict[str, dict[str, Any]]:
        """Each target's state, for `/health`: closed, open (until when) or half-open."""
        with self._lock:
            entries = dict(self._breakers)
            report = {}
            for target, entry in sorted(entries.items()):
                calls, failures = entry.window.counts()
                state = entry.breaker.current_state
                item: dict[str, Any] = {"state": state, "calls": calls, "failures": failures}
                if state == pybreaker.STATE_OPEN:
                    until = self._half_open_at(entry)
                    item["half_open_at"] = until.isoformat() if until else None
                report[target] = item
            return report

    def _entry(self, target: str) -> _TargetBreaker:
        entry = self._breakers.get(target)
        if entry is None:
            entry = self._breakers[target] = _TargetBreaker(target, self.rule, self._monotonic)
        return entry

    def _half_open_at(self, entry: _TargetBreaker) -> datetime | None:
        opened_at = entry.breaker._state_storage.opened_at  # noqa: SLF001 - no public getter
        if opened_at is None:
            return None
        return opened_at + timedelta(seconds=self.rule.open_seconds)
