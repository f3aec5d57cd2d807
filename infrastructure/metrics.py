"""Every Prometheus metric Waymark exposes (SPEC §6), in one place.

Two kinds of figures:

- **Events of this process** (counters, histograms, per-process gauges): instances started,
  steps taken, actions run, timers fired, outbox messages published, HTTP requests,
  command conflicts, the process's connection pool and circuit breakers. Each process
  serves its own on its own port (the API on its HTTP port, each worker on
  `WAYMARK_WORKER_PROBE_PORT`); Prometheus adds them up with `sum(rate(...))`.
- **The state of the whole system** (`workflow_instances_active`, `workflow_timers_due`,
  `workflow_outbox_events_pending`, ...): read from the database at scrape time by
  `SystemGauges`, cached for `WAYMARK_METRICS_CACHE_SECONDS`, so every replica reports
  the same number (use `max(...)`, never `sum(...)`, across replicas).

`METRICS` is the catalogue (name → type, help, labels) that docs/metrics.md and the alert
rules' test are checked against. Label cardinality rule: labels take only values from a
bounded set the operator controls (definition names, node types, action types, outcomes,
breaker targets = configured hosts); `tenant` only when `WAYMARK_METRICS_TENANT_LABEL` is on
(empty otherwise); never instance ids, task ids, URLs with paths or error messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# No `_created` series beside every counter and histogram: they double the series count
# and no alert or dashboard reads them.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)


@dataclass(frozen=True)
class MetricInfo:
    name: str
    type: str  # counter | gauge | histogram
    help: str
    labels: tuple[str, ...] = ()
    source: str = "process"  # process: this process's events; database: SystemGauges


METRICS: dict[str, MetricInfo] = {}

# Seconds: from a fast in-process step to a two-minute external call.
ACTION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Instances live from milliseconds (straight-through) to weeks (human tasks, timers).
EXECUTION_BUCKETS = (0.1, 1, 10, 60, 300, 1800, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def _info(name: str, kind: str, help_text: str, labels: tuple[str, ...], source: str) -> None:
    METRICS[name] = MetricInfo(name, kind, help_text, labels, source)


def _counter(name: str, help_text: str, labels: tuple[str, ...] = ()) -> Counter:
    _info(name, "counter", help_text, labels, "process")
    return Counter(name.removesuffix("_total"), help_text, labels, registry=REGISTRY)


def _gauge(name: str, help_text: str, labels: tuple[str, ...] = ()) -> Gauge:
    _info(name, "gauge", help_text, labels, "process")
    return Gauge(name, help_text, labels, registry=REGISTRY)


def _histogram(
    name: str, help_text: str, labels: tuple[str, ...], buckets: tuple[float, ...]
) -> Histogram:
    _info(name, "histogram", help_text, labels, "process")
    return Histogram(name, help_text, labels, buckets=buckets, registry=REGISTRY)


# --- instances (counted where the command commits: the API, workers, command consumer) ---
INSTANCES_STARTED = _counter(
    "workflow_instances_started_total", "Instances started", ("definition", "tenant")
)
INSTANCES_COMPLETED = _counter(
    "workflow_instances_completed_total", "Instances completed", ("definition", "tenant")
)
INSTANCES_FAILED = _counter(
    "workflow_instances_failed_total", "Instances failed", ("definition", "tenant")
)
INSTANCES_CANCELLED = _counter(
    "workflow_instances_cancelled_total", "Instances cancelled", ("definition", "tenant")
)
EXECUTION_DURATION = _histogram(
    "workflow_execution_duration_seconds",
    "Start to end of an instance (completed, failed or cancelled)",
    ("definition", "outcome"),
    EXECUTION_BUCKETS,
)
STEPS = _counter("workflow_steps_total", "Nodes entered by instances", ("definition", "node_type"))
# --- commands ---
COMMANDS = _counter(
    "workflow_commands_total",
    "Commands run (outcome: committed, conflict = re-decision budget spent, error)",
    ("outcome",),
)
COMMAND_DURATION = _histogram(
    "workflow_command_duration_seconds",
    "A command from its first attempt to its commit (re-decisions included)",
    ("outcome",),
    REQUEST_BUCKETS,
)
COMMAND_CONFLICTS = _counter(
    "workflow_command_conflicts_total",
    "Lost optimistic-concurrency races (each is re-decided while the budget lasts)",
)
# --- activities (the task worker) ---
ACTIVITIES_EXECUTED = _counter(
    "workflow_activities_executed_total",
    "Service-task actions run (outcome: success, failure, deferred = breaker open)",
    ("action_type", "outcome"),
)
ACTIVITIES_FAILED = _counter(
    "workflow_activities_failed_total", "Service-task actions that failed", ("action_type",)
)
ACTIVITY_DURATION = _histogram(
    "workflow_activity_execution_duration_seconds",
    "Time one action took (the external call, in-attempt retries included)",
    ("action_type",),
    ACTION_BUCKETS,
)
ACTIVITIES_RUNNING = _gauge(
    "workflow_activities_in_flight", "Actions this task worker runs right now"
)
# --- timers, outbox, workers ---
TIMERS_FIRED = _counter("workflow_timers_fired_total", "Timers and wait timeouts fired")
OUTBOX_PUBLISHED = _counter(
    "workflow_outbox_published_total",
    "Events sent to Kafka by this publisher (outcome: published, dead_lettered)",
    ("outcome",),
)
WORKER_TICKS = _counter(
    "workflow_worker_ticks_total", "Worker loop ticks (outcome: ok, failed)", ("worker", "outcome")
)
WORKER_LAST_TICK = _gauge(
    "workflow_worker_last_tick_timestamp_seconds",
    "Unix time of the worker's last successful tick",
    ("worker",),
)
# --- HTTP (the API) ---
HTTP_REQUESTS = _counter(
    "http_requests_total", "HTTP requests answered", ("method", "route", "status")
)
HTTP_DURATION = _histogram(
    "http_request_duration_seconds",
    "HTTP request duration (route = the path template)",
    ("method", "route"),
    REQUEST_BUCKETS,
)
HTTP_IN_FLIGHT = _gauge("http_requests_in_flight", "HTTP requests being served right now")

# --- collected at scrape time ---
_info(
    "workflow_circuit_breaker_state",
    "gauge",
    "Circuit breaker per target in this process: 0 closed, 1 half-open, 2 open",
    ("target",),
    "process",
)
_info("workflow_db_pool_size", "gauge", "Connections the pool holds", (), "process")
_info("workflow_db_pool_available", "gauge", "Idle connections in the pool", (), "process")
_info("workflow_db_pool_waiting", "gauge", "Requests waiting for a connection", (), "process")
_info("workflow_db_pool_max", "gauge", "The pool's maximum size", (), "process")
for _name, _help, _labels in (
    ("workflow_instances_active", "Instances not ended, by status", ("definition", "status")),
    ("workflow_timers_due", "Timers and wait timeouts due now and not fired", ()),
    ("workflow_outbox_events_pending", "Stored events the publisher has not sent", ()),
    ("workflow_outbox_processing_lag_seconds", "Age of the oldest unpublished event", ()),
    ("workflow_outbox_dead_letters", "Outbox dead letters not re-driven", ()),
    ("workflow_instances_stuck", "Running instances with no open bookmark nor activity", ()),
    (
        "workflow_instances_long_running",
        "Instances suspended longer than WAYMARK_LONG_RUNNING_AFTER",
        (),
    ),
    ("workflow_tasks_overdue", "Open human tasks past their due time", ()),
    (
        "workflow_task_sla_compliance_ratio",
        "Share of human tasks completed in the last 24 h that met their due time",
        (),
    ),
    (
        "workflow_event_writers_waiting",
        "Event writers (of every process) waiting for the events' insert-order lock",
        (),
    ),
    (
        "workflow_event_lock_wait_seconds",
        "How long the first event writer in the queue has waited for the insert-order lock",
        (),
    ),
    ("workflow_system_gauges_up", "1 when the database-derived gauges could be read", ()),
):
    _info(_name, "gauge", _help, _labels, "database")

# Action types that may be label values: the built-ins and every registered plug-in type
# (ActionRegistry.register adds them); any other type a definition names is `unknown`.
ACTION_TYPES: set[str] = {"http", "noop", "emit", "email", "slack", "teams", "sms"}

BREAKER_STATES = {"closed": 0, "half-open": 1, "half_open": 1, "open": 2}


def tenant_label(tenant: str, enabled: bool) -> str:
    return tenant if enabled else ""


@lru_cache(maxsize=4096)
def child(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, looked up once: `labels` validates and locks on every call
    (~3 µs), and every request, commit and action counts through it. The label values are
    bounded (route templates, node and action types, outcomes; tenants only when
    WAYMARK_METRICS_TENANT_LABEL is on), and a cached child stays the registry's."""
    return metric.labels(*values)


