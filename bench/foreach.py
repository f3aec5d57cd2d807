"""`foreach-1000`: one parallel `for_each` of 1,000 `noop` service tasks over HTTP.

`waymark serve` (workers in process) on the embedded PostgreSQL; one `POST /v1/instances`
with 1,000 items, then `GET /v1/instances/{id}` every 0.25 s until it completed. Reported:
the wall time (start to completed), the instance's events, the transactions that stored
them (`xmin` of its event rows: one per commit) and the most events one commit stored
(the bounded batches: no command writes the 1,000 items at once), and the phases read from
the history (items started, items finished).

    .venv/bin/python -m bench.foreach [--items 1000] [--batch 50] [--profile out.txt]

`--profile` runs the server under `py-spy record` (raw collapsed stacks, for
`bench/README.md`'s flame-graph tools or a grep); py-spy is not a dependency of the project.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import API_KEY, Bench, environment, progress, serving

NAME = "bench-foreach"
FOREACH = {
    "name": NAME,
    "nodes": [
        {
            "id": "each",
            "type": "service_task",
            "action": {"type": "noop", "n": "{{ item }}"},
            "result_var": "out",
            "for_each": {"items": "input.items"},
        },
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "each", "to": "done"}],
}


def stored(bench: Bench, instance_id: str) -> dict[str, Any]:
    """Events of the instance and the transactions (xmin) that stored them."""
    import psycopg

    with psycopg.connect(bench.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT xmin::text FROM waymark_events WHERE originator_id = %s", (instance_id,)
        ).fetchall()
        activities = conn.execute(
            "SELECT count(*) FROM activities WHERE instance_id = %s", (instance_id,)
        ).fetchone()
    per_commit = Counter(xmin for (xmin,) in rows)
    return {
        "events": len(rows),
        "commits": len(per_commit),
        "max_events_per_commit": max(per_commit.values(), default=0),
        "activity_rows": activities[0] if activities else 0,
    }


def phases(client: Any, instance_id: str) -> dict[str, float]:
    """Seconds from the start to the last item scheduled and to the last item finished."""
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/v1/instances/{instance_id}/history", params=params).json()
        entries += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    from datetime import datetime

    def at(entry: dict[str, Any]) -> float:
        return datetime.fromisoformat(entry["timestamp"]).timestamp()

    first = at(entries[0])
    scheduled = [at(e) for e in entries if e["type"] == "ActivityScheduled"]
    finished = [at(e) for e in entries if e["type"] == "ForEachItemCompleted"]
    return {
        "all_items_scheduled_s": round(max(scheduled) - first, 2) if scheduled else 0.0,
        "all_items_finished_s": round(max(finished) - first, 2) if finished else 0.0,
    }


def run(items: int, batch: int, profile: str | None, extra: dict[str, str]) -> dict[str, Any]:
    import httpx

    env = {"WAYMARK_FOR_EACH_BATCH_SIZE": str(batch), **extra}
    prefix: tuple[str, ...] = ()
    if profile:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        prefix = (spy, "record", "--format", "raw", "--rate", "50", "-o", profile, "--")
    with (
        environment(database=True, pool_size=10, definitions=[FOREACH]) as bench,
        serving(bench, 10, workers_in_process=True, extra_env=env, prefix=prefix) as base_url,
        httpx.Client(
            base_url=base_url, timeout=60.0, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as client,
    ):
        progress(f"starting a for_each of {items} items (batch {batch})")
        began = time.monotonic()
        response = client.post(
            "/v1/instances", json={"definition": NAME, "input": {"items": list(range(items))}}
        )
        if response.status_code != 201:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
        start_s = time.monotonic() - began
        instance_id = response.json()["id"]
        status = response.json()["status"]
        poll_errors = 0  # answers other than 200 while polling (the cache race gave 500s)
        while status not in ("completed", "failed", "cancelled"):
            time.sleep(0.25)
            polled = client.get(f"/v1/instances/{instance_id}")
            if polled.status_code != 200:
                poll_errors += 1
                continue
            status = polled.json()["status"]
            if time.monotonic() - began > 900:
                raise RuntimeError("not completed in 15 minutes")
        seconds = time.monotonic() - began
        result: dict[str, Any] = {
            "scenario": f"foreach-{items}",
            "items": items,
            "batch": batch,
            "status": status,
            "seconds": round(seconds, 2),
            "items_per_s": round(items / seconds, 1),
            "start_request_s": round(start_s, 3),
            "poll_errors": poll_errors,
            **phases(client, instance_id),
            **stored(bench, instance_id),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.foreach")
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--profile", help="run the server under py-spy, raw stacks to this file")
    parser.add_argument("--env", action="append", default=[], help="WAYMARK_X=value")
    args = parser.parse_args(argv)
    extra = dict(e.split("=", 1) for e in args.env)
    print(json.dumps(run(args.items, args.batch, args.profile, extra), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
