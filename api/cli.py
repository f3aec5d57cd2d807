"""The `waymark` command: `serve`, `migrate`, `worker <name>`, `definitions apply|validate`.

Settings and the container are built inside each command, never at import time.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from types import FrameType

    from api.app import HostedWorkers
    from infrastructure.container import Container
    from infrastructure.settings import Settings

T = TypeVar("T")

WORKERS = ("outbox", "timers", "tasks", "cleanup", "commands")
AVAILABLE_WORKERS = frozenset({"tasks", "timers", "cleanup", "outbox", "commands"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="waymark", description="Waymark workflow engine")
    parser.add_argument(
        "--version", action="version", version=f"waymark {importlib.metadata.version('waymark')}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API (and, in development, workers)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (8000)")
    # TLS served by uvicorn itself (docs/security.md#tls); usually an ingress does it.
    serve.add_argument("--ssl-keyfile", help="serve HTTPS: the private key (PEM)")
    serve.add_argument("--ssl-certfile", help="serve HTTPS: the certificate chain (PEM)")
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="API processes (WAYMARK_API_WORKERS, 1); N > 1 runs the in-process task and "
        "timer workers as processes of their own (api/serve_processes.py)",
    )

    commands.add_parser("migrate", help="bring the database schema up to date")

    worker = commands.add_parser("worker", help="run one background worker")
    worker.add_argument("name", choices=WORKERS, help="which worker")

    cleanup = commands.add_parser("cleanup", help="prune by retention (see docs/runbook.md)")
    cleanup.add_argument("--once", action="store_true", help="one run, then exit (a CronJob)")
    cleanup.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted; delete nothing"
    )

    erase = commands.add_parser("erase", help="erase an ended instance completely (GDPR)")
    erase.add_argument("--instance", required=True, help="the instance id")
    erase.add_argument("--tenant", help="refuse unless the instance belongs to this tenant")
    erase.add_argument("--reason", help="recorded in the audit entry")
    erase.add_argument("--by", default="cli", help="who asks (recorded; default 'cli')")
    outbox = commands.add_parser("outbox", help="inspect the Kafka outbox")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True)
    dead = outbox_commands.add_parser("dead-letters", help="list (or re-drive) dead letters")
    dead.add_argument("--retry", type=int, metavar="ID", help="re-drive this dead letter")
    dead.add_argument("--limit", type=int, default=100, help="how many to list (100)")
    definitions = commands.add_parser("definitions", help="definitions kept as JSON/YAML files")
    files = definitions.add_subparsers(dest="files_command", required=True, metavar="ACTION")
    apply = files.add_parser("apply", help="publish every changed definition file under PATH")
    apply.add_argument("path", metavar="PATH", help="a folder (searched recursively) or a file")
    apply.add_argument("--tenant", required=True, help="the tenant that owns the definitions")
    check = files.add_parser("validate", help="check every definition file under PATH (CI)")
    check.add_argument("path", metavar="PATH", help="a folder (searched recursively) or a file")
    replay = commands.add_parser(
        "replay-check", help="rebuild stored instances with this code; report any that differ"
    )
    replay.add_argument("--definition", help="only instances of this definition")
    replay.add_argument("--sample", type=int, metavar="N", help="a random sample of N instances")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args.host, args.port, args.ssl_keyfile, args.ssl_certfile, args.workers)
    if args.command == "migrate":
        return migrate()
    if args.command == "cleanup":
        return cleanup(once=args.once or args.dry_run, dry_run=args.dry_run)
    if args.command == "erase":
        return erase(args.instance, args.tenant, args.reason, args.by)
    if args.command == "outbox":
        return dead_letters(args.retry, args.limit)
    if args.command == "replay-check":
        return replay_check(args.definition, args.sample)
    if args.command == "definitions":
        return definitions(args.files_command, args.path, getattr(args, "tenant", None))
    return worker(args.name)


def serve(
    host: str,
    port: int,
    ssl_keyfile: str | None = None,
    ssl_certfile: str | None = None,
    workers: int | None = None,
) -> int:
    import signal

    import uvicorn

    from api.app import create_app, end_event_streams
    from infrastructure.bootstrap import build_api, prepare_schema
    from infrastructure.settings import Settings
    from infrastructure.telemetry import configure_logging
    from infrastructure.tracing import configure_tracing, shutdown_tracing

    settings = Settings()
    configure_logging(
        settings.log_level, fmt=settings.log_format, levels=settings.log_levels
    )  # before the container is built, which already logs
    configure_tracing("api")
    processes = workers if workers is not None else settings.api_workers
    if processes < 1:
        print("waymark serve: --workers must be at least 1", file=sys.stderr)
        return 2
    if processes > 1:
        from api.serve_processes import serve_many

        return serve_many(settings, host, port, processes, ssl_keyfile, ssl_certfile)
    # Checked here, not only in the lifespan: a refusal is one line, not a traceback.
    or_refuse("serve", lambda: prepare_schema(settings))
    app = create_app(
        lambda: build_api(settings),
        start_workers=in_process_workers if settings.workers_in_process else None,
        settle_heap=True,
    )
    # JSON logs: uvicorn's records go through the root's JSON handler, not its own.
    log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    # uvicorn turns SIGTERM/SIGINT into a graceful shutdown, which runs the lifespan's exit.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=math.ceil(settings.api_shutdown_grace),
        log_config=log_config,
        ssl_keyfile=ssl_keyfile,
        ssl_certfile=ssl_certfile,
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            end_event_streams(app)  # open feed streams end now, not after the grace period
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal once it has shut down, so the process would end
            # "killed by SIGTERM": a drained, orderly stop exits 0 instead (SIGINT still
            # ends as a KeyboardInterrupt would).
            if sig == signal.SIGTERM:
                self._captured_signals = [s for s in self._captured_signals if s != sig]

    server = Server(config)
    server.run()
    shutdown_tracing()
    return 0 if server.started else 3  # uvicorn.run's exit code for a failed startup


def in_process_workers(container: Container) -> HostedWorkers:
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
    configure_logging(settings.log_level, fmt=settings.log_format, levels=settings.log_levels)
    if settings.database_url:
        run_migrations(settings.database_url, settings.database_app_role)
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
    from infrastructure.settings import Settings
    from infrastructure.telemetry import configure_logging
    from infrastructure.tracing import configure_tracing, shutdown_tracing

    settings = Settings()
    configure_logging(settings.log_level, fmt=settings.log_format, levels=settings.log_levels)
    configure_tracing(f"worker-{name}")
    try:
        return _run_worker(name, settings)
    finally:
        shutdown_tracing()


def _run_worker(name: str, settings: Settings) -> int:
    from infrastructure.worker_bootstrap import build_task_worker, build_timer_worker
    from workers import task_worker, timer_worker

    # Each worker has its own composition root: no API keys, no tenant secrets, no FastAPI.
    if name == "cleanup":
        return cleanup(once=False, dry_run=False)
    if name == "tasks":
        task_worker.main(long_running("worker tasks", build_task_worker, settings))
    elif name == "outbox":
        from infrastructure.worker_bootstrap import build_outbox_worker
        from workers import outbox_worker

        if not settings.kafka_bootstrap_servers:
            print("waymark worker outbox: KAFKA_BOOTSTRAP_SERVERS is not set", file=sys.stderr)
            return 2
        outbox_worker.main(long_running("worker outbox", build_outbox_worker, settings))
    elif name == "commands":
        return _command_worker(settings)
    else:
        timer_worker.main(long_running("worker timers", build_timer_worker, settings))
    return 0


def cleanup(*, once: bool, dry_run: bool) -> int:
    """`waymark cleanup --once [--dry-run]` (or the worker loop: `waymark worker cleanup`)."""
    from infrastructure.settings import Settings
    from infrastructure.telemetry import configure_logging
    from infrastructure.worker_bootstrap import build_cleanup_worker
    from workers import cleanup_worker

    settings = Settings()
    configure_logging(settings.log_level, fmt=settings.log_format, levels=settings.log_levels)
    container = or_refuse("cleanup", lambda: build_cleanup_worker(settings))
    if not once:
        from infrastructure.gc_tuning import settle

        settle(settings.gc_gen0_threshold)
        cleanup_worker.main(container)
        return 0
    try:
        report = container.cleanup.run(
            dry_run=dry_run,
            progress=lambda stage, counts: print(
                f"progress ({stage}): {_counts(counts)}", file=sys.stderr
            ),
        )
    finally:
        container.close()
    verb = "would delete" if dry_run else "deleted"
    for table, count in sorted(report.deleted.items()):
        print(f"{verb} {count} rows from {table}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"{verb} {sum(report.deleted.values())} rows in total")
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{table}={count}" for table, count in sorted(counts.items()))


def erase(instance: str, tenant: str | None, reason: str | None, by: str) -> int:
    """`waymark erase --instance ID`: the instance's events and read models, completely."""
    import json
    from uuid import UUID

    from application.errors import WaymarkError
    from infrastructure.settings import Settings
    from infrastructure.telemetry import configure_logging
    from infrastructure.worker_bootstrap import build_cleanup_worker

    try:
        instance_id = UUID(instance)
    except ValueError:
        print(f"waymark erase: {instance!r} is not an instance id", file=sys.stderr)
        return 2
    settings = Settings()
    configure_logging(settings.log_level, fmt=settings.log_format, levels=settings.log_levels)
    container = or_refuse("erase", lambda: build_cleanup_worker(settings))
    try:
        result = container.cleanup.erase(instance_id, tenant=tenant, erased_by=by, reason=reason)
    except WaymarkError as error:
        print(f"waymark erase: {error}", file=sys.stderr)
        return 1
    finally:
        container.close()
    print(json.dumps(result, sort_keys=True))
    return 0


