"""The limits that bound every expression, the error every failure raises, and the size guards.

Every operation that could blow up (`**`, `*`, `+`, repetition) is checked *before* it runs
(`precheck`, `charge_repetition`), and every produced value is checked after (`checked`).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from typing import Any

MAX_SOURCE_LENGTH = 2_000  # characters of expression source
MAX_NODES = 500  # expression nodes in the parsed tree
MAX_DEPTH = 50  # nesting of expression nodes; also bounds the interpreter's recursion
MAX_STEPS = 10_000  # nodes visited during one evaluation
MAX_INT_BITS = 4_096
MAX_LENGTH = 100_000  # characters of a produced string / elements of a produced container
MAX_ROUND_DIGITS = 300  # round(n, -k) computes 10**k internally
MAX_INT_STRING = 5_000  # str -> int conversion is quadratic in the number of digits


class ExpressionError(ValueError):
    """An expression that cannot be compiled, or that failed or hit a limit while evaluating."""

    def __init__(self, message: str, expression: str = ""):
        super().__init__(message, expression)
        self.message = message
        self.expression = expression

    def __str__(self) -> str:
        return f"{self.message} (in {self.expression!r})" if self.expression else self.message


def _weight(value: Any, limit: int) -> int:
    """Characters plus elements in value, nested containers included; stops counting past limit."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, (list, tuple, set, frozenset, Mapping)):
            total += len(item)
            if total <= limit:
                stack.extend(item.values() if isinstance(item, Mapping) else item)
    return total


def precheck(op: type, left: Any, right: Any) -> None:
    """Refuse arithmetic whose result would exceed the limits, before computing it."""
    ints = isinstance(left, int) and isinstance(right, int)
    if op is ast.Pow and ints and right > 0:
        # (bit_length - 1) * exponent is a lower bound on the result's bits; `checked` catches
        # the rest after computing at most about twice the allowed size.
        if (abs(left).bit_length() - 1) * right > MAX_INT_BITS:
            raise ExpressionError(f"integer result of '**' would exceed {MAX_INT_BITS} bits")
    elif op is ast.Mult and ints:
        if left.bit_length() + right.bit_length() - 1 > MAX_INT_BITS:
            raise ExpressionError(f"integer result of '*' would exceed {MAX_INT_BITS} bits")
    elif op is ast.Add and isinstance(left, (str, list, tuple)) and type(left) is type(right):
        if len(left) + len(right) > MAX_LENGTH:
            raise ExpressionError(f"concatenation would exceed {MAX_LENGTH} elements")
    elif op is ast.Mod and isinstance(left, str):
        raise ExpressionError("'%' string formatting is not allowed")


def charge_repetition(repeated: int, left: Any, right: Any) -> int:
    """The elements produced by `*` repetition so far, `left * right` included.

    Repetition is the one way to build a big value from a short expression, and it nests
    ([[0]*1000]*1000 is a million elements to print), so one budget of nested elements covers
    all repetitions in an evaluation: `repeated` is what earlier repetitions used of it.
    """
    seq, times = (right, left) if isinstance(left, int) else (left, right)
    if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and times > 0:
        remaining = MAX_LENGTH - repeated
        repeated += _weight(seq, remaining // times) * times
        if repeated > MAX_LENGTH:
            raise ExpressionError(f"repetition would exceed {MAX_LENGTH} elements")
    return repeated


def checked(value: Any) -> Any:
    """Refuse a produced value that exceeds the limits."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ExpressionError(f"integer result exceeds {MAX_INT_BITS} bits")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError("float overflow" if math.isinf(value) else "float result is NaN")
    if isinstance(value, complex):
        raise ExpressionError("complex numbers are not supported")
    if isinstance(value, (str, list, tuple, dict, set)) and len(value) > MAX_LENGTH:
        raise ExpressionError(f"result exceeds {MAX_LENGTH} elements")
    return value
