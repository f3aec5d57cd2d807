"""The per-process cache of instances this process committed (WAYMARK_INSTANCE_CACHE_SIZE).

A command that loads an instance this process committed last takes it from here instead of
reading (and replaying) its events: no round trip at all. A callback, which reads its
bookmark and the events together, takes the copy held at the version it read and skips
only the replay (`CommandAttempt.adopt`).

The cache also knows the callback tokens of the open bookmarks of the instances it holds
(`bookmark(token)`), from the bookmark rows of the commits that put them: a callback for
such a token resumes the cached copy with no read at all (application/callbacks.py). A
token known here may be stale in the same ways as a copy (the bookmark resumed by another
process since), and the same version check catches a resume on it.

The cached copy may be stale — another process may have committed the instance since —
and that is safe because of what a stale copy can and cannot do:

- A command that WRITES on a stale copy writes its events at a version the store already
  has: the event store's version check (the primary key on (originator_id, version))
  rejects the commit with a concurrency conflict. The runner then drops the cache entries
  the attempt used and re-decides on state read from the store (`CommandRunner._decide`).
- A command that writes NOTHING for a cached instance, or fails, may have decided so on
  stale state (a result judged stale because the copy does not know the retry another
  process scheduled); no version check would catch that. Such an attempt is not trusted:
  it is re-decided at once with every instance read from the store (`trusted`).

So the cache only ever saves reads; every decision that stands was either checked by the
store's version check or taken on state read from the store. Entries are put after a
commit (the committed aggregate, whose version the store holds), never from a read, and a
put never replaces a newer version by an older one. A `take` REMOVES the entry and hands
the aggregate itself to the command (no copy: a pickle clone per command was ~13 % of the
task worker's CPU), so two threads never share a mutable aggregate, and a command that
changes it and then fails takes the entry with it (the next command reads the store). The
committing thread puts its aggregate last, once it no longer reads it (CommandRunner:
views are taken inside the command, before the commit). Ended instances are not kept
(commands write nothing on them).

Two bounds, the least recently used instance evicted first until both hold: a count of
instances (`size`) and the sum of their event counts (`max_events`). An instance's memory
is a fixed part and a part per event: measured (tracemalloc of replayed instances), a small
waiting instance holds ~5.2 KiB in 3 events, a completed 1,000-item `for_each` ~1.1 MiB in
3,045 (~375 B an event). So at the defaults (10,000 instances, 100,000 events) small
instances stop at ~52 MB and large ones at ~40 MB, where a count alone would let 10,000
large instances in. What neither bound sees is a large payload in few events (one variable
of 200 KiB); a process whose instances carry such contexts should lower the bounds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple
from uuid import UUID

from application.read_models import BookmarkRow
from domain.instance import WorkflowInstance


class CachedBookmark(NamedTuple):
    """An open bookmark with a callback token, of an instance the cache holds."""

    tenant: str
    instance_id: UUID
    bookmark_id: str


class InstanceCache:
    """Committed instances by id, LRU-bounded (instances and their events), thread-safe;
    `take` hands one out (removed)."""

    def __init__(self, size: int = 10_000, max_events: int = 100_000) -> None:
        self.size = size
        self.max_events = max_events
        self._items: OrderedDict[UUID, WorkflowInstance] = OrderedDict()
        self._events = 0  # the held instances' versions, summed (= their events)
        self._lock = threading.Lock()
        # Callback token -> its open bookmark, and each instance's tokens (to forget them).
        self._tokens: dict[str, CachedBookmark] = {}
        self._tokens_of: dict[UUID, set[str]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def take(self, instance_id: UUID, version: int | None = None) -> WorkflowInstance | None:
        """The cached instance, removed from the cache (the caller owns it), or None;
        `version`: only a copy at that version (another is dropped: the caller read newer)."""
        with self._lock:
            cached = self._items.pop(instance_id, None)
            if cached is not None:
                self._events -= cached.version
            if cached is None or (version is not None and cached.version != version):
                self.misses += 1
                return None
            self.hits += 1
        return cached

    def bookmark(self, token: str) -> CachedBookmark | None:
        """The open bookmark this callback token names, when an instance held here (or
        taken from here by a command in flight) has it; None when unknown here."""
        with self._lock:
            return self._tokens.get(token)

    def put(
        self, instances: Iterable[WorkflowInstance], bookmarks: Iterable[BookmarkRow] = ()
    ) -> None:
        """Keep committed instances (their pending events stored); ended ones are dropped.
        `bookmarks`: the bookmark rows their commits wrote (the tokens of the open ones are
        then known, those of the others forgotten)."""
        rows: dict[UUID, list[BookmarkRow]] = {}
        for row in bookmarks:
            rows.setdefault(row.instance_id, []).append(row)
        with self._lock:
            for instance in instances:
                if instance.pending_events or instance.is_ended:
                    # Not committed as it is, or done: never cached.
                    self._pop(instance.id)
                    self._forget_tokens(instance.id)
                    continue
                held = self._items.get(instance.id)
                if held is not None and held.version > instance.version:
                    continue  # a newer commit of another thread got here first
                self._events += instance.version - (held.version if held is not None else 0)
                self._items[instance.id] = instance
                self._items.move_to_end(instance.id)
                for row in rows.get(instance.id, ()):
                    self._note_token(row)
            while self._items and (len(self._items) > self.size or self._events > self.max_events):
                evicted, instance = self._items.popitem(last=False)
                self._events -= instance.version
                self._forget_tokens(evicted)
            if len(self._tokens_of) > 2 * self.size:
                # Instances taken by commands that failed never come back: their tokens go.
                for instance_id in [i for i in self._tokens_of if i not in self._items]:
                    self._forget_tokens(instance_id)

    def drop(self, instance_ids: Iterable[UUID]) -> None:
        """Forget instances (a lost race: the cached copy is behind the store)."""
        with self._lock:
            for instance_id in instance_ids:
                self._pop(instance_id)
                self._forget_tokens(instance_id)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._events = 0
            self._tokens.clear()
            self._tokens_of.clear()

    @property
    def events(self) -> int:
        """The events of the instances held (what `max_events` bounds)."""
        return self._events

    def _pop(self, instance_id: UUID) -> None:
        instance = self._items.pop(instance_id, None)
        if instance is not None:
            self._events -= instance.version

    def _note_token(self, row: BookmarkRow) -> None:
        if not row.token:
            return
        if row.status == "open":
            self._tokens[row.token] = CachedBookmark(row.tenant, row.instance_id, row.id)
            self._tokens_of.setdefault(row.instance_id, set()).add(row.token)
        else:
            self._tokens.pop(row.token, None)
            self._tokens_of.get(row.instance_id, set()).discard(row.token)

    def _forget_tokens(self, instance_id: UUID) -> None:
        for token in self._tokens_of.pop(instance_id, ()):
            self._tokens.pop(token, None)
