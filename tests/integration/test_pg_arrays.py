"""The typed arrays (infrastructure/postgres/arrays.py) against the real PostgreSQL: their
bytes are the server's own binary form of the same array (`array_send`), and what the
server reads from them is what was sent, NULLs, empty arrays and large elements included."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from infrastructure.postgres.arrays import (
    BoolArray,
    BoolArrayDumper,
    ByteaArray,
    ByteaArrayDumper,
    Int4Array,
    Int4ArrayDumper,
    Int8Array,
    Int8ArrayDumper,
    TextArray,
    TextArrayDumper,
    UuidArray,
    UuidArrayDumper,
)

pytestmark = pytest.mark.integration

CASES: list[tuple[type, type, str, list[Any]]] = [
    (UuidArray, UuidArrayDumper, "uuid", [uuid.uuid4(), uuid.UUID(int=0), uuid.uuid4()]),
    (Int8Array, Int8ArrayDumper, "bigint", [0, 1, -1, 2**62, -(2**63), 2**63 - 1]),
    (Int4Array, Int4ArrayDumper, "int", [0, 7, -(2**31), 2**31 - 1]),
    (BoolArray, BoolArrayDumper, "bool", [True, False, True]),
    (TextArray, TextArrayDumper, "text", ["a", "", "ünïcødé ✓", None, "x" * 10_000]),
    (ByteaArray, ByteaArrayDumper, "bytea", [b"", b"\x00\xff", None, bytes(range(256)) * 4096]),
]


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.mark.parametrize(("cls", "dumper", "pg_type", "items"), CASES)
@pytest.mark.parametrize("size", ["empty", "one", "all"])
def test_the_bytes_are_the_servers_own_and_the_values_round_trip(
    conn: psycopg.Connection[Any],
    cls: type,
    dumper: type,
    pg_type: str,
    items: list[Any],
    size: str,
) -> None:
    values = {"empty": [], "one": items[:1], "all": items}[size]
    sent = dumper(cls).dump(cls(values))
    row = conn.execute(
        f"SELECT array_send(%b::{pg_type}[]), %b::{pg_type}[]",  # noqa: S608 (a test's type name)
        (cls(values), cls(values)),
    ).fetchone()
    assert row is not None
    assert bytes(row[0]) == sent
    assert [bytes(v) if isinstance(v, memoryview) else v for v in row[1]] == values


def test_a_plain_list_still_goes_through_psycopgs_own_dumper(
    conn: psycopg.Connection[Any],
) -> None:
    # The wrappers add dumpers for their own classes only: `list` is as psycopg dumps it.
    row = conn.execute("SELECT %s::int[], %s::text[]", ([1, 2], ["a", None])).fetchone()
    assert row == ([1, 2], ["a", None])


def test_unnest_of_parallel_arrays_keeps_their_order(conn: psycopg.Connection[Any]) -> None:
    ids = [uuid.uuid4() for _ in range(50)]
    rows = conn.execute(
        "SELECT u.id, u.n, u.t FROM unnest(%b::uuid[], %b::bigint[], %b::text[]) "
        "WITH ORDINALITY AS u(id, n, t, k) ORDER BY u.k",
        (UuidArray(ids), Int8Array(range(50)), TextArray(str(i) for i in range(50))),
    ).fetchall()
    assert rows == [(ids[i], i, str(i)) for i in range(50)]
