"""Hooks the metrics (infrastructure/metrics.py) onto a core: the command runner's
observers, the process's breakers and pool, and the database-derived system gauges.

Counting happens at the seams, never in the domain: what a commit stored (its events and
aggregates), each lost concurrency race, each command's end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from application.ports import ActionResult, PendingCommit
from application.read_models import ActivityRow
from domain.instance import WorkflowInstance
from infrastructure import metrics, tracing
from infrastructure.postgres.system_gauges import system_gauges_reader
from infrastructure.telemetry import register_secrets
from infrastructure.tracing import action_span

if TYPE_CHECKING:
    from application.runner import CommandRunner
    from infrastructure.container import Core


_ENDINGS = {
    WorkflowInstance.Completed: (metrics.INSTANCES_COMPLETED, "completed"),
    WorkflowInstance.Failed: (metrics.INSTANCES_FAILED, "failed"),
    WorkflowInstance.Cancelled: (metrics.INSTANCES_CANCELLED, "cancelled"),
}


class CommitMetrics:
    """Counts what each commit stored: starts, steps (by node type) and endings."""

    def __init__(self, tenant_label: bool):
        self.tenant_label = tenant_label

    def __call__(self, pending: PendingCommit) -> None:
        by_id: dict[Any, WorkflowInstance] = {i.id: i for i in pending.instances}
        for event in pending.events:
            instance = by_id.get(event.originator_id)
            if instance is None:
                continue
            definition = instance.definition
            tenant = metrics.tenant_label(instance.tenant, self.tenant_label)
            if isinstance(event, WorkflowInstance.Started):
                metrics.child(metrics.INSTANCES_STARTED, definition, tenant).inc()
            elif isinstance(event, WorkflowInstance.NodeEntered):
                metrics.child(metrics.STEPS, definition, event.node_type).inc()
            else:
                ending = _ENDINGS.get(type(event))
                if ending is None:
                    continue
                counter, outcome = ending
                metrics.child(counter, definition, tenant).inc()
                at = getattr(event, "at", None)
                if at is not None and instance.created_on is not None:
                    seconds = max((at - instance.created_on).total_seconds(), 0.0)
                    metrics.child(metrics.EXECUTION_DURATION, definition, outcome).observe(seconds)


def _finished(outcome: str, seconds: float) -> None:
    metrics.child(metrics.COMMANDS, outcome).inc()
    metrics.child(metrics.COMMAND_DURATION, outcome).observe(seconds)


def _conflict() -> None:
    metrics.COMMAND_CONFLICTS.inc()


def _breaker_states(core: Core) -> dict[str, str]:
    return {target: item["state"] for target, item in core.breakers.states().items()}


def _pool_stats(core: Core) -> dict[str, int]:
    pool = core.datastore.pool
    stats = pool.get_stats()
    stats["pool_max"] = pool.max_size
    return stats


def meter_commands(runner: CommandRunner, *, tenant_label: bool) -> None:
    """Count every commit's starts, steps and endings, each lost race, each command."""
    runner.on_committed.append(CommitMetrics(tenant_label))
    runner.on_conflict.append(_conflict)
    runner.on_finished.append(_finished)


def observe_core(core: Core) -> None:
    """Attach the metrics to a freshly built core (undone when the core closes)."""
    settings = core.settings
    register_secrets(_secret_values(settings))
    meter_commands(core.runner, tenant_label=settings.metrics_tenant_label)
    if tracing.enabled():
        tracing.trace_runner(core.runner)
    core._closers.append(metrics.PROCESS_GAUGES.add_breakers(lambda: _breaker_states(core)))
    core._closers.append(metrics.PROCESS_GAUGES.add_pool(lambda: _pool_stats(core)))
    core._closers.append(
        metrics.SYSTEM_GAUGES.bind(system_gauges_reader(core), settings.metrics_cache_seconds)
    )


class _Observed:
    result: ActionResult | None = None


@contextmanager
def observe_action(row: ActivityRow) -> Iterator[_Observed]:
    """Time and count one action run by the task worker (and trace it: tracing.py)."""
    action_type = _action_type(row.action)
    observed = _Observed()
    metrics.ACTIVITIES_RUNNING.inc()
    started = time.perf_counter()
    try:
        with action_span(row, action_type):
            yield observed
    finally:
        metrics.ACTIVITIES_RUNNING.dec()
        result = observed.result
        if result is not None and result.deferred_until is not None:
            metrics.child(metrics.ACTIVITIES_EXECUTED, action_type, "deferred").inc()
        else:
            ok = result is not None and result.ok
            metrics.child(
                metrics.ACTIVITIES_EXECUTED, action_type, "success" if ok else "failure"
            ).inc()
            metrics.child(metrics.ACTIVITY_DURATION, action_type).observe(
                time.perf_counter() - started
            )
            if not ok:
                metrics.child(metrics.ACTIVITIES_FAILED, action_type).inc()


_MAX_TYPE_LENGTH = 40


def _action_type(action: Any) -> str:
    """The action's type as a label: plug-in types are named by operators (bounded), a
    type no plug-in handles is `unknown` (its name comes from a definition)."""
    name = action.get("type") if isinstance(action, dict) else None
    if isinstance(name, str) and len(name) <= _MAX_TYPE_LENGTH and name in metrics.ACTION_TYPES:
        return name
    return "unknown"


_SECRET_FIELD = ("password", "secret", "token", "api_key", "auth")


def _secret_values(settings: Any) -> list[str]:
    """Every configured secret (API keys, tenant secrets, passwords, tokens): never logged."""
    values: list[str] = []
    for name, value in settings.model_dump().items():
        if isinstance(value, str) and any(part in name for part in _SECRET_FIELD):
            values.append(value)
    try:
        values.extend(settings.parsed_api_keys())
        values.extend(settings.parsed_tenant_secrets().values())
    except ValueError:  # malformed entries: build_api refuses them; a worker reads none
        pass
    return values
