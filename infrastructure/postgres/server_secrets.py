"""Secrets the migrations generated once per database (table `server_secrets`)."""

from __future__ import annotations

from eventsourcing.persistence import ProgrammingError
from eventsourcing.postgres import PostgresDatastore

KEYED_INSTANCE_IDS = "keyed-instance-ids"


class ServerSecretMissingError(RuntimeError):
    """The database lacks a server secret: it was not migrated to the current schema."""

    def __init__(self, name: str):
        super().__init__(f"server secret {name!r} is missing: run `waymark migrate`")
        self.name = name


def server_secret(datastore: PostgresDatastore, name: str) -> bytes:
    """The secret's value (read at bootstrap; every replica reads the same one)."""
    try:
        with datastore.transaction(commit=False) as curs:
            curs.execute("SELECT value FROM server_secrets WHERE name = %s", (name,))
            row = curs.fetchone()
    except ProgrammingError as error:  # no such table: a schema older than migration 0003
        raise ServerSecretMissingError(name) from error
    if row is None:
        raise ServerSecretMissingError(name)
    return bytes.fromhex(row["value"])
