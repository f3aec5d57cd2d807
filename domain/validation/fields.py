"""Field checkers for validating definition documents, and `check_fields` that runs them.

A checker is `(report, path, value) -> None`: it reports what is wrong with one value. Each
object kind's table of checkers is in `domain.validation.document`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from domain.durations import MAX_DURATION, format_duration, looks_like_duration, parse_duration
from domain.expressions.evaluator import ExpressionError, compile_expression, template_expressions
from domain.validation.report import Path, Report, short, type_name
from domain.values import MAX_VALUE_DEPTH, NUL

Checker = Callable[[Report, Path, Any], None]


def _is(value: Any, expected: str) -> bool:
    if isinstance(value, bool):
        return expected == "boolean"
    if expected == "integer":
        return isinstance(value, int)
    if expected == "number":
        return isinstance(value, int | float)
    return isinstance(value, {"string": str, "object": dict, "array": list}.get(expected, ()))


def expect(report: Report, parts: Path, value: Any, expected: str) -> bool:
    if _is(value, expected):
        return True
    report.about(parts, "invalid_type", f"expected {expected}, got {type_name(value)}")
    return False


def typed(expected: str) -> Checker:
    def check(report: Report, parts: Path, value: Any) -> None:
        expect(report, parts, value, expected)

    return check


def number(
    minimum: float, *, exclusive: bool = False, maximum: float | None = None, integer: bool = False
) -> Checker:
    kind = "integer" if integer else "number"
    article = "an" if integer else "a"
    bound = f"greater than {minimum}" if exclusive else f"at least {minimum}"
    bound += f" and at most {maximum}" if maximum is not None else ""

    def check(report: Report, parts: Path, value: Any) -> None:
        if not expect(report, parts, value, kind):
            return
        low_ok = value > minimum if exclusive else value >= minimum
        finite = isinstance(value, int) or math.isfinite(value)
        if not (finite and low_ok and (maximum is None or value <= maximum)):
            report.about(
                parts, "invalid_value", f"must be {article} {kind} {bound}, got {short(value)}"
            )

    return check


def enum(*choices: str) -> Checker:
    def check(report: Report, parts: Path, value: Any) -> None:
        if expect(report, parts, value, "string") and value not in choices:
            report.about(
                parts, "invalid_value", f"must be one of {', '.join(choices)}, got {short(value)}"
            )

    return check


def pattern(regex: re.Pattern[str], what: str) -> Checker:
    def check(report: Report, parts: Path, value: Any) -> None:
        if expect(report, parts, value, "string") and not regex.fullmatch(value):
            report.about(parts, "invalid_value", f"must be {what}, got {short(value)}")

    return check


def skip(report: Report, parts: Path, value: Any) -> None:
    """For fields checked elsewhere, or that may hold any JSON value."""


def object_with(fields: Mapping[str, Checker]) -> Checker:
    def check(report: Report, parts: Path, value: Any) -> None:
        if expect(report, parts, value, "object"):
            check_fields(report, parts, value, fields)

    return check


def check_fields(
    report: Report,
    parts: Path,
    obj: dict[str, Any],
    fields: Mapping[str, Checker],
    required: tuple[str, ...] = (),
    owner: str | None = None,
    strict: bool = True,
) -> None:
    """Run each present field's checker; report unknown keys (if strict) and missing ones."""
    owner = owner or report.where(parts)
    for key, value in obj.items():
        checker = fields.get(key)
        if checker is not None:
            checker(report, parts + (key,), value)
        elif strict:
            report.add(parts + (str(key),), "unknown_field", f"{owner} has unknown field '{key}'")
    for key in required:
        if key not in obj:
            report.add(parts + (key,), "missing_field", f"{owner} is missing required '{key}'")


string = typed("string")
boolean = typed("boolean")
json_object = typed("object")
integer = typed("integer")
positive = number(0, exclusive=True)


def duration_up_to(maximum: timedelta) -> Checker:
    """An ISO-8601 duration no longer than `maximum` (a due time PostgreSQL can hold)."""

    def check(report: Report, parts: Path, value: Any) -> None:
        if not expect(report, parts, value, "string"):
            return
        try:
            parsed = parse_duration(value)
        except ValueError as exc:
            report.about(parts, "invalid_duration", str(exc))
            return
        if parsed > maximum:
            report.about(
                parts,
                "invalid_duration",
                f"duration {short(value)} is longer than the maximum {format_duration(maximum)}",
            )

    return check


