"""The events' insert order: a transaction-scoped advisory lock, taken by a statement trigger,
instead of `LOCK TABLE waymark_events IN EXCLUSIVE MODE` in the recorder.

Notification ids must become visible in id order (a reader tailing `notification_id > N`
never passes a gap that fills later: infrastructure/postgres/feed.py, outbox.py), so every
insert into `waymark_events` is serialised from drawing its ids to its commit. The table
lock did that, but EXCLUSIVE also conflicts with the SHARE UPDATE EXCLUSIVE lock of every
VACUUM and ANALYZE of the table, autovacuum's included: an autovacuum of the events table
stopped every writer of the database until `deadlock_timeout` (1 s) had it cancelled
(measured in `make bench`, docs/performance.md), a manual VACUUM stopped them for its whole
run, and an anti-wraparound autovacuum, which is never cancelled, would stop them for as
long as it takes. An advisory lock serialises the writers alone.

The trigger fires once per INSERT (or COPY) statement, before its first row draws an id, so
every writer takes the lock whatever path it inserts by; it is released at commit or
rollback, after the transaction's rows became visible, as a table lock was.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The lock's key, one place for the trigger and for whoever looks for the lock in
    # `pg_locks` (an advisory bigint key shows as classid = its high, objid = its low half).
    op.execute(
        "CREATE FUNCTION waymark_events_insert_order_key() RETURNS bigint "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE "
        "AS $$ SELECT hashtextextended('waymark:events-insert-order', 0) $$"
    )
    # The lock's rows in `pg_locks` (its holder, granted, and its waiters): for the metrics,
    # the runbook and the tests, so the key's split into two halves is written once.
    op.execute(
        "CREATE FUNCTION waymark_events_insert_order_locks() RETURNS SETOF pg_locks "
        "LANGUAGE sql STABLE "
        "AS $$ SELECT * FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 "
        "AND (classid::bigint << 32 | objid::bigint) = waymark_events_insert_order_key() $$"
    )
    op.execute(
        """
        CREATE FUNCTION waymark_events_insert_order() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(waymark_events_insert_order_key());
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER waymark_events_insert_order BEFORE INSERT ON waymark_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION waymark_events_insert_order()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER waymark_events_insert_order ON waymark_events")
    op.execute("DROP FUNCTION waymark_events_insert_order()")
    op.execute("DROP FUNCTION waymark_events_insert_order_locks()")
    op.execute("DROP FUNCTION waymark_events_insert_order_key()")
