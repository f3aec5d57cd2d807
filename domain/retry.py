"""Reading a service task's retry policy from its node."""

from __future__ import annotations

from domain.definition import Node, RetryPolicy
from domain.durations import parse_duration

# SPEC §6 "external calls": 3 attempts, 1 s x1.5.
DEFAULT_RETRY = RetryPolicy(max_attempts=3, initial_interval=1.0, backoff=1.5, max_interval=30.0)


def retry_policy_of(node: Node) -> RetryPolicy:
    raw = node.get("retry")
    if not raw:
        return DEFAULT_RETRY
    return RetryPolicy(
        max_attempts=int(raw.get("max_attempts", DEFAULT_RETRY.max_attempts)),
        initial_interval=_seconds(raw.get("initial_interval"), DEFAULT_RETRY.initial_interval),
        backoff=float(raw.get("backoff", DEFAULT_RETRY.backoff)),
        max_interval=_seconds(raw.get("max_interval"), DEFAULT_RETRY.max_interval),
    )


def _seconds(value: str | None, default: float) -> float:
    return default if value is None else parse_duration(value).total_seconds()
