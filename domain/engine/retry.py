"""Reading a service task's retry policy from its node, and the bounds the validator enforces."""

from __future__ import annotations

import math

from domain.definition import Node, RetryPolicy
from domain.durations import parse_duration

# SPEC §6 "external calls": 3 attempts, 1 s x1.5.
DEFAULT_RETRY = RetryPolicy(max_attempts=3, initial_interval=1.0, backoff=1.5, max_interval=30.0)

# What a published retry policy may ask for (checked at publish time, `domain.validation.document`).
MAX_ATTEMPTS = 100
MAX_BACKOFF = 10
MAX_RETRY_INTERVAL_SECONDS = 86_400.0  # one day


def retry_policy_of(node: Node) -> RetryPolicy:
    """The node's policy, clamped to the publish-time bounds.

    The clamps keep a policy stored before the bounds existed from overflowing the due time
    of a retry (a `P3000000D` interval, a `1e308` backoff): it waits at most a day.
    """
    raw = node.get("retry")
    if not raw:
        return DEFAULT_RETRY
    backoff = float(raw.get("backoff", DEFAULT_RETRY.backoff))
    return RetryPolicy(
        max_attempts=min(int(raw.get("max_attempts", DEFAULT_RETRY.max_attempts)), MAX_ATTEMPTS),
        initial_interval=_seconds(raw.get("initial_interval"), DEFAULT_RETRY.initial_interval),
        backoff=min(backoff, MAX_BACKOFF) if math.isfinite(backoff) else MAX_BACKOFF,
        max_interval=_seconds(raw.get("max_interval"), DEFAULT_RETRY.max_interval),
    )


def _seconds(value: str | None, default: float) -> float:
    seconds = default if value is None else parse_duration(value).total_seconds()
    return min(seconds, MAX_RETRY_INTERVAL_SECONDS)