def dead_letters(retry: int | None, limit: int) -> int:
    """`waymark outbox dead-letters [--retry ID]`: one JSON object per line (every tenant)."""
    import json

    from application.outbox import DeadLetterNotFoundError, OutboxService
    from infrastructure.bootstrap import build_core, outbox_tables
    from infrastructure.settings import Settings
    from infrastructure.telemetry import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, fmt=settings.log_format, levels=settings.log_levels)
    core = or_refuse("outbox dead-letters", lambda: build_core(settings))
    try:
        service = OutboxService(outbox_tables(core))
        if retry is not None:
            letters = [service.retry(None, retry)]
        else:
            letters = service.dead_letters(None, limit)
    except DeadLetterNotFoundError as error:
        print(f"waymark outbox dead-letters: {error}", file=sys.stderr)
        return 1
    finally:
        core.close()
    for letter in letters:
        print(json.dumps(letter.as_dict()))
    return 0


def _command_worker(settings: Settings) -> int:
    """`waymark worker commands`: exits 2 when no broker is configured."""
    from infrastructure.kafka_options import KafkaNotConfiguredError
    from infrastructure.worker_bootstrap import build_command_worker
    from workers import command_worker

    try:
        container = long_running("worker commands", build_command_worker, settings)
    except KafkaNotConfiguredError as error:
        print(f"waymark worker commands: {error}", file=sys.stderr)
        return 2
    command_worker.main(container)
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
    configure_logging(settings.log_level, fmt=settings.log_format, levels=settings.log_levels)
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


def long_running(command: str, build: Callable[[Settings], T], settings: Settings) -> T:
    """`or_refuse(command, lambda: build(settings))` for a process that then runs until
    stopped: its start-up heap is frozen out of the garbage collector's scans
    (infrastructure/gc_tuning.py)."""
    from infrastructure.gc_tuning import settle

    built = or_refuse(command, lambda: build(settings))
    settle(settings.gc_gen0_threshold)
    return built


if __name__ == "__main__":
    sys.exit(main())


def replay_check(definition: str | None, sample: int | None) -> int:
    """Replay stored instances with the current code (application/replay_check.py): 0 when
    every rebuilt instance matches its stored read model, 1 when any differs or fails."""
    from infrastructure.bootstrap import build_core, replay_checker
    from infrastructure.settings import Settings
    from infrastructure.telemetry import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    core = build_core(settings)
    try:
        report = replay_checker(core).run(definition=definition, sample=sample)
    finally:
        core.close()
    for problem in report.problems:
        print("\n".join(problem.lines()))
    bad = len(report.problems)
    print(f"replay-check: {report.checked} instances replayed, {bad} differ or fail")
    return 1 if bad else 0
