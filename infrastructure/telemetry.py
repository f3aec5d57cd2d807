"""Telemetry: how every process (serve, each worker, migrate) logs.

- `WAYMARK_LOG_FORMAT=text` (default): readable lines for development.
- `WAYMARK_LOG_FORMAT=json`: one JSON object per line with `time`, `level`, `logger`,
  `message`, the current `trace_id`/`span_id` (OpenTelemetry) and the `instance_id` and
  `tenant` the work is about (`log_context`, bound by the HTTP request, the task worker's
  action, the timer worker's firing), plus `exc_info` when there is one.
- `WAYMARK_LOG_LEVELS=logger=LEVEL,...`: per-logger levels over `WAYMARK_LOG_LEVEL`.

Secrets never reach a log line: callback tokens in paths, `Bearer` credentials, values of
keys named like a secret (`password=`, `"token": ...`), and every configured secret value
(`register_secrets`: API keys, tenant secrets) are replaced by `<redacted>` when a record is
formatted, whichever logger wrote it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

REDACTED = "<redacted>"
_SECRET_KEY = r"(?:password|passwd|secret|token|api[_-]?key|authorization|signature)"  # noqa: S105
_PATTERNS = (
    (re.compile(r"(/v1/callbacks/)[^/?\s\"']+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + REDACTED),
    # Credentials in URLs: postgresql://user:pw@host, https://user:pw@host.
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
    (
        re.compile(r"(?i)(\b[\w-]*" + _SECRET_KEY + r"[\w-]*[\"']?\s*[=:]\s*[\"']?)[^\s\"',&}]+"),
        r"\1" + REDACTED,
    ),
)
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words

# The work a log line is about: a dict shared by the contexts copied from where it was bound
# (a request's threadpool calls see what the request bound, and may add to it).
_log_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "waymark_log_context", default=None
)


def register_secrets(values: Iterable[str]) -> None:
    """Configured secret values (API keys, tenant secrets): never written to a log."""
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_LENGTH)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def log_context() -> dict[str, str]:
    """The current work's fields (instance_id, tenant); empty outside any bound work."""
    return _log_context.get() or {}


def begin_log_context() -> contextvars.Token[dict[str, str] | None]:
    """A fresh, shared context for one unit of work (an HTTP request)."""
    return _log_context.set({})


def end_log_context(token: contextvars.Token[dict[str, str] | None]) -> None:
    _log_context.reset(token)


def bind_log_context(**fields: str | None) -> None:
    """Add fields to the current unit of work's context (no-op outside one)."""
    current = _log_context.get()
    if current is not None:
        current.update({k: str(v) for k, v in fields.items() if v is not None})


@contextmanager
def logging_about(**fields: str | None) -> Iterator[None]:
    """Log lines within are about this work (a worker's activity or timer)."""
    token = _log_context.set({k: str(v) for k, v in fields.items() if v is not None})
    try:
        yield
    finally:
        _log_context.reset(token)


def _trace_ids() -> tuple[str | None, str | None]:
    from opentelemetry import trace

    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None, None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


class TextFormatter(logging.Formatter):
    """Readable lines (development), secrets redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record (production), secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        trace_id, span_id = _trace_ids()
        if trace_id is not None:
            entry["trace_id"], entry["span_id"] = trace_id, span_id
        context = log_context()
        for key in ("instance_id", "tenant"):
            value = getattr(record, key, None) or context.get(key)
            if value is not None:
                entry[key] = str(value)
        if record.exc_info:
            entry["exc_info"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, *, fmt: str = "text", levels: str = "") -> None:
    """Logs at `level`, as text or JSON lines, every handler of the root redacting secrets.

    uvicorn keeps its own handlers in text mode; in JSON mode `waymark serve` gives it none,
    so its records reach the root's JSON handler."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    ours: list[logging.Handler] = [h for h in root.handlers if getattr(h, "waymark", False)]
    if not root.handlers:  # a handler of ours (a test runner may have put its own there)
        stream = logging.StreamHandler()
        stream.waymark = True  # type: ignore[attr-defined]
        root.addHandler(stream)
        ours = [stream]
    for handler in ours:
        handler.setFormatter(formatter)
    for name, name_level in parse_levels(levels).items():
        logging.getLogger(name).setLevel(name_level)
    # Filtering the logger is harmless in a process without uvicorn: nothing logs to it.
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactCallbackTokens) for f in access.filters):
        access.addFilter(RedactCallbackTokens())


def parse_levels(text: str) -> dict[str, str]:
    """`a.b=DEBUG,c=warning` → {"a.b": "DEBUG", "c": "WARNING"} (malformed: ValueError)."""
    parsed = {}
    for position, entry in enumerate(text.split(","), start=1):
        if not entry.strip():
            continue
        name, sep, value = entry.partition("=")
        value = value.strip().upper()
        if not sep or not name.strip() or value not in logging.getLevelNamesMapping():
            raise ValueError(
                f"WAYMARK_LOG_LEVELS entry {position} is malformed: expected 'logger=LEVEL'"
            )
        parsed[name.strip()] = value
    return parsed


class RedactCallbackTokens(logging.Filter):
    """Callback tokens are bearer capabilities: keep them out of the access log."""

    PATTERN = re.compile(r"(/v1/callbacks/)[^/?\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.PATTERN.sub(r"\1<redacted>", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True
