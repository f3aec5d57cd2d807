"""The default Committer: each prepared commit is saved at once, in its own transaction.

The seam for group commit (docs/architecture.md, "Commit step"): a committer that collects
several PendingCommits and saves them in one `InstanceStore.save` implements the same port;
when that save fails, `PendingCommit.involves(error)` tells which commits caused it, so the
others can be saved again without re-deciding them.
"""

from __future__ import annotations

from application.ports import Committer, InstanceStore, PendingCommit

__all__ = ["Committer", "ImmediateCommitter"]


class ImmediateCommitter:
    """Saves each commit as soon as it is prepared (one transaction per command attempt)."""

    def __init__(self, store: InstanceStore) -> None:
        self.store = store

    def commit(self, pending: PendingCommit) -> None:
        if not pending.is_empty:
            self.store.save(pending.events, pending.projection)