# --- per-process collectors: breakers and the pool ------------------------------------


class ProcessGauges(Collector):
    """Breaker states and pool usage of this process, read when scraped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[int, Callable[[], dict[str, str]]] = {}
        self._pools: dict[int, Callable[[], dict[str, int]]] = {}

    def add_breakers(self, states: Callable[[], dict[str, str]]) -> Callable[[], None]:
        """`states()` → {target: "closed" | "half-open" | "open"}; returns the remover."""
        return self._add(self._breakers, states)

    def add_pool(self, stats: Callable[[], dict[str, int]]) -> Callable[[], None]:
        return self._add(self._pools, stats)

    def _add(self, table: dict[int, Any], item: Any) -> Callable[[], None]:
        key = id(item)
        with self._lock:
            table[key] = item
        return lambda: self._remove(table, key)

    def _remove(self, table: dict[int, Any], key: int) -> None:
        with self._lock:
            table.pop(key, None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            breakers, pools = list(self._breakers.values()), list(self._pools.values())
        family = GaugeMetricFamily(
            "workflow_circuit_breaker_state",
            METRICS["workflow_circuit_breaker_state"].help,
            labels=["target"],
        )
        seen: dict[str, int] = {}
        for states in breakers:
            try:
                for target, state in states().items():
                    seen[target] = max(seen.get(target, 0), BREAKER_STATES.get(state, 2))
            except Exception:  # a scrape must not fail on one source
                logger.exception("metrics: reading breaker states failed")
        for target, value in sorted(seen.items()):
            family.add_metric([target], value)
        yield family
        totals = {"pool_size": 0, "pool_available": 0, "requests_waiting": 0, "pool_max": 0}
        for stats in pools:
            try:
                got = stats()
            except Exception:
                logger.exception("metrics: reading pool stats failed")
                continue
            for key in totals:
                totals[key] += int(got.get(key, 0))
        for name, key in (
            ("workflow_db_pool_size", "pool_size"),
            ("workflow_db_pool_available", "pool_available"),
            ("workflow_db_pool_waiting", "requests_waiting"),
            ("workflow_db_pool_max", "pool_max"),
        ):
            yield GaugeMetricFamily(name, METRICS[name].help, value=totals[key])


PROCESS_GAUGES = ProcessGauges()
REGISTRY.register(PROCESS_GAUGES)


# --- the whole system, from the database ------------------------------------------------


class SystemGauges(Collector):
    """Gauges of the whole system read from the database (cached, bounded queries).

    `read()` returns {metric name: [(labels dict, value), ...]}; the newest bound reader
    serves (one per process: the composition root binds its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers: list[
            tuple[Callable[[], dict[str, list[tuple[dict[str, str], float]]]], float]
        ] = []
        self._cached: dict[str, list[tuple[dict[str, str], float]]] | None = None
        self._cached_at = 0.0
        self._up = 0.0

    def bind(
        self,
        read: Callable[[], dict[str, list[tuple[dict[str, str], float]]]],
        cache_seconds: float,
    ) -> Callable[[], None]:
        entry = (read, cache_seconds)
        with self._lock:
            self._readers.append(entry)
            self._cached = None

        def unbind() -> None:
            with self._lock:
                if entry in self._readers:
                    self._readers.remove(entry)
                self._cached = None

        return unbind

    def values(self) -> dict[str, list[tuple[dict[str, str], float]]] | None:
        with self._lock:
            if not self._readers:
                return None
            read, cache_seconds = self._readers[-1]
            if self._cached is not None and time.monotonic() - self._cached_at < cache_seconds:
                return self._cached
            try:
                self._cached = read()
                self._up = 1.0
            except Exception as exc:
                logger.warning("metrics: reading the system gauges failed: %s", exc)
                self._cached = {}
                self._up = 0.0
            self._cached_at = time.monotonic()
            return self._cached

    def collect(self) -> Iterator[Metric]:
        values = self.values()
        if values is None:
            return
        for name, info in METRICS.items():
            if info.source != "database" or name == "workflow_system_gauges_up":
                continue
            family = GaugeMetricFamily(name, info.help, labels=list(info.labels))
            for labels, value in values.get(name, []):
                family.add_metric([labels.get(label, "") for label in info.labels], value)
            yield family
        yield GaugeMetricFamily(
            "workflow_system_gauges_up", METRICS["workflow_system_gauges_up"].help, value=self._up
        )


SYSTEM_GAUGES = SystemGauges()
REGISTRY.register(SYSTEM_GAUGES)


def exposition() -> tuple[bytes, str]:
    """The text format of every metric of this process, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def names_in(registry: CollectorRegistry = REGISTRY) -> Iterable[str]:
    for metric in registry.collect():
        yield metric.name


def series_names() -> set[str]:
    """Every series name a PromQL expression may use: counters with `_total`, histograms'
    `_bucket`, `_sum` and `_count` (for the alert rules' check)."""
    names: set[str] = set()
    for name, info in METRICS.items():
        if info.type == "histogram":
            names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
        else:
            names.add(name)
    return names
