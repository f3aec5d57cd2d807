"""The built-in functions an expression may call (`FUNCTIONS`), with guards on costly inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from domain.expressions.limits import MAX_INT_STRING, MAX_ROUND_DIGITS, ExpressionError


def _int(value: Any = 0, *base: int) -> int:
    if isinstance(value, str) and len(value) > MAX_INT_STRING:
        raise ExpressionError("int(): string is too long to convert")
    return int(value, *base)


def _round(number: Any, ndigits: Any = None) -> Any:
    if ndigits is None:
        return round(number)
    if not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS:
        raise ExpressionError(f"round(): ndigits must be an integer within ±{MAX_ROUND_DIGITS}")
    return round(number, ndigits)


def _sum(values: Any, start: Any = 0) -> Any:
    items = list(values)
    # Only numbers: sum() over lists or tuples is quadratic and would dodge the size checks.
    if not all(isinstance(item, (int, float)) for item in [*items, start]):
        raise ExpressionError("sum(): only numbers can be summed")
    return sum(items, start)


def _get(obj: Any, key: Any, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    if isinstance(obj, (list, tuple)) and isinstance(key, int) and -len(obj) <= key < len(obj):
        return obj[key]
    return default


# name -> (implementation, the type every positional argument must have, or None)
FUNCTIONS: dict[str, tuple[Callable[..., Any], type | None]] = {
    **{f.__name__: (f, None) for f in (len, str, float, bool, abs, min, max, any, all, sorted)},
    **{f.__name__: (f, str) for f in (str.lower, str.upper, str.startswith, str.endswith)},
    "int": (_int, None),
    "round": (_round, None),
    "sum": (_sum, None),
    "get": (_get, None),
    "contains": (lambda container, item: item in container, None),
    "keys": (lambda obj: list(obj.keys()), Mapping),
    "values": (lambda obj: list(obj.values()), Mapping),
}
