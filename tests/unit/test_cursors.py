"""Pagination cursors are signed: altered, hand-made or foreign cursors are refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from application.errors import InvalidCursorError
from infrastructure.bootstrap import cursor_secret
from infrastructure.postgres.cursors import decode_cursor, encode_cursor
from infrastructure.settings import Settings

SECRET = b"s3cret"
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_a_cursor_round_trips_with_its_secret() -> None:
    last = uuid4()
    cursor = encode_cursor("instances", AT, last, secret=SECRET)

    assert decode_cursor("instances", cursor, size=2, secret=SECRET) == [AT.isoformat(), str(last)]


def test_an_altered_cursor_is_refused() -> None:
    cursor = encode_cursor("instances", AT, uuid4(), secret=SECRET)
    payload, signature = cursor.split(".")
    forged = b64(["instances", "2099-01-01T00:00:00+00:00", str(uuid4())])

    # Two characters of the signature changed (to "AA", or "BB" if it already ends so: 1 in
    # 1,024 signatures does, and then "AA" would leave it as it was).
    altered = signature[:-2] + ("BB" if signature.endswith("AA") else "AA")
    assert altered != signature
    for bad in (f"{forged}.{signature}", f"{payload}.{altered}", payload):
        with pytest.raises(InvalidCursorError):
            decode_cursor("instances", bad, size=2, secret=SECRET)


def test_a_hand_made_well_formed_cursor_is_refused() -> None:
    # The unsigned format (base64url JSON) that was accepted before cursors were signed.
    hand_made = b64(["definitions", "zzz"])

    with pytest.raises(InvalidCursorError):
        decode_cursor("definitions", hand_made, size=1, secret=SECRET)


def test_a_cursor_signed_with_another_secret_is_refused() -> None:
    cursor = encode_cursor("definitions", "a", secret=b"other")

    with pytest.raises(InvalidCursorError):
        decode_cursor("definitions", cursor, size=1, secret=SECRET)


@pytest.mark.parametrize("bad", ["", ".", "not base64!.x", "é.é", "a.b.c"])
def test_garbage_is_an_invalid_cursor(bad: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor("definitions", bad, size=1, secret=SECRET)


def test_replicas_agree_on_the_cursor_secret() -> None:
    url = "postgresql://waymark:pw@db/waymark"
    configured = Settings(database_url=url, cursor_secret="shared")
    derived = [Settings(database_url=url, cursor_secret=None) for _ in range(2)]
    server_key, other_database = b"k" * 32, b"j" * 32

    assert cursor_secret(configured, server_key) == b"shared"
    # Replicas of one database read the same server secret, so they sign alike ...
    assert cursor_secret(derived[0], server_key) == cursor_secret(derived[1], server_key)
    # ... and the cursor key is not the keyed-id secret itself, nor another database's.
    assert cursor_secret(derived[0], server_key) != server_key
    assert cursor_secret(derived[0], server_key) != cursor_secret(derived[0], other_database)
