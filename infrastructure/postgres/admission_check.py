"""The starts' admission, checked in their commit's transaction (application/admission.py).

A start is admitted on the definition cache's word; its commit carries an `AdmittedStart`
per started (tenant, name, version). In the commit's transaction (a group commit's too),
after the projection's rows and before the events' insert-order lock, ONE statement for all
of them returns the claims that no longer hold: the version is gone or disabled, or
(`latest`: the start asked for no version) a newer one exists. It is sent on a cursor of its
own, in the recorder's pipeline after the projection's statements, and `verify()` reads its
answer (with theirs, one round trip) BEFORE the insert (which takes the lock) and COMMIT are
sent: it raises `DefinitionChangedError` for any stale claim, so the transaction rolls back
and nothing is stored, and the insert-order lock is never held across this round trip. The
statement reads the primary key index, one probe per distinct claim (two for a `latest`
one); it takes no row lock, so a disable is never blocked by starts.

The check sees what was committed when it runs (READ COMMITTED): a disable that commits
while the start's transaction is between this statement and its COMMIT is not seen, the
same window (shorter) as the read before the decision that this check replaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection, Cursor
from psycopg.rows import dict_row

from application.ports import DefinitionChangedError
from application.read_models import AdmittedStart
from infrastructure.postgres.arrays import BoolArray, Int4Array, TextArray

_STALE_ADMISSIONS = """
    SELECT c.tenant, c.name, c.version, c.latest
    FROM unnest(%b::text[], %b::text[], %b::int[], %b::bool[]) AS c(tenant, name, version, latest)
    WHERE NOT EXISTS (
        SELECT 1 FROM definitions d
        WHERE d.tenant = c.tenant AND d.name = c.name AND d.version = c.version AND d.enabled
    ) OR (c.latest AND EXISTS (
        SELECT 1 FROM definitions n
        WHERE n.tenant = c.tenant AND n.name = c.name AND n.version > c.version
    ))
"""


class AdmissionCheck:
    """The check's statement, sent; `verify()` reads its answer (a flushing fetch in the
    pipeline) and raises DefinitionChangedError if any claim is stale."""

    def __init__(self, curs: Cursor[dict[str, Any]] | None = None) -> None:
        self.curs = curs

    def verify(self) -> None:
        if self.curs is None:
            return
        with self.curs as curs:
            stale = [
                AdmittedStart(row["tenant"], row["name"], row["version"], row["latest"])
                for row in curs.fetchall()
            ]
        if stale:
            raise DefinitionChangedError(stale)


def send_admission_check(
    conn: Connection[Any], admitted: Sequence[AdmittedStart]
) -> AdmissionCheck:
    """Send the check of `admitted` on `conn` (in its transaction); nothing when empty."""
    if not admitted:
        return AdmissionCheck()
    claims = list(dict.fromkeys(admitted))
    curs = conn.cursor(row_factory=dict_row)
    curs.execute(
        _STALE_ADMISSIONS,
        (
            TextArray([a.tenant for a in claims]),
            TextArray([a.name for a in claims]),
            Int4Array([a.version for a in claims]),
            BoolArray([a.latest for a in claims]),
        ),
    )
    return AdmissionCheck(curs)
