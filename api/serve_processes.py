"""`waymark serve --workers N` (or `WAYMARK_API_WORKERS`), N > 1: several API processes.

One Python process serves HTTP on one core at most (the GIL); N uvicorn worker processes
share the listening socket. Each builds its own container (its own pool of
`WAYMARK_DB_POOL_SIZE` connections). When the workers run in-process
(`WAYMARK_RUN_WORKERS_IN_PROCESS`), each API process hosts its own task and timer workers by
default (`WAYMARK_API_PROCESS_WORKERS=true`): N replicas of `waymark serve` on one port,
each dispatching the activities its commits schedule to its own task worker (eager
dispatch), as replicas do in production. With `WAYMARK_API_PROCESS_WORKERS=false` the API
processes host none and the workers run instead as one `waymark worker tasks` and one
`waymark worker timers` process (and `waymark worker outbox` with a broker), started and
stopped with the server and woken by LISTEN/NOTIFY. Measured on the 3-step benchmark with
two API processes: 176–192 workflows/s and 2.2 commits per workflow in the first layout,
117 and 7.2 in the second.

Needs `DATABASE_URL`: the embedded development database belongs to one process. With
the default `WAYMARK_RATE_LIMIT_STORAGE=memory` rate limits are counted in each process's
memory, so N processes allow up to N times the configured rate; `postgres` shares one
budget between them.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from infrastructure.settings import Settings

# How long stopping waits for a worker process beyond its own shutdown grace.
STOP_MARGIN_SECONDS = 10.0


def worker_names(settings: Settings) -> list[str]:
    """The workers `waymark serve` hosts as `waymark worker` processes beside the API
    processes: none when each API process hosts its own (`WAYMARK_API_PROCESS_WORKERS`)."""
    if not settings.workers_in_process or settings.api_process_workers:
        return []
    names = ["tasks", "timers"]
    if settings.kafka_bootstrap_servers:
        names.append("outbox")
    return names


def serve_many(
    settings: Settings,
    host: str,
    port: int,
    processes: int,
    ssl_keyfile: str | None = None,
    ssl_certfile: str | None = None,
) -> int:
    import uvicorn

    if not settings.database_url:
        print(
            "waymark serve: --workers > 1 needs DATABASE_URL (the embedded development "
            "database serves one process)",
            file=sys.stderr,
        )
        return 2
    from api.cli import or_refuse
    from infrastructure.bootstrap import prepare_schema

    # Checked once here, not in each process's lifespan: a refusal is one line.
    or_refuse("serve", lambda: prepare_schema(settings))
    log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    # As threads of `waymark serve` they served no probe port of their own; as processes
    # they take a free one unless one is configured (the API's /health is the server's).
    env = {"WAYMARK_WORKER_PROBE_PORT": "0", **os.environ}
    helpers = [
        subprocess.Popen([sys.executable, "-m", "api.cli", "worker", name], env=env)  # noqa: S603
        for name in worker_names(settings)
    ]
    try:
        uvicorn.run(
            "api.serve_processes:api_app",
            factory=True,
            workers=processes,
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=math.ceil(settings.api_shutdown_grace),
            log_config=log_config,
            ssl_keyfile=ssl_keyfile,
            ssl_certfile=ssl_certfile,
        )
    finally:
        _stop(helpers, settings.worker_shutdown_grace + STOP_MARGIN_SECONDS)
    return 0


def api_app() -> FastAPI:
    """The app of one API process (uvicorn's factory, run in each worker process)."""
    from api.app import create_app
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings
    from infrastructure.telemetry import configure_logging
    from infrastructure.tracing import configure_tracing

    settings = Settings()
    configure_logging(settings.log_level, fmt=settings.log_format, levels=settings.log_levels)
    configure_tracing("api")
    start_workers = None
    if settings.workers_in_process and settings.api_process_workers:
        from api.cli import in_process_workers

        start_workers = in_process_workers
    return create_app(lambda: build_api(settings), start_workers=start_workers, settle_heap=True)


def _stop(helpers: list[subprocess.Popen[bytes]], timeout: float) -> None:
    for process in helpers:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in helpers:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
