"""The starts' admission, checked in their commit's transaction (application/admission.py).

A start is admitted on the definition cache's word; its commit carries an `AdmittedStart`
per started (tenant, name, version) and, before anything is written, ONE statement for the
whole commit (a group commit's too) returns the claims that no longer hold: the version is
gone or disabled, or (`latest`: the start asked for no version) a newer one exists. Any
such claim raises `DefinitionChangedError`, so the transaction rolls back and nothing is
stored. The statement reads the primary key index, one probe per distinct claim (two for a
`latest` one); it takes no row lock, so a disable is never blocked by starts.

The check sees what was committed when it runs (READ COMMITTED): a disable that commits
while the start's transaction is between this statement and its COMMIT is not seen, the
same window (shorter) as the read before the decision that this check replaces.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import Cursor
from psycopg.rows import DictRow

from application.ports import DefinitionChangedError
from application.read_models import AdmittedStart

_STALE_ADMISSIONS = """
    SELECT c.tenant, c.name, c.version, c.latest
    FROM unnest(%s::text[], %s::text[], %s::int[], %s::bool[]) AS c(tenant, name, version, latest)
    WHERE NOT EXISTS (
        SELECT 1 FROM definitions d
        WHERE d.tenant = c.tenant AND d.name = c.name AND d.version = c.version AND d.enabled
    ) OR (c.latest AND EXISTS (
        SELECT 1 FROM definitions n
        WHERE n.tenant = c.tenant AND n.name = c.name AND n.version > c.version
    ))
"""


def check_admitted(curs: Cursor[DictRow], admitted: Sequence[AdmittedStart]) -> None:
    """Raise DefinitionChangedError naming the claims that no longer hold (nothing if none)."""
    if not admitted:
        return
    claims = list(dict.fromkeys(admitted))
    curs.execute(
        _STALE_ADMISSIONS,
        (
            [a.tenant for a in claims],
            [a.name for a in claims],
            [a.version for a in claims],
            [a.latest for a in claims],
        ),
    )
    stale = [
        AdmittedStart(row["tenant"], row["name"], row["version"], row["latest"])
        for row in curs.fetchall()
    ]
    if stale:
        raise DefinitionChangedError(stale)
