"""Every process configures logging through infrastructure/telemetry.py."""

from __future__ import annotations

import logging
import subprocess
import sys

from infrastructure.telemetry import RedactCallbackTokens, configure_logging


def test_configure_logging_sets_the_level_and_one_redacting_filter() -> None:
    access = logging.getLogger("uvicorn.access")
    root = logging.getLogger()
    saved_level, saved_filters = root.level, list(access.filters)
    try:
        configure_logging("warning")
        configure_logging("debug")  # a second call (serve, then its lifespan) adds nothing
        assert root.level == logging.DEBUG
        assert sum(isinstance(f, RedactCallbackTokens) for f in access.filters) == 1
    finally:
        root.setLevel(saved_level)
        access.filters[:] = saved_filters


def test_the_cli_modules_take_logging_from_telemetry_not_from_the_api() -> None:
    # `waymark migrate` and `waymark worker` configure logging without importing the API.
    code = (
        "import sys; import api.cli; from infrastructure.telemetry import configure_logging; "
        "configure_logging('INFO'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
