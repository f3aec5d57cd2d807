"""Values an instance stores: JSON-clean and bounded before they reach an event, or refused.

Everything a command records — a `set` node's variables, a rendered action, an action's
result, a payload, a task's form data, an end node's output — ends up in the event store and
in `jsonb` read-model rows. What either cannot hold must be stopped here, in the command that
produces it, or it poisons a row that a worker retries forever.

A clean value is `None`, `bool`, `int`, a finite `float`, `str`, a `list`, or a `dict` with
`str` keys, nested at most `MAX_VALUE_DEPTH` levels, at most `MAX_VALUE_BYTES` as compact
UTF-8 JSON, with no NUL character (PostgreSQL text and `jsonb` cannot hold U+0000) and no
lone surrogate (not UTF-8). Tuples
become lists, other mappings dicts; sets are refused (their order is arbitrary: `sorted(...)`
makes a list), as is every other type. NUL characters are refused, except in action results
(`replace_nul=True`): the side effect has happened, so its result is kept with each NUL (and
lone surrogate) replaced by U+FFFD rather than lost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from domain.errors import WorkflowError

MAX_VALUE_DEPTH = 64
MAX_VALUE_BYTES = 256 * 1024
# 1,000 decimal digits: far past any real quantity, and well inside what JSON encoders take.
MAX_INT_BITS = 3_322
MAX_TEXT_CHARS = 2_000  # error messages recorded on an instance
NUL = "\x00"
REPLACEMENT = "\ufffd"


class UnstorableValueError(WorkflowError):
    """A value that JSON or PostgreSQL cannot hold, or past the size or depth limit."""

    code = "unstorable-value"

    def __init__(self, what: str, reason: str):
        super().__init__(f"{what} cannot be stored: {reason}")
        self.what = what
        self.reason = reason


def clean_value(value: Any, what: str, *, replace_nul: bool = False) -> Any:
    """`value` as JSON-clean data; raise `UnstorableValueError` naming `what` and the path."""
    walk = _Walk(what, replace_nul)
    return walk.clean(value, "$", 0)


def clean_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """A message safe to record: NULs and lone surrogates replaced, at most `limit` chars."""
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = text.replace(NUL, REPLACEMENT)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def contains_nul(value: Any) -> bool:
    """True when a string (or key) anywhere in `value` holds a NUL character."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, Mapping):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(item) for item in value)
    return False


class _Walk:
    """One pass over a value, counting its approximate JSON size as it goes."""

    def __init__(self, what: str, replace_nul: bool):
        self.what = what
        self.replace_nul = replace_nul
        self.size = 0

    def refuse(self, path: str, reason: str) -> UnstorableValueError:
        return UnstorableValueError(self.what, f"{reason} at {path}")

    def count(self, size: int, path: str) -> None:
        # Counted as it grows, so a huge value is refused before all of it is walked.
        self.size += size
        if self.size > MAX_VALUE_BYTES:
            raise self.refuse(path, f"it is larger than {MAX_VALUE_BYTES} bytes as JSON")

    def clean(self, value: Any, path: str, depth: int) -> Any:
        if value is None or isinstance(value, bool):
            self.count(5, path)
            return value
        if isinstance(value, int):
            if value.bit_length() > MAX_INT_BITS:
                raise self.refuse(path, "an integer with more than 1000 digits")
            self.count(value.bit_length() // 3 + 2, path)
            return int(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.refuse(path, f"{value!r} is not a JSON number")
            self.count(24, path)
            return float(value)
        if isinstance(value, str):
            return self.text(value, path)
        if depth >= MAX_VALUE_DEPTH:
            raise self.refuse(path, f"it nests deeper than {MAX_VALUE_DEPTH} levels")
        if isinstance(value, Mapping):
            return self.mapping(value, path, depth + 1)
        if isinstance(value, list | tuple):
            self.count(2, path)
            return [self.clean(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
        if isinstance(value, set | frozenset):
            raise self.refuse(path, "a set is not JSON (sorted(...) makes a list)")
        raise self.refuse(path, f"a {type(value).__name__} is not JSON")

    def mapping(self, value: Mapping[Any, Any], path: str, depth: int) -> dict[str, Any]:
        self.count(2, path)
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise self.refuse(path, f"key {key!r} is a {type(key).__name__}, not a string")
            name = self.text(key, path)
            out[name] = self.clean(item, f"{path}.{name}", depth)
        return out

    def text(self, value: str, path: str) -> str:
        self.count(len(value) + 2, path)  # early, before encoding a huge string
        try:
            self.count(len(value.encode("utf-8")) - len(value), path)
        except UnicodeEncodeError:  # a lone surrogate ("\\ud800" in JSON): not UTF-8
            if not self.replace_nul:
                raise self.refuse(path, "a string holds a lone surrogate, not UTF-8") from None
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        if NUL in value:
            if not self.replace_nul:
                raise self.refuse(path, "a string holds a NUL character (\\u0000)")
            value = value.replace(NUL, REPLACEMENT)
        return str(value)
