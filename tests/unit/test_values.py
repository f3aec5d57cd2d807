"""`domain.values`: what an instance may store is JSON-clean and bounded, or refused."""

from __future__ import annotations

import json

import pytest

from domain.values import (
    MAX_VALUE_BYTES,
    MAX_VALUE_DEPTH,
    UnstorableValueError,
    clean_text,
    clean_value,
    contains_nul,
)


def nested(levels: int) -> object:
    value: object = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


def test_json_values_pass_through_unchanged():
    value = {"s": "é ✓", "i": -(2**70), "f": 1.5, "b": True, "n": None, "l": [1, "x", []]}
    assert clean_value(value, "v") == value


def test_tuples_become_lists_and_str_subclasses_plain_strings():
    class Name(str):
        pass

    cleaned = clean_value({"t": (1, (2, 3)), "k": Name("x")}, "v")
    assert cleaned == {"t": [1, [2, 3]], "k": "x"}
    assert type(cleaned["k"]) is str
    json.dumps(cleaned)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({1, 2}, "a set is not JSON (sorted(...) makes a list) at $"),
        ({"a": [frozenset()]}, "a set is not JSON (sorted(...) makes a list) at $.a[0]"),
        ({"x": float("nan")}, "nan is not a JSON number at $.x"),
        ([float("inf")], "inf is not a JSON number at $[0]"),
        ({1: "one"}, "key 1 is a int, not a string at $"),
        ({"b": b"bytes"}, "a bytes is not JSON at $.b"),
        ({"s": "a\x00b"}, "a string holds a NUL character (\\u0000) at $.s"),
        ({"k\x00": 1}, "a string holds a NUL character (\\u0000) at $"),
        ("\ud800", "a string holds a lone surrogate, not UTF-8 at $"),
        (10**1001, "an integer with more than 1000 digits at $"),
    ],
)
def test_what_json_or_postgresql_cannot_hold_is_refused_with_where(value, reason):
    with pytest.raises(UnstorableValueError) as caught:
        clean_value(value, "the variables of s")
    assert str(caught.value) == f"the variables of s cannot be stored: {reason}"


def test_action_results_keep_their_text_with_nul_and_surrogates_replaced():
    cleaned = clean_value({"body": "a\x00b", "k\x00": "\ud800"}, "r", replace_nul=True)
    assert cleaned == {"body": "a\ufffdb", "k\ufffd": "\ufffd"}
    assert not contains_nul(cleaned)


def test_nesting_is_bounded():
    assert clean_value(nested(MAX_VALUE_DEPTH), "v") == nested(MAX_VALUE_DEPTH)
    with pytest.raises(UnstorableValueError, match=f"deeper than {MAX_VALUE_DEPTH} levels"):
        clean_value(nested(MAX_VALUE_DEPTH + 1), "v")


def test_a_cycle_is_refused_not_recursed_forever():
    loop: list = []
    loop.append(loop)
    with pytest.raises(UnstorableValueError, match="deeper than"):
        clean_value(loop, "v")


def test_size_is_bounded_counting_utf8_bytes():
    assert clean_value("x" * (MAX_VALUE_BYTES - 2), "v")
    with pytest.raises(UnstorableValueError, match=f"larger than {MAX_VALUE_BYTES} bytes"):
        clean_value("x" * (MAX_VALUE_BYTES - 1), "v")
    # three bytes each in UTF-8: a third as many characters is already too large
    with pytest.raises(UnstorableValueError, match="larger than"):
        clean_value({"a": "€" * (MAX_VALUE_BYTES // 3)}, "v")
    with pytest.raises(UnstorableValueError, match="larger than"):
        clean_value([1000] * MAX_VALUE_BYTES, "v")


def test_clean_text_for_messages():
    assert clean_text("bad\x00\ud800") == "bad\ufffd\ufffd"
    assert clean_text("x" * 50, limit=10) == "x" * 9 + "…"


def test_contains_nul_looks_everywhere():
    assert contains_nul({"a": [("x", "\x00")]})
    assert contains_nul({"\x00": 1})
    assert not contains_nul({"a": [1, None, "ok"]})
