"""`jsonable`'s exact-type fast path gives what the plain isinstance walk gives (the
reference below is the function as it was before the fast path), for every kind of value a
view holds: subclasses, non-string keys, non-finite floats, tuples, depth at the limit."""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from application.views import MAX_RENDER_DEPTH, TRUNCATED, jsonable


def reference(value: Any, _depth: int = 0) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict | list | tuple):
        if _depth >= MAX_RENDER_DEPTH:
            return TRUNCATED
        if isinstance(value, dict):
            return {
                k if isinstance(k, str) else str(k): reference(v, _depth + 1)
                for k, v in value.items()
            }
        return [reference(v, _depth + 1) for v in value]
    return value


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for i in range(depth):
        value = {"d": value} if i % 2 else [value, 1]
    return value


VALUES: list[Any] = [
    None,
    True,
    0,
    -7,
    "text",
    1.5,
    math.nan,
    -math.inf,
    datetime(2026, 12, 4, 3, 0, tzinfo=UTC),
    UUID(int=5),
    Colour.RED,
    Level.HIGH,
    Name("sub"),
    (1, "a", None),
    {1: "int key", None: 2, UUID(int=1): [math.inf]},
    OrderedDict(a=datetime(2026, 1, 1)),
    {"a": [1, {"b": (2.0, math.nan)}], "t": datetime(2026, 1, 1, tzinfo=UTC)},
    nested(MAX_RENDER_DEPTH - 1, {"x": 1}),
    nested(MAX_RENDER_DEPTH, {"x": 1}),
    nested(MAX_RENDER_DEPTH + 5, [math.nan]),
    object,
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_the_fast_path_renders_what_the_isinstance_walk_renders(value: Any) -> None:
    expected = reference(value)
    got = jsonable(value)
    assert repr(got) == repr(expected)  # repr: NaN-free output, and types compared too
    assert [type(x) for x in _leaves(got)] == [type(x) for x in _leaves(expected)]


def test_the_depth_limit_holds_on_the_fast_path() -> None:
    assert TRUNCATED in repr(jsonable(nested(MAX_RENDER_DEPTH + 1, 1)))
    assert TRUNCATED not in repr(jsonable(nested(MAX_RENDER_DEPTH - 2, 1)))


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]
