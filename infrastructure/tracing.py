"""OpenTelemetry traces: one trace from the HTTP command through the engine, the task
worker's action (an HTTP client span with a propagated `traceparent`), the outbox publish
(the context in the Kafka headers) and the timer that later resumes the instance.

Off by default. `configure_tracing` installs the SDK when the standard variables ask for an
exporter: `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (OTLP over
HTTP) or `OTEL_TRACES_EXPORTER` (`otlp`, `console`); `OTEL_SDK_DISABLED=true` keeps it off.
Sampling is the SDK's (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`; e.g.
`parentbased_traceidratio` and `0.1` for 10 %). Without an SDK provider every span here is a
no-op of the OpenTelemetry API.

The hop between processes: a command's `traceparent` goes into the activities and
bookmarks it creates (`CommandEnv.trace_context`, stored in their events and rows); the
worker that runs or fires them opens its span as a child of that context.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from domain.instance import WorkflowInstance
from infrastructure.telemetry import logging_about

if TYPE_CHECKING:
    from application.ports import PendingCommit
    from application.read_models import ActivityRow, BookmarkRow
    from application.runner import CommandRunner

logger = logging.getLogger(__name__)

TRACER = trace.get_tracer("waymark")
_PROPAGATOR = TraceContextTextMapPropagator()
_state = {"active": False, "httpx": False}


def enabled() -> bool:
    """Tracing is on in this process (configure_tracing installed the SDK, or a test
    activated its own provider): cores built from now on trace their commands."""
    return _state["active"]


def activate(provider: Any | None = None) -> None:
    """Turn tracing on (with `provider` as the global tracer provider when given and none
    is set yet) and instrument httpx; `deactivate` undoes both (tests)."""
    if provider is not None:
        trace.set_tracer_provider(provider)
    _state["active"] = True
    if not _state["httpx"]:
        try:
            from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

            HTTPXClientInstrumentor().instrument()
            _state["httpx"] = True
        except Exception:  # the instrumentation is optional: our own spans still work
            logger.exception("tracing: the httpx instrumentation could not be installed")


def deactivate() -> None:
    _state["active"] = False
    if _state["httpx"]:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor().uninstrument()
        _state["httpx"] = False


def wanted() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    return bool(exporter or endpoint)


def configure_tracing(process: str) -> bool:
    """Install the SDK with the exporter the OTEL_* variables name; True when tracing."""
    if not enabled():
        if not wanted():
            return False
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        name = os.environ.get("OTEL_SERVICE_NAME") or f"waymark-{process}"
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
        exporters = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",")
        for exporter_name in (e.strip() for e in exporters):
            if exporter_name == "console":
                provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
            elif exporter_name == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        activate(provider)
        logger.info("tracing: exporting spans as %s (service %s)", ",".join(exporters), name)
    return True


def shutdown_tracing() -> None:
    """Flush the spans still buffered (a process that exits on SIGTERM)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "force_flush", None)
    if shutdown is not None:
        shutdown()


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span; None when nothing is traced."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str | None) -> context.Context | None:
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def inject_headers(headers: list[tuple[str, bytes]]) -> None:
    """Add the current trace context to Kafka message headers (W3C names, bytes values)."""
    if not enabled():
        return
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    headers.extend((key, value.encode()) for key, value in carrier.items())


@contextmanager
def command_span() -> Iterator[None]:
    """The span of one command (re-decisions included); steps become its children."""
    with TRACER.start_as_current_span("workflow.command", kind=trace.SpanKind.INTERNAL):
        yield


class CommitSpans:
    """After a commit: the command span names its instance, one child span per step."""

    def __call__(self, pending: PendingCommit) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        by_id = {i.id: i for i in pending.instances}
        first = pending.instances[0] if pending.instances else None
        if first is not None:
            span.set_attributes(_instance_attributes(first))
        for event in pending.events:
            if not isinstance(event, WorkflowInstance.NodeEntered):
                continue
            instance = by_id.get(event.originator_id)
            attributes = _instance_attributes(instance) if instance is not None else {}
            attributes["workflow.node_id"] = event.node_id
            attributes["workflow.node_type"] = event.node_type
            TRACER.start_span(f"workflow.step {event.node_type}", attributes=attributes).end()


def _instance_attributes(instance: WorkflowInstance) -> dict[str, Any]:
    return {
        "workflow.instance_id": str(instance.id),
        "workflow.definition": instance.definition,
        "workflow.definition_version": instance.definition_version,
    }


def trace_runner(runner: CommandRunner) -> None:
    """Commands become spans and hand their trace context to what they schedule."""
    runner.command_scope = command_span
    runner.trace_context = current_traceparent
    runner.on_committed.append(CommitSpans())


@contextmanager
def action_span(row: ActivityRow, action_type: str) -> Iterator[None]:
    """The task worker's run of one action, a child of the command that scheduled it."""
    attributes: dict[str, Any] = {
        "workflow.instance_id": str(row.instance_id),
        "workflow.node_id": row.node_id,
        "workflow.activity_id": row.id,
        "workflow.attempt": row.attempt,
        "workflow.action_type": action_type,
    }
    with _row_span(row, f"workflow.activity {action_type}", attributes):
        yield


@contextmanager
def timer_span(row: BookmarkRow) -> Iterator[None]:
    """The timer worker's firing of one timer, a child of the command that set it."""
    attributes: dict[str, Any] = {
        "workflow.instance_id": str(row.instance_id),
        "workflow.node_id": row.node_id,
        "workflow.bookmark_kind": row.kind,
    }
    with _row_span(row, f"workflow.timer {row.kind}", attributes):
        yield


@contextmanager
def _row_span(
    row: ActivityRow | BookmarkRow, name: str, attributes: dict[str, Any]
) -> Iterator[None]:
    """Logs about the row's instance and, traced, a span `name` continuing the row's stored
    trace context (its scheduling command's)."""
    if not enabled():
        with logging_about(instance_id=str(row.instance_id), tenant=row.tenant):
            yield
        return
    with (
        logging_about(instance_id=str(row.instance_id), tenant=row.tenant),
        TRACER.start_as_current_span(
            name,
            context=context_of(row.trace_context),
            kind=trace.SpanKind.INTERNAL,
            attributes=attributes,
        ),
    ):
        yield


@contextmanager
def publish_span(instance_id: str, event_type: str, data: Any) -> Iterator[None]:
    """One outbox message to Kafka (a producer span); the parent is the trace context the
    event itself carries (an activity's or a bookmark's), else the span starts a trace."""
    if not enabled():
        yield
        return
    with TRACER.start_as_current_span(
        f"workflow.outbox publish {event_type}",
        context=context_of(_stored_context(data)),
        kind=trace.SpanKind.PRODUCER,
        attributes={
            "workflow.instance_id": instance_id,
            "messaging.system": "kafka",
            "messaging.operation": "publish",
            "cloudevents.event_type": event_type,
        },
    ):
        yield


def _stored_context(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    for key in ("activity", "bookmark"):
        inner = data.get(key)
        if isinstance(inner, dict) and isinstance(inner.get("trace_context"), str):
            return str(inner["trace_context"])
    value = data.get("trace_context")
    return value if isinstance(value, str) else None
