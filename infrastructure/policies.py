"""Settings turned into the policy objects the services take: retention and cleanup, and
the outbound calls of actions (circuit-breaker rule, retries within an attempt, egress),
and the committer (group commit).
Kept apart from the composition roots (`bootstrap.py`), which only wire what these give."""

from __future__ import annotations

from datetime import timedelta

from application.cleanup import CleanupPolicy
from application.commit import GroupCommitter, ImmediateCommitter
from application.instance_cache import InstanceCache
from application.ports import Committer, InstanceStore
from domain.retention import MAX_RETENTION, Retention, parse_retention
from infrastructure.actions.breakers import BreakerRule
from infrastructure.actions.outbound import EgressPolicy, RetryPolicy
from infrastructure.settings import Settings


def cleanup_policy(settings: Settings) -> CleanupPolicy:
    """The retention settings as durations (a malformed one stops the process here)."""

    def kept(name: str) -> timedelta | None:
        try:
            return parse_retention(getattr(settings, name))
        except ValueError as exc:
            raise ValueError(f"WAYMARK_{name.upper()}: {exc}") from None

    def period(name: str) -> timedelta:
        value = kept(name)
        return value if value is not None else MAX_RETENTION

    history = kept("retention_history")
    return CleanupPolicy(
        retention=Retention(
            completed=kept("retention_completed"), failed=history, cancelled=history
        ),
        idempotency=period("retention_idempotency"),
        dead_letters=period("retention_outbox"),
        batch_rows=settings.cleanup_batch_rows,
        long_running_after=period("long_running_after"),
        vacuum=settings.cleanup_vacuum,
        outbox_configured=bool(settings.kafka_bootstrap_servers),
    )


def breaker_rule(settings: Settings) -> BreakerRule:
    """The circuit-breaker rule of `WAYMARK_BREAKER_*` (SPEC §6 defaults)."""
    return BreakerRule(
        failure_ratio=settings.breaker_failure_ratio,
        min_calls=settings.breaker_min_calls,
        window_seconds=settings.breaker_window_seconds,
        open_seconds=settings.breaker_open_seconds,
    )


def action_retry_policy(settings: Settings) -> RetryPolicy:
    """Tries of transient errors inside one attempt (`WAYMARK_ACTION_RETRY_*`)."""
    return RetryPolicy(
        attempts=settings.action_retry_attempts,
        initial=settings.action_retry_initial,
        backoff=settings.action_retry_backoff,
    )


def egress_policy(settings: Settings) -> EgressPolicy:
    """Production refuses internal addresses unless `WAYMARK_EGRESS_ALLOW` names them."""
    return EgressPolicy.parse(
        settings.egress_allow, production=not settings.dev_mode, guard=settings.egress_guard
    )


def committer_of(settings: Settings, store: InstanceStore) -> Committer:
    """Group commit (WAYMARK_GROUP_COMMIT, on by default) or one transaction per command."""
    if settings.group_commit:
        return GroupCommitter(store, max_group=settings.group_commit_max)
    return ImmediateCommitter(store)


def instance_cache_of(settings: Settings) -> InstanceCache | None:
    """The command path's cache of committed instances (WAYMARK_INSTANCE_CACHE_SIZE, 0:
    none; WAYMARK_INSTANCE_CACHE_EVENTS bounds their events): a command on an instance this
    process committed last reads nothing from the store; the event store's version check
    rejects a decision on a stale copy (application/instance_cache.py)."""
    if settings.instance_cache_size <= 0:
        return None
    return InstanceCache(settings.instance_cache_size, settings.instance_cache_events)
