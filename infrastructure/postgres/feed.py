"""EventFeedReader on PostgreSQL: a tenant's stored events after a global position.

Why reading "notification_id > after" never skips an event: every insert takes the events'
insert-order lock (an advisory lock the table's statement trigger takes, migration 0024) and
holds it to the commit, so notification ids become visible in id order. Once the highest
visible id is H, every event with an id at or below H is committed and visible; ids of
transactions still in flight are above H. So a read bounded by H that was taken first sees a
complete prefix, and the next read may start after H even when this tenant had no event up
to it (which spares a tenant with few events from rescanning everybody else's).

The read is a range scan of the notification-id index, joined to the instances read model
(primary key) for the tenant, and bounded by a window of positions: a page of a tenant with
few events costs at most `window` index entries, then reports `more` and where it stopped.
"""

from __future__ import annotations

from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.postgres import PostgresDatastore

from application.ports import FeedBatch, FeedEntry
from infrastructure.history import history_entry

DEFAULT_WINDOW = 10_000

# Every tenant's highest position, past the events' row-level security (migration 0021):
# under the policy a quiet tenant's `max()` would walk the whole index backwards.
_SELECT_HEAD = "SELECT waymark_events_head() AS head"
_SELECT_AFTER = (
    "SELECT e.originator_id, e.originator_version, e.topic, e.state, e.notification_id, "
    "i.tenant "
    "FROM waymark_events e JOIN instances i ON i.id = e.originator_id "
    "WHERE e.notification_id > %(after)s AND e.notification_id <= %(upto)s "
    "AND i.tenant = %(tenant)s "
    "ORDER BY e.notification_id LIMIT %(limit)s"
)


class PostgresEventFeed:
    """Reads the feed from `waymark_events` and the `instances` read model."""

    def __init__(
        self, datastore: PostgresDatastore, mapper: Mapper, *, window: int = DEFAULT_WINDOW
    ) -> None:
        self.datastore = datastore
        self.mapper = mapper
        self.window = window

    def head(self) -> int:
        """The highest committed position (0 before the first event)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT_HEAD)
            row = curs.fetchone()
        return int(row["head"]) if row else 0

    def events_after(self, tenant: str, after: int, limit: int) -> FeedBatch:
        # The head first, in its own statement: everything at or below it is committed
        # (see the module docstring), so the second statement sees all of it.
        head = self.head()
        upto = min(head, after + self.window)
        if upto <= after:
            return FeedBatch([], after, more=False)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                _SELECT_AFTER, {"after": after, "upto": upto, "tenant": tenant, "limit": limit}
            )
            rows = curs.fetchall()
        entries = [
            FeedEntry(
                instance_id=row["originator_id"],
                tenant=row["tenant"],
                entry=history_entry(
                    self.mapper,
                    StoredEvent(
                        originator_id=row["originator_id"],
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=bytes(row["state"]),
                    ),
                    position=row["notification_id"],
                ),
            )
            for row in rows
        ]
        if len(entries) == limit:
            # A full page: more may follow right after its last event.
            return FeedBatch(entries, rows[-1]["notification_id"], more=True)
        return FeedBatch(entries, upto, more=upto < head)
