"""The events' NOTIFY from the insert-order trigger, not a statement of the recorder's.

Every transaction that inserts into `waymark_events` notifies the `waymark_events` channel
(the feed's streams and the outbox relay LISTEN on it). The recorder sent `NOTIFY
waymark_events` as a statement of its own in each commit's pipeline: one more statement
to parse, execute and read back per commit, ~6 % of a start's CPU in the API process
(docs/performance.md). The statement trigger that takes the insert-order lock (0024) now
queues the same notification (`pg_notify(channel, '')` is `NOTIFY channel`), so every
writer notifies, whatever path it inserts by (the bulk loader's COPY included). A
notification is delivered at COMMIT and dropped on ROLLBACK, as before, and PostgreSQL
folds identical notifications of one transaction into one (a recorder that still sends
its own NOTIFY, as the library's does, sends nothing more).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04
"""

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

_FUNCTION = """
    CREATE OR REPLACE FUNCTION waymark_events_insert_order() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(waymark_events_insert_order_key());{notify}
        RETURN NULL;
    END
    $$
"""


def upgrade() -> None:
    op.execute(_FUNCTION.format(notify="\n        PERFORM pg_notify('waymark_events', '');"))


def downgrade() -> None:
    op.execute(_FUNCTION.format(notify=""))