duration = duration_up_to(MAX_DURATION)


def duration_or_expression(report: Report, parts: Path, value: Any) -> None:
    """An ISO-8601 duration (`PT5M`), or an expression giving one when the node runs
    (`vars.delay`, `input.hours * 3600`: a duration string or a number of seconds)."""
    if not expect(report, parts, value, "string"):
        return
    if looks_like_duration(value):
        duration(report, parts, value)
        return
    try:
        compile_expression(value)
    except (ExpressionError, ValueError, TypeError, RecursionError) as exc:
        why = exc.message if isinstance(exc, ExpressionError) else str(exc)
        report.about(
            parts,
            "invalid_duration",
            f"{short(value)} is neither an ISO-8601 duration (e.g. 'PT30S', 'PT1H') nor a "
            f"valid expression giving one: {why}",
        )


def _compiles(report: Report, parts: Path, source: str) -> bool:
    try:
        compile_expression(source)
    except ExpressionError as exc:
        message = exc.message
    except (ValueError, TypeError, RecursionError) as exc:  # the evaluator must not crash us
        message = str(exc) or type(exc).__name__
    else:
        return True
    report.about(parts, "invalid_expression", f"invalid expression {short(source)}: {message}")
    return False


def expression(report: Report, parts: Path, value: Any) -> None:
    if expect(report, parts, value, "string"):
        _compiles(report, parts, value)


def expression_map(key_checker: Checker = skip) -> Checker:
    """An object whose values are expressions (and whose keys pass `key_checker`)."""

    def check(report: Report, parts: Path, value: Any) -> None:
        if expect(report, parts, value, "object"):
            for key, source in value.items():
                key_checker(report, parts + (key,), key)
                expression(report, parts + (key,), source)

    return check


def _template(report: Report, parts: Path, text: str) -> None:
    try:
        sources = template_expressions(text)
    except ExpressionError as exc:
        report.about(parts, "invalid_expression", f"invalid template {short(text)}: {exc.message}")
        return
    for source in sources:
        if not _compiles(report, parts, source):
            return


def template_string(report: Report, parts: Path, value: Any) -> None:
    if expect(report, parts, value, "string"):
        _template(report, parts, value)


def templates_within(report: Report, parts: Path, value: Any) -> None:
    """Check the `{{ }}` templates of every string nested anywhere in `value`."""
    if isinstance(value, str):
        _template(report, parts, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            templates_within(report, parts + (str(key),), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            templates_within(report, parts + (index,), item)


def string_list(report: Report, parts: Path, value: Any) -> None:
    if expect(report, parts, value, "array"):
        for index, item in enumerate(value):
            expect(report, parts + (index,), item, "string")


def storable_characters(report: Report, document: Any) -> None:
    """Report every string (key or value) PostgreSQL cannot store, every non-finite number
    and nesting past `MAX_VALUE_DEPTH`, anywhere in the document, each with its path."""
    stack: list[tuple[Path, Any]] = [((), document)]
    while stack:
        parts, value = stack.pop()
        if len(parts) > MAX_VALUE_DEPTH:
            report.about(parts, "invalid_value", f"nests deeper than {MAX_VALUE_DEPTH} levels")
            continue
        if isinstance(value, str):
            _storable_text(report, parts, value)
        elif isinstance(value, float) and not math.isfinite(value):
            report.about(parts, "invalid_value", f"{value!r} is not a finite number")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and _storable_text(report, parts + (key,), key, "key"):
                    continue
                stack.append((parts + (key,), item))
        elif isinstance(value, list):
            stack.extend((parts + (index,), item) for index, item in enumerate(value))


def _storable_text(report: Report, parts: Path, text: str, what: str = "string") -> bool:
    """Report a NUL or a lone surrogate in `text`; True when one was found."""
    if NUL in text:
        report.about(parts, "invalid_value", f"the {what} holds a NUL character (\\u0000)")
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        report.about(parts, "invalid_value", f"the {what} holds a lone surrogate (not UTF-8)")
        return True
    return False
