"""Where a run's CPU goes, from /proc (Linux): a process tree's CPU seconds and how busy the
machine was.

`tree_seconds(pid)` sums utime + stime + cutime + cstime over the live processes of the tree
rooted at `pid`: a descendant that exited and was reaped has its time in its parent's
cutime/cstime, a live one in its own utime/stime, so every CPU second is counted once and a
delta between two readings is what the tree used in between (a reading of a tree whose root
is gone is 0). `machine()` reads the first line of /proc/stat; `busy(before, after)` is the
fraction of the machine's CPU time that was not idle (idle + iowait) in between, over all
cores: near 1.0 means the run was CPU-bound, well below means it waited (on the disk, on
round trips). `Window` takes both readings around a run. Stdlib only: the DBOS worker
process imports it too.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return raw[raw.rindex(")") + 2 :].split()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            tree.setdefault(int(fields[1]), []).append(int(entry.name))  # fields[1] = ppid
    return tree


def tree_seconds(pid: int | None) -> float:
    """CPU seconds used so far by the live process tree rooted at `pid` (0 without one)."""
    if not pid:
        return 0.0
    tree = _children()
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        fields = _stat_fields(current)
        if fields is None:
            continue
        # After the name: state ppid ... utime(14) stime(15) cutime(16) cstime(17) (1-based
        # in proc(5), i.e. indexes 11..14 here).
        total += sum(int(x) for x in fields[11:15])
        todo.extend(tree.get(current, ()))
    return total / TICKS


def own_seconds() -> float:
    """CPU seconds of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far, all cores."""
    with open(PROC / "stat") as stat:
        values = [int(x) for x in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user).
    counted = values[:8]
    idle = counted[3] + counted[4]
    return sum(counted) - idle, sum(counted)


def busy(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else None


@dataclass
class Window:
    """CPU seconds of some process trees (by label) and of this process, and the machine's
    busy fraction, between `start()` and `stop()`."""

    trees: dict[str, int | None]
    own: str | None = None  # label for this process's own CPU, if wanted
    _before: dict[str, float] = field(default_factory=dict)
    _machine: tuple[int, int] = (0, 0)
    seconds: dict[str, float] = field(default_factory=dict)
    busy: float | None = None

    def _read(self) -> dict[str, float]:
        out = {label: tree_seconds(pid) for label, pid in self.trees.items()}
        if self.own:
            out[self.own] = own_seconds()
        return out

    def start(self) -> Window:
        self._machine = machine()
        self._before = self._read()
        return self

    def stop(self) -> Window:
        after = self._read()
        self.busy = busy(self._machine, machine())
        self.seconds = {k: after[k] - self._before[k] for k in after}
        return self


def postmaster_pid(pgdata: Path) -> int | None:
    """The PostgreSQL server's pid from its data directory (`postmaster.pid`, first line)."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
