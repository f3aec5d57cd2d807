"""Telemetry: how every process (serve, each worker, migrate) logs.

Metrics and traces will live here too; for now, plain-text logs at the configured level and
the filter that keeps callback tokens out of the access log.
"""

from __future__ import annotations

import logging
import re


def configure_logging(level: str) -> None:
    """Plain-text logs at the configured level (uvicorn keeps its own handlers)."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger().setLevel(level.upper())
    # Filtering the logger is harmless in a process without uvicorn: nothing logs to it.
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactCallbackTokens) for f in access.filters):
        access.addFilter(RedactCallbackTokens())


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
