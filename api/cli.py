"""The `waymark` command: `serve`, `migrate`, `worker <name>`, `definitions apply|validate`.

Settings and the container are built inside each command, never at import time.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from api.app import HostedWorkers
    from infrastructure.container import Container

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

    definitions = commands.add_parser("definitions", help="definitions kept as JSON/YAML files")
    files = definitions.add_subparsers(dest="files_command", required=True, metavar="ACTION")
    apply = files.add_parser("apply", help="publish every changed definition file under PATH")
    apply.add_argument("path", metavar="PATH", help="a folder (searched recursively) or a file")
    apply.add_argument("--tenant", required=True, help="the tenant that owns the definitions")
    check = files.add_parser("validate", help="check every definition file under PATH (CI)")
    check.add_argument("path", metavar="PATH", help="a folder (searched recursively) or a file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args.host, args.port)
    if args.command == "migrate":
        return migrate()
    if args.command == "definitions":
        return definitions(args.files_command, args.path, getattr(args, "tenant", None))
    return worker(args.name)


def serve(host: str, port: int) -> int:
    import uvicorn

    from api.app import create_app
    from infrastructure.bootstrap import build_api, prepare_schema
    from infrastructure.settings import Settings
    from infrastructure.telemetry import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)  # before the container is built, which already logs
    # Checked here, not only in the lifespan: a refusal is one line, not a traceback.
    or_refuse("serve", lambda: prepare_schema(settings))
    app = create_app(
        lambda: build_api(settings),
        start_workers=_in_process_workers if settings.workers_in_process else None,
    )
    # uvicorn turns SIGTERM/SIGINT into a graceful shutdown, which runs the lifespan's exit.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return 0


def _in_process_workers(container: Container) -> HostedWorkers:
    """The task and timer workers as threads of `waymark serve`, on the API's core.

    The one place `api` reaches into `workers` (the import-linter contract allows only
    `api.cli -> workers`)."""
    from workers.in_process import InProcessWorkers

    return InProcessWorkers.start(container.core)


def migrate() -> int:
    from infrastructure.bootstrap import build_core
    from infrastructure.postgres.migrate import migrate as run_migrations
    from infrastructure.settings import Settings
    from infrastructure.telemetry import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    if settings.database_url:
        run_migrations(settings.database_url)
    else:
        # Development: the core starts the embedded server and migrates it.
        build_core(settings).close()
    print("database schema is up to date", file=sys.stderr)
    return 0


def worker(name: str) -> int:
    if name not in AVAILABLE_WORKERS:
        print(
            f"waymark worker {name}: not available yet: arrives with a later release",
            file=sys.stderr,
        )
        return 2
    from infrastructure.bootstrap import build_task_worker, build_timer_worker
    from infrastructure.settings import Settings
    from infrastructure.telemetry import configure_logging
    from workers import task_worker, timer_worker

    settings = Settings()
    configure_logging(settings.log_level)
    # Each worker has its own composition root: no API keys, no tenant secrets, no FastAPI.
    if name == "tasks":
        task_worker.main(or_refuse("worker tasks", lambda: build_task_worker(settings)))
    else:
        timer_worker.main(or_refuse("worker timers", lambda: build_timer_worker(settings)))
    return 0


def definitions(command: str, path_text: str, tenant: str | None) -> int:
    """`validate`: every problem, exit 1 if any (no database). `apply`: publish the changed
    files for `tenant` against the configured database (like `migrate`), print each."""
    from pathlib import Path

    from application.definition_files import DefinitionFiles
    from application.definitions import DefinitionService
    from infrastructure.definition_files import read_definition_files
    from infrastructure.schemas import JsonSchemaValidator

    path = Path(path_text)
    if not path.exists():
        print(f"waymark definitions {command}: {path} does not exist", file=sys.stderr)
        return 2
    files = read_definition_files(path)
    if not files:
        print(f"waymark definitions {command}: no .json/.yaml/.yml file in {path}", file=sys.stderr)
        return 2
    if command == "validate":
        problems = DefinitionFiles(DefinitionService(None, JsonSchemaValidator())).validate(files)  # type: ignore[arg-type]
        for problem in problems:
            print(problem)
        print(f"{len(files)} file(s), {len(problems)} problem(s)", file=sys.stderr)
        return 1 if problems else 0
    assert tenant is not None
    from infrastructure.bootstrap import build_core
    from infrastructure.settings import Settings
    from infrastructure.telemetry import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    core = or_refuse("definitions apply", lambda: build_core(settings))
    try:
        service = DefinitionService(core.definition_store, JsonSchemaValidator())
        report = DefinitionFiles(service).apply(tenant, files)
    finally:
        core.close()
    for problem in report.problems:
        print(problem)
    if not report.ok:
        print(f"nothing published: {len(report.problems)} problem(s)", file=sys.stderr)
        return 1
    for applied in report.applied:
        print(f"{applied.action:<9} {applied.name} v{applied.version}  ({applied.path})")
    changed = sum(1 for a in report.applied if a.action != "unchanged")
    print(f"{changed} published, {len(report.applied) - changed} unchanged", file=sys.stderr)
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
