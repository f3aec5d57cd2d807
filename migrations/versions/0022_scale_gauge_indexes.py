"""Indexes for the cross-tenant counts of `/metrics` (infrastructure/postgres/system_gauges.py),
which scanned the whole store: measured with 1,000,000 stored instances (bench `scale`,
bench/bulk_load.py), one scrape read ~50,000 pages (~1 s on 2 busy cores), growing with every
instance ever stored, not with the active ones.

- active instances by definition and status: 0014's partial index has no `tenant`, and the
  row-level security policy reads `tenant`, so every active row was fetched from the heap
  (16,700 pages for 50,000 active rows). With `tenant` in the index it is an index-only scan.
- `stuck` (`status = 'running'` without open bookmarks or scheduled activities): no index
  leads with `status` (they all lead with `tenant`), so the count read the whole table; a
  partial index of the running instances, in the per-tenant list's order (updated_at, id).
- overdue tasks (`status IN ('open', 'claimed') AND due_at < now`) and the day's SLA
  (`completed_at >= since AND due_at IS NOT NULL`) read the whole tasks table; two partial
  indexes, each with `tenant` for the policy, so both are index-only.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

INDEXES = {
    "instances_active_definition_status_idx": (
        "ON instances (definition, status, tenant) WHERE ended_at IS NULL"
    ),
    "instances_running_updated_idx": (
        "ON instances (tenant, updated_at, id) WHERE status = 'running'"
    ),
    "tasks_open_due_at_idx": (
        "ON tasks (due_at, tenant) WHERE status IN ('open', 'claimed') AND due_at IS NOT NULL"
    ),
    "tasks_completed_due_idx": (
        "ON tasks (completed_at, due_at, tenant) "
        "WHERE completed_at IS NOT NULL AND due_at IS NOT NULL"
    ),
}
# 0014's definition of the index this one replaces (same name, without `tenant`).
_ACTIVE_0014 = "ON instances (definition, status) WHERE ended_at IS NULL"


def upgrade() -> None:
    op.execute("DROP INDEX instances_active_definition_status_idx")
    for name, definition in INDEXES.items():
        op.execute(f"CREATE INDEX {name} {definition}")


def downgrade() -> None:
    for name in INDEXES:
        op.execute(f"DROP INDEX {name}")
    op.execute(f"CREATE INDEX instances_active_definition_status_idx {_ACTIVE_0014}")
