"""A process competing for leadership, run by test_leadership: `python -m
tests.integration.leader_candidate URL NAME` prints STARTED, then LEADER / STANDBY on each
change of its role."""

from __future__ import annotations

import sys
import time

from infrastructure.postgres.leadership import Leadership

RETRY_INTERVAL = 0.2


def main() -> None:
    database_url, name = sys.argv[1:3]
    leadership = Leadership(database_url, name, retry_interval=RETRY_INTERVAL)
    print("STARTED", flush=True)
    leads = False
    while True:
        now = leadership.ensure()
        if now != leads:
            print("LEADER" if now else "STANDBY", flush=True)
            leads = now
        time.sleep(0.05)


if __name__ == "__main__":
    main()
