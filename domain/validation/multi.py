"""Publish-time checks of the multi-instance field (`for_each`, `domain.engine.multi`)."""

from __future__ import annotations

import re
from typing import Any

from domain.engine.multi import MODES, RESERVED_NAMES
from domain.validation.fields import check_fields, enum, expect, expression, pattern
from domain.validation.report import Path, Report, short

_AS = pattern(re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}"), "an identifier (letters, digits, _)")


def _as_name(report: Report, parts: Path, value: Any) -> None:
    _AS(report, parts, value)
    if isinstance(value, str) and value in RESERVED_NAMES:
        names = ", ".join(sorted(RESERVED_NAMES))
        report.about(
            parts, "invalid_value", f"{short(value)} is a name expressions already use ({names})"
        )


_FOR_EACH_FIELDS = {
    "items": expression,
    "as": _as_name,
    "mode": enum(*MODES),
    "completion": expression,
}


def for_each(report: Report, parts: Path, value: Any) -> None:
    """`{"items": <expr>, "as": name, "mode": "parallel"|"sequential", "completion": <expr>}`."""
    if expect(report, parts, value, "object"):
        check_fields(report, parts, value, _FOR_EACH_FIELDS, required=("items",))
