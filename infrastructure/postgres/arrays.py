"""One-dimensional arrays sent in PostgreSQL's binary array format, without psycopg's
per-call type discovery.

psycopg dumps a Python `list` parameter by first working out what it holds: it scans the
list for an element, finds that element's dumper, builds an array dumper for it, then
dumps each element through that dumper's `dump` (all in Python, in the C build too). For
the parallel arrays of the hot statements (the events' insert, the starts' admission
check) that discovery cost more than the statement's other work: measured on a start
(five arrays for the insert, four for the check), ~10 % of the command's CPU.

These wrappers say the element type up front, so their dumpers encode the whole array in
a few C-level operations (`struct`, `bytes.join`). They are for `%b` placeholders (binary)
with a matching cast, e.g. `unnest(%b::uuid[], %b::bigint[])`; the bytes they produce are
the server's own binary form of the array (`array_send`), which
tests/integration/test_pg_arrays.py compares them with.
Elements must be of the declared type (`None` is NULL where noted): there is no check,
the statement's cast is the check.
"""

from __future__ import annotations

import struct
from typing import Any
from uuid import UUID

from psycopg import adapters
from psycopg.adapt import Dumper
from psycopg.pq import Format

# pg_type oids: the elements' and their arrays'.
_BOOL, _INT4, _INT8, _TEXT, _BYTEA, _UUID = 16, 23, 20, 25, 17, 2950
_BOOL_ARRAY, _INT4_ARRAY, _INT8_ARRAY, _TEXT_ARRAY, _BYTEA_ARRAY, _UUID_ARRAY = (
    1000,
    1007,
    1016,
    1009,
    1001,
    2951,
)

_HEADER = struct.Struct("!iiiii")  # ndim, has-nulls flag, element oid, length, lower bound
_EMPTY = struct.Struct("!iii")  # ndim 0: no dimensions follow
_LENGTH = struct.Struct("!i")
_NULL = _LENGTH.pack(-1)
_INT8_ITEM = struct.Struct("!iq")
_INT4_ITEM = struct.Struct("!ii")
_UUID_LENGTH = _LENGTH.pack(16)
_BOOL_ITEMS = {True: struct.pack("!ib", 1, 1), False: struct.pack("!ib", 1, 0)}


class _Array(list[Any]):
    """A list whose element type is known (the subclass says which)."""

    __slots__ = ()


class UuidArray(_Array):
    """`uuid[]`: UUIDs, no NULLs."""

    __slots__ = ()


class Int8Array(_Array):
    """`bigint[]`: ints, no NULLs."""

    __slots__ = ()


class Int4Array(_Array):
    """`int[]`: ints in int4 range, no NULLs."""

    __slots__ = ()


class BoolArray(_Array):
    """`bool[]`: bools, no NULLs."""

    __slots__ = ()


class TextArray(_Array):
    """`text[]`: strs; `None` is NULL."""

    __slots__ = ()


class ByteaArray(_Array):
    """`bytea[]`: bytes; `None` is NULL."""

    __slots__ = ()


def _array(element_oid: int, count: int, body: bytes, has_null: bool = False) -> bytes:
    if not count:
        return _EMPTY.pack(0, 0, element_oid)
    return _HEADER.pack(1, int(has_null), element_oid, count, 1) + body


def _varlen(items: list[bytes | None], element_oid: int) -> bytes:
    parts: list[bytes] = []
    has_null = False
    for item in items:
        if item is None:
            parts.append(_NULL)
            has_null = True
        else:
            parts.append(_LENGTH.pack(len(item)))
            parts.append(item)
    return _array(element_oid, len(items), b"".join(parts), has_null)


class _ArrayDumper(Dumper):
    format = Format.BINARY


class UuidArrayDumper(_ArrayDumper):
    oid = _UUID_ARRAY

    def dump(self, obj: list[UUID]) -> bytes:
        body = _UUID_LENGTH + _UUID_LENGTH.join([u.bytes for u in obj]) if obj else b""
        return _array(_UUID, len(obj), body)


class Int8ArrayDumper(_ArrayDumper):
    oid = _INT8_ARRAY

    def dump(self, obj: list[int]) -> bytes:
        pack = _INT8_ITEM.pack
        return _array(_INT8, len(obj), b"".join([pack(8, v) for v in obj]))


class Int4ArrayDumper(_ArrayDumper):
    oid = _INT4_ARRAY

    def dump(self, obj: list[int]) -> bytes:
        pack = _INT4_ITEM.pack
        return _array(_INT4, len(obj), b"".join([pack(4, v) for v in obj]))


class BoolArrayDumper(_ArrayDumper):
    oid = _BOOL_ARRAY

    def dump(self, obj: list[bool]) -> bytes:
        items = _BOOL_ITEMS
        return _array(_BOOL, len(obj), b"".join([items[bool(v)] for v in obj]))


class TextArrayDumper(_ArrayDumper):
    oid = _TEXT_ARRAY

    def dump(self, obj: list[str | None]) -> bytes:
        return _varlen([None if s is None else s.encode() for s in obj], _TEXT)


class ByteaArrayDumper(_ArrayDumper):
    oid = _BYTEA_ARRAY

    def dump(self, obj: list[bytes | None]) -> bytes:
        return _varlen(obj, _BYTEA)


def register() -> None:
    """Register the dumpers on psycopg's global adapters (every connection made after).
    Idempotent; called on import, so any module that builds these wrappers has them."""
    for cls, dumper in (
        (UuidArray, UuidArrayDumper),
        (Int8Array, Int8ArrayDumper),
        (Int4Array, Int4ArrayDumper),
        (BoolArray, BoolArrayDumper),
        (TextArray, TextArrayDumper),
        (ByteaArray, ByteaArrayDumper),
    ):
        adapters.register_dumper(cls, dumper)


register()
