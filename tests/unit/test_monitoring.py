"""deploy/: the Prometheus alert rules and the Grafana dashboard parse, have what an operator
needs (severity, summary, a runbook entry that exists), and name only metrics Waymark
exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "waymark-dashboard.json"
RUNBOOK = ROOT / "docs" / "runbook.md"

# The ONE list of metric names the rules and panels may use, until the metrics catalogue
# (`infrastructure.metrics.METRICS`, name -> type/help/labels) exists; once it does,
# `known_metrics()` uses it instead and this list is only the fallback.
METRIC_NAMES = (
    # SPEC §6 ("Metrics (at least)").
    "workflow_instances_started_total",
    "workflow_instances_completed_total",
    "workflow_instances_failed_total",
    "workflow_instances_active",
    "workflow_activities_executed_total",
    "workflow_activities_failed_total",
    "workflow_activity_execution_duration_seconds",
    "workflow_execution_duration_seconds",
    "workflow_outbox_events_pending",
    "workflow_outbox_processing_lag_seconds",
    "workflow_timers_due",
    "workflow_circuit_breaker_state",
    # Beyond SPEC §6 (issue 12: HTTP requests, database pool, system gauges), as the
    # catalogue names them.
    "workflow_system_gauges_up",
    "workflow_db_pool_waiting",
    "workflow_instances_stuck",
    "workflow_task_sla_compliance_ratio",
    "workflow_db_pool_size",
    "workflow_db_pool_available",
    "http_requests_total",
    "http_request_duration_seconds",
)
# Series Prometheus itself adds to every target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds"}
# The alert names the customer's operations guide uses (SEEDS), kept exactly.
EXPECTED_ALERTS = {
    "WorkflowHighErrorRate",
    "WorkflowOutboxLag",
    "WorkflowDatabaseDown",
    "WorkflowTimersBehind",
    "WorkflowCircuitBreakerOpen",
    "WorkflowSLAComplianceLow",
    "WorkflowStuckInstances",
}
SEVERITIES = {"critical", "warning", "info"}
SAMPLE_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan",
}  # fmt: skip


def known_metrics() -> set[str]:
    """Metric names as a Prometheus exposition shows them (counters with `_total`,
    histograms with `_bucket`/`_sum`/`_count`)."""
    try:
        from infrastructure.metrics import METRICS  # type: ignore[import-not-found]

        # A mapping name -> description, or a collection of metric objects with a `name`.
        names = {getattr(entry, "name", entry) for entry in METRICS}
    except ImportError:
        names = set(METRIC_NAMES)
    samples = set(PROMETHEUS_SERIES)
    for name in names:
        base = name.removesuffix("_total")
        samples |= {name, base, *(base + suffix for suffix in SAMPLE_SUFFIXES)}
    return samples


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a minimal lexer, not a parser): strings,
    label matchers, range/subquery brackets and `by (...)`-style label lists are dropped;
    what remains that is an identifier, not a function call and not a keyword, is a metric."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("("):
            continue  # a function or an aggregation operator
        if match.group().lower() in KEYWORDS:
            continue
        names.add(match.group())
    return names


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def runbook_anchors() -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


def test_the_lexer_finds_metrics_and_skips_functions_labels_and_durations() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, node_type) (rate(a_bucket{job=~"x", le!="b"}'
        "[5m] offset 1d))) > 2 * max without (pod) (b) / on(job) group_left(team) c_total"
        " unless ignoring(x) d or max(min_over_time(e[15m:1m])) > 1e3"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c_total", "d", "e"}


def test_the_rules_parse_and_carry_what_an_operator_needs() -> None:
    anchors = runbook_anchors()
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    assert set(names) >= EXPECTED_ALERTS
    for rule in rules():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"]
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/runbook.md" and anchor in anchors, rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_every_alert_names_only_metrics_that_exist(rule: dict[str, Any]) -> None:
    used = metric_names(rule["expr"])
    assert used, f"{rule['alert']}: no metric found in {rule['expr']!r}"
    assert used <= known_metrics(), f"{rule['alert']}: unknown {used - known_metrics()}"


def test_an_unknown_metric_is_caught() -> None:
    # Negative control: a misspelt metric in an expression is not in the known set.
    assert metric_names("max(workflow_outbox_lag_seconds) > 300") - known_metrics()


def test_the_dashboard_is_valid_json_and_its_panels_name_known_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    assert len(exprs) >= 12
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= known_metrics(), f"unknown {names - known_metrics()} in {expr!r}"
        used |= names
    # Every SPEC §6 metric has a panel.
    for spec_metric in METRIC_NAMES[:12]:
        base = spec_metric.removesuffix("_total")
        assert any(name.startswith(base) for name in used), spec_metric
