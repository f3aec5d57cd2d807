"""The `waymark` command: `serve`, `migrate`, `worker <name>`.

Settings and the container are built inside each command, never at import time.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

WORKERS = ("outbox", "timers", "tasks", "cleanup", "commands")
AVAILABLE_WORKERS = frozenset({"tasks", "timers"})
# After SIGTERM, open requests get this long before uvicorn closes their connections.
GRACEFUL_SHUTDOWN_SECONDS = 20


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="waymark", description="Waymark workflow engine")
    parser.add_argument(
        "--version", action="version", version=f"waymark {importlib.metadata.version('waymark')}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API (and, in development, workers)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (8000)")

    commands.add_parser("migrate", help="bring the database schema up to date")

    worker = commands.add_parser("worker", help="run one background worker")
    worker.add_argument("name", choices=WORKERS, help="which worker")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args.host, args.port)
    if args.command == "migrate":
        return migrate()
    return worker(args.name)


def serve(host: str, port: int) -> int:
    import uvicorn

    from api.app import configure_logging, create_app
    from infrastructure.bootstrap import bootstrap, prepare_schema
    from infrastructure.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level)  # before bootstrap, which already logs
    # Checked here, not only in the lifespan: a refusal is one line, not a traceback.
    or_refuse("serve", lambda: prepare_schema(settings))
    app = create_app(lambda: bootstrap(settings))
    # uvicorn turns SIGTERM/SIGINT into a graceful shutdown, which runs the lifespan's exit.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return 0


def migrate() -> int:
    from api.app import configure_logging
    from infrastructure.bootstrap import bootstrap
    from infrastructure.postgres.migrate import migrate as run_migrations
    from infrastructure.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level)
    if settings.database_url:
        run_migrations(settings.database_url)
    else:
        # Development: bootstrap starts the embedded server and migrates it.
        bootstrap(settings).close()
    print("database schema is up to date", file=sys.stderr)
    return 0


def worker(name: str) -> int:
    if name not in AVAILABLE_WORKERS:
        print(
            f"waymark worker {name}: not available yet: arrives with a later release",
            file=sys.stderr,
        )
        return 2
    from api.app import configure_logging
    from infrastructure.bootstrap import bootstrap
    from infrastructure.settings import Settings
    from workers import task_worker, timer_worker

    settings = Settings()
    configure_logging(settings.log_level)
    run = {"tasks": task_worker.main, "timers": timer_worker.main}[name]
    run(or_refuse(f"worker {name}", lambda: bootstrap(settings)))
    return 0


def or_refuse(command: str, build: Callable[[], T]) -> T:
    """`build()`; if the schema is not the expected one, one line on stderr and exit 1."""
    from infrastructure.postgres.migrate import SchemaNotCurrentError

    try:
        return build()
    except SchemaNotCurrentError as error:
        print(f"waymark {command}: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    sys.exit(main())
