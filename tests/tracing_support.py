"""An in-memory span exporter for the tests: the SDK's provider, installed once per process
(OpenTelemetry allows one global provider), and tracing switched on only while a test asks
for it (`traced()`), so cores built by other tests in the same process trace nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from infrastructure import tracing

EXPORTER = InMemorySpanExporter()


@contextmanager
def traced() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        tracing.activate(provider)
    else:
        tracing.activate()
    EXPORTER.clear()
    try:
        yield EXPORTER
    finally:
        tracing.deactivate()
        EXPORTER.clear()


def spans_named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def trace_id_of(traceparent: str) -> int:
    return int(traceparent.split("-")[1], 16)
