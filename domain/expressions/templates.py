"""The text side of `{{ expr }}` templates: splitting a template and formatting values as text.

Evaluating the expressions is `domain.expressions`' job (`render_template`, `render_value`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from domain.expressions.limits import ExpressionError


def split_template(template: str) -> list[tuple[bool, str]]:
    """(is_expression, text) parts of a template; the first `}}` closes a `{{`."""
    if not isinstance(template, str):
        raise ExpressionError(f"template must be a string, not {type(template).__name__}")
    parts: list[tuple[bool, str]] = []
    position = 0
    while (start := template.find("{{", position)) != -1:
        end = template.find("}}", start + 2)
        if end == -1:
            raise ExpressionError(f"'{{{{' at position {start} has no closing '}}}}'", template)
        expression = template[start + 2 : end].strip()
        if not expression:
            raise ExpressionError(f"empty '{{{{ }}}}' at position {start}", template)
        if start > position:
            parts.append((False, template[position:start]))
        parts.append((True, expression))
        position = end + 2
    if position < len(template):
        parts.append((False, template[position:]))
    return parts


def template_expressions(template: str) -> list[str]:
    """The expression sources inside each `{{ }}` of a template, in order."""
    return [text for is_expression, text in split_template(template) if is_expression]


def format_value(value: Any) -> str:
    """A value as template text: null is empty, booleans true/false, containers compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Mapping, list, tuple)):
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ExpressionError(f"cannot render value as JSON: {exc}") from None
    return str(value)
