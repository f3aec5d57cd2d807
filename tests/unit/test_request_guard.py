"""The request guard's JSON checks, signature parsing, history cursors and depth-safe views
(issue 5, items 4 and 6)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from pydantic import TypeAdapter

from api.request_guard import MAX_JSON_DEPTH, body_problems, document_problems
from application.callbacks import callback_payload, sign, verify
from application.errors import InvalidCursorError, SignatureError
from application.instances import _history_cursor
from application.views import MAX_RENDER_DEPTH, TRUNCATED, jsonable


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_a_document_at_the_depth_bound_passes_and_one_deeper_is_refused() -> None:
    assert document_problems(nested(MAX_JSON_DEPTH)) == []
    (error,) = document_problems(nested(MAX_JSON_DEPTH + 1))
    assert error["code"] == "too_deep"
    assert error["path"] == "$" + "[0]" * MAX_JSON_DEPTH


def test_every_unstorable_string_and_key_is_named_by_its_path() -> None:
    document = {"a": ["ok", "x\x00"], "b\x00": 1, "c": {"d": "\ud800"}}
    found = {(e["path"], e["code"]) for e in document_problems(document)}
    assert found == {
        ("$.a[1]", "nul_character"),
        ('$["b\\u0000"]', "nul_character"),
        ("$.c.d", "lone_surrogate"),
    }


def test_a_wide_document_reports_a_bounded_number_of_errors() -> None:
    assert len(document_problems(["\x00"] * 1000)) == 20


@pytest.mark.parametrize(
    "body", [b"NaN", b"[Infinity]", b"-Infinity", b"1e999", b"9" * 5000, b"[" * 5000]
)
def test_what_json_or_postgresql_cannot_hold_is_refused_at_the_root(body: bytes) -> None:
    (error,) = body_problems(body)
    assert error["path"] == "$"


@pytest.mark.parametrize("body", [b"", b"  ", b"{not json", b'"\xff"', b'{"a": 1.5, "b": [1]}'])
def test_valid_or_non_json_bodies_are_left_to_the_route(body: bytes) -> None:
    assert body_problems(body) == []


def test_signature_headers_that_are_not_ascii_or_too_long_are_malformed() -> None:
    body, now = b"{}", time.time()
    good = sign("s", body, int(now), "/p")
    verify("s", body, good, now, "/p")
    for header in ("t=1,v1=é", f"t={int(now)},v1=" + "é" * 64, "t=٣,v1=" + "0" * 64):
        with pytest.raises(SignatureError, match="malformed"):
            verify("s", body, header, now, "/p")
    with pytest.raises(SignatureError, match="malformed"):
        verify("s", body, "t=" + "9" * 4000 + ",v1=" + "0" * 64, now, "/p")
    with pytest.raises(SignatureError, match="does not match"):
        verify("s", body, good[:-1] + ("0" if good[-1] != "0" else "1"), now, "/p")


def test_a_callback_body_that_is_not_utf8_is_a_json_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        callback_payload(b'{"v": "\xff"}')
    assert callback_payload(b"") is None


@pytest.mark.parametrize("cursor", ["²", "١", "-1", "1.0", "9" * 19])
def test_a_history_cursor_is_a_plain_bounded_number(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        _history_cursor(cursor)


def test_history_cursors_that_we_produce_are_accepted() -> None:
    assert _history_cursor(None) == 0
    assert _history_cursor("42") == 42


def test_views_render_any_stored_value() -> None:
    # Given a value deeper than any JSON serializer takes (pydantic-core stops at 255).
    deep = {"variables": {"v": nested(1000)}, "n": math.nan, "i": math.inf}
    rendered = jsonable(deep)
    # Then it renders, truncated at the render bound, and serializes.
    TypeAdapter(dict[str, Any]).dump_json(rendered)
    json.dumps(rendered, allow_nan=False)
    assert rendered["n"] is None and rendered["i"] is None
    leaf = rendered["variables"]["v"]
    depth = 2
    while isinstance(leaf, list):
        leaf, depth = leaf[0], depth + 1
    assert (leaf, depth) == (TRUNCATED, MAX_RENDER_DEPTH)


def test_views_keep_values_within_the_bound_whole() -> None:
    value = {"v": nested(MAX_JSON_DEPTH), "t": (1, "a"), 3: None}
    assert jsonable(value) == {"v": nested(MAX_JSON_DEPTH), "t": [1, "a"], "3": None}


def test_a_signature_covers_the_path_it_was_made_for() -> None:
    body, now = b"{}", time.time()
    made_for_a = sign("s", body, int(now), "/v1/callbacks/a")
    assert verify("s", body, made_for_a, now, "/v1/callbacks/a")
    with pytest.raises(SignatureError, match="does not match"):
        verify("s", body, made_for_a, now, "/v1/callbacks/b")
