"""The metrics catalogue, the command metrics, health evaluation and the log formats —
without a database (the PostgreSQL-backed parts: tests/integration/test_metrics.py)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from application.admission import StartAdmission
from application.commands import StartInstance
from application.definitions import DefinitionCache, DefinitionService
from application.instances import InstanceService, KeyedIds
from application.ports import ConcurrencyConflictError, PendingCommit
from application.runner import CommandRunner
from infrastructure import metrics
from infrastructure.clock import SystemClock
from infrastructure.health import Check, breaker_component, evaluate
from infrastructure.memory import MemoryPorts
from infrastructure.observability import meter_commands
from infrastructure.schemas import JsonSchemaValidator
from infrastructure.telemetry import (
    JsonFormatter,
    TextFormatter,
    logging_about,
    parse_levels,
    redact,
    register_secrets,
)
from tests.tracing_support import traced

ROOT = Path(__file__).resolve().parents[2]
SPEC_METRICS = {
    "workflow_instances_started_total": "counter",
    "workflow_instances_completed_total": "counter",
    "workflow_instances_failed_total": "counter",
    "workflow_instances_active": "gauge",
    "workflow_activities_executed_total": "counter",
    "workflow_activities_failed_total": "counter",
    "workflow_activity_execution_duration_seconds": "histogram",
    "workflow_execution_duration_seconds": "histogram",
    "workflow_outbox_events_pending": "gauge",
    "workflow_outbox_processing_lag_seconds": "gauge",
    "workflow_timers_due": "gauge",
    "workflow_circuit_breaker_state": "gauge",
}
# Labels whose values are unbounded: never a metric label (docs/metrics.md).
UNBOUNDED = {"instance_id", "instance", "task_id", "activity_id", "url", "path", "error", "token"}


def scrape() -> dict[str, Any]:
    body, _ = metrics.exposition()
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def sample(name: str, **labels: str) -> float:
    """The current value of one sample (0 when absent)."""
    body, _ = metrics.exposition()
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def test_every_spec_metric_is_in_the_catalogue_with_its_type() -> None:
    for name, kind in SPEC_METRICS.items():
        assert name in metrics.METRICS, name
        assert metrics.METRICS[name].type == kind, name


def test_every_catalogued_metric_is_exposed_and_nothing_else() -> None:
    unbind = metrics.SYSTEM_GAUGES.bind(lambda: {}, 0)
    try:
        families = scrape()
    finally:
        unbind()
    exposed = set()
    for family in families.values():
        # The parser names counters without `_total`; the catalogue names the samples.
        exposed.add(family.name + "_total" if family.type == "counter" else family.name)
    assert exposed == set(metrics.METRICS)
    for name, info in metrics.METRICS.items():
        family = families[name.removesuffix("_total") if info.type == "counter" else name]
        assert family.type == info.type, name


def test_labels_are_bounded() -> None:
    for info in metrics.METRICS.values():
        assert not UNBOUNDED & set(info.labels), info.name


def test_docs_metrics_md_lists_every_metric_with_its_type() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    for name, info in metrics.METRICS.items():
        row = re.search(rf"^\| `{name}` \| {info.type} \|", text, re.MULTILINE)
        assert row, f"docs/metrics.md has no row for {name} ({info.type})"


def test_a_histogram_has_buckets_for_its_range() -> None:
    assert metrics.ACTION_BUCKETS[-1] >= 120  # the default action timeout is 2 min
    assert metrics.EXECUTION_BUCKETS[-1] >= 7 * 86400  # instances wait for days


WAIT = {
    "name": "waits",
    "nodes": [
        {"id": "hold", "type": "wait", "event": "go"},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "hold", "to": "done"}],
}


class ConflictingCommitter:
    """Loses the race `losses` times, then commits."""

    def __init__(self, store: Any, losses: int) -> None:
        from application.commit import ImmediateCommitter

        self.inner = ImmediateCommitter(store)
        self.losses = losses

    def commit(self, pending: PendingCommit) -> None:
        if self.losses > 0:
            self.losses -= 1
            raise ConcurrencyConflictError([i.id for i in pending.instances])
        self.inner.commit(pending)


def service_with(losses: int) -> InstanceService:
    ports = MemoryPorts.build()
    cache = DefinitionCache(ports.definitions)
    admission = StartAdmission(ports.definitions, cache, JsonSchemaValidator())
    runner = CommandRunner(
        ports.instances,
        cache,
        admission,
        SystemClock(),
        committer=ConflictingCommitter(ports.instances, losses),  # type: ignore[arg-type]
        retry_base_seconds=0.0,
    )
    meter_commands(runner, tenant_label=False)
    DefinitionService(ports.definitions, JsonSchemaValidator()).publish("acme", WAIT)
    return InstanceService(
        runner,
        ports.instances,
        cache,
        ports.definitions,
        ports.queries,
        admission,
        KeyedIds(os.urandom(32)),
    )


def test_commands_count_starts_steps_conflicts_and_outcomes() -> None:
    before = {
        "started": sample("workflow_instances_started_total", definition="waits"),
        "steps": sample("workflow_steps_total", definition="waits", node_type="wait"),
        "conflicts": sample("workflow_command_conflicts_total"),
        "committed": sample("workflow_commands_total", outcome="committed"),
    }
    service_with(losses=2).start(StartInstance("acme", "waits"))
    assert sample("workflow_instances_started_total", definition="waits") == before["started"] + 1
    assert sample("workflow_steps_total", definition="waits", node_type="wait") == (
        before["steps"] + 1
    )
    assert sample("workflow_command_conflicts_total") == before["conflicts"] + 2
    assert sample("workflow_commands_total", outcome="committed") == before["committed"] + 1


def test_a_command_whose_budget_runs_out_counts_as_a_conflict() -> None:
    from application.errors import CommandConflictError

    before = sample("workflow_commands_total", outcome="conflict")
    with pytest.raises(CommandConflictError):
        service_with(losses=100).start(StartInstance("acme", "waits"))
    assert sample("workflow_commands_total", outcome="conflict") == before + 1


def test_the_tenant_label_is_empty_unless_switched_on() -> None:
    assert metrics.tenant_label("acme", False) == ""
    assert metrics.tenant_label("acme", True) == "acme"


# --- health ---------------------------------------------------------------------------


def test_health_marks_durations_descriptions_and_readiness() -> None:
    report = evaluate(
        [
            Check("database", lambda: {"status": "up"}, critical=True),
            Check("breakers", lambda: breaker_component({"api.example": {"state": "half-open"}})),
            Check("absent", lambda: None),
        ]
    )
    assert report.ready and report.status == "degraded"
    assert set(report.components) == {"database", "breakers"}
    breakers = report.components["breakers"]
    assert "circuit breaker is half-open" in breakers["description"]
    assert breakers["targets"]["api.example"]["description"] == "circuit breaker is half-open"
    assert all(c["duration_ms"] >= 0 for c in report.components.values())


def test_a_critical_component_down_makes_the_process_unready() -> None:
    def broken() -> dict[str, Any]:
        raise OSError("connection refused to db.internal")

    report = evaluate([Check("database", broken, critical=True)])
    assert not report.ready and report.status == "unavailable"
    assert report.components["database"] == {
        "status": "down",
        "error": "OSError",
        "description": "database is down",
        "duration_ms": report.components["database"]["duration_ms"],
    }
    # Negative control: a non-critical component down only degrades.
    assert evaluate([Check("breakers", broken)]).ready


# --- logs -----------------------------------------------------------------------------


def formatted(formatter: logging.Formatter, message: str, *args: Any, **extra: Any) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("waymark.test.logs")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning(message, *args, extra=extra)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_json_logs_are_one_object_per_line_with_trace_instance_and_tenant() -> None:
    from opentelemetry import trace

    with (
        traced(),
        trace.get_tracer("t").start_as_current_span("work") as span,
        logging_about(instance_id="0b6c", tenant="acme"),
    ):
        line = formatted(JsonFormatter(), "fired %s timers", 3)
    assert line.count("\n") == 1
    entry = json.loads(line)
    assert entry["message"] == "fired 3 timers"
    assert entry["level"] == "WARNING" and entry["logger"] == "waymark.test.logs"
    assert entry["instance_id"] == "0b6c" and entry["tenant"] == "acme"
    assert entry["trace_id"] == format(span.get_span_context().trace_id, "032x")


def test_json_logs_keep_a_traceback_on_one_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("waymark.test.exc")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("password=hunter22 rejected")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert "ValueError" in entry["exc_info"] and "hunter22" not in entry["exc_info"]


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_secrets_and_callback_tokens_are_never_logged(formatter: logging.Formatter) -> None:
    api_key = "wmk_live_4f9a42b0d096c18ea110"
    register_secrets([api_key])
    token = "Zk3q-abcdefghijklmnop_qrstuvwxyz012345"
    out = formatted(
        formatter,
        '%s %s from %s; smtp password=%s; body {"api_key": "%s"}',
        "POST",
        f"/v1/callbacks/{token}?sig=1",
        f"Authorization: Bearer {api_key}",
        "s3cr3t-pw",
        "ak_inline_123456",
    )
    for secret in (token, api_key, "s3cr3t-pw", "ak_inline_123456"):
        assert secret not in out
    assert "/v1/callbacks/<redacted>" in out
    assert redact("postgresql://waymark:pw-9f3k@db:5432/w") == (
        "postgresql://waymark:<redacted>@db:5432/w"
    )
    # Negative control: ordinary words and ids are left alone.
    assert redact("instance 0b6c completed node approve") == "instance 0b6c completed node approve"


def test_per_logger_levels_are_parsed_and_checked() -> None:
    assert parse_levels("waymark.workers=debug, uvicorn.access=WARNING") == {
        "waymark.workers": "DEBUG",
        "uvicorn.access": "WARNING",
    }
    with pytest.raises(ValueError, match="entry 2"):
        parse_levels("a=INFO,b")
