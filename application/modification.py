"""Operator recovery use cases: instance modification and version migration.

- `modify`: one command per request (`domain.engine.modify`): `InstanceModified` with who
  and why, then the cancellations and the walk from the started nodes.
- `plan_migration` (the dry run): per instance of `from_version` still running, whether it
  can move to `to_version` under the mapping and why not (`domain.engine.migration.plan`);
  nothing is written.
- `start_migration` / `run_migration`: a tracked job (`application.jobs`). Instances are
  taken a batch at a time (`batch_size`); each moves in its own command by ONE
  `InstanceMigrated` event, re-planned on the instance's current state inside the command,
  so an instance that changed since the dry run is judged again; a refused one is counted
  with its reasons and nothing of it changes. The job's counts are stored after every batch.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from application import audit
from application.definitions import DefinitionCache
from application.idempotency import KeyedCommands, fingerprint, stored_result
from application.jobs import (
    RUNNING,
    Job,
    JobNotFoundError,
    JobStore,
    Step,
    item_key,
    run_in_batches,
)
from application.ports import InstanceStore, ReadModelQueries
from application.read_models import InstanceFilter
from application.runner import CommandRunner
from application.session import CommandAttempt
from application.views import instance_view, jsonable
from domain.definition import Definition
from domain.engine import migration, modify
from domain.errors import MigrationRefusedError, NodeNotActiveError
from domain.values import clean_value

MIGRATION_JOB = "migration"
ACTIVE_STATUSES = ("running", "suspended")


class ModificationService:
    def __init__(
        self,
        runner: CommandRunner,
        store: InstanceStore,
        definitions: DefinitionCache,
        queries: ReadModelQueries,
        jobs: JobStore,
        *,
        batch_size: int = 50,
    ):
        self.runner = runner
        self.store = store
        self.definitions = definitions
        self.queries = queries
        self.jobs = jobs
        self.batch_size = batch_size
        self.keyed = KeyedCommands(runner, queries)

    # --- modification --------------------------------------------------------------------

    def modify(
        self,
        tenant: str,
        instance_id: UUID,
        operations: list[dict[str, Any]],
        *,
        by: str | None,
        reason: str | None,
        idempotency_key: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """(view, replayed). With a key the view is stored in the command's transaction with
        the request's fingerprint (instance, operations, reason): the same request again
        replays it, the key with another request is refused (idempotency-key-reused)."""
        reason = clean_value(reason, "the reason of the modification")
        scope, key = "modify", idempotency_key
        request = fingerprint(str(instance_id), operations, reason)
        prior = self.keyed.first_result(tenant, scope, key, request)
        if prior is not None:
            return prior, True

        def command(session: CommandAttempt) -> dict[str, Any]:
            instance = session.load(instance_id, tenant)
            definition = session.definition_of(instance)
            modify.modify(instance, definition, operations, by=by, reason=reason, env=session.env)
            session.audit(
                audit.entry(
                    tenant,
                    audit.INSTANCE_MODIFIED,
                    f"instance:{instance_id}",
                    operations=operations,
                    reason=reason,
                )
            )
            view = jsonable(instance_view(instance))
            session.remember(tenant, scope, key, stored_result(request, view))
            return view

        # A concurrent repeat that lost the race finds the cancelled node gone: 409.
        return self.keyed.run(
            command, [instance_id], tenant, scope, key, request, (NodeNotActiveError,)
        )

    # --- migration -----------------------------------------------------------------------

    def plan_migration(
        self, tenant: str, name: str, from_version: int, to_version: int, mapping: dict[str, str]
    ) -> dict[str, Any]:
        """The dry run: per instance, whether it can move and why not. Writes nothing."""
        old, new = self._versions(tenant, name, from_version, to_version, mapping)
        report = []
        for instance_id in self._candidates(tenant, name, from_version):
            instance = self.store.get(instance_id, tenant)
            if instance is None:
                continue
            found = migration.plan(instance, old, new, mapping)
            report.append(
                {
                    "instance_id": str(instance_id),
                    "status": instance.status,
                    "can_migrate": found.possible,
                    "reasons": found.reasons,
                    "renamed": found.nodes,
                }
            )
        movable = sum(1 for r in report if r["can_migrate"])
        return {
            "dry_run": True,
            "definition": name,
            "from_version": from_version,
            "to_version": to_version,
            "total": len(report),
            "can_migrate": movable,
            "cannot_migrate": len(report) - movable,
            "instances": report,
        }

    def start_migration(
        self,
        tenant: str,
        name: str,
        from_version: int,
        to_version: int,
        mapping: dict[str, str],
        *,
        by: str | None,
        reason: str | None,
    ) -> Job:
        """Check the request, store the job (status `running`); `run_migration` does it."""
        self._versions(tenant, name, from_version, to_version, mapping)
        reason = clean_value(reason, "the reason of the migration")
        now = self.runner.clock.now()
        params = {
            "definition": name,
            "from_version": from_version,
            "to_version": to_version,
            "mapping": mapping,
            "reason": reason,
        }
        job = Job(
            id=uuid.uuid4(), tenant=tenant, kind=MIGRATION_JOB, status=RUNNING, params=params,
            created_at=now, updated_at=now, created_by=by,
        )  # fmt: skip
        job.total = len(self._candidates(tenant, name, from_version))
        self.jobs.create(job)
        return job

    def run_migration(self, job: Job) -> Job:
        """Migrate the job's instances a batch at a time, storing progress after each."""
        p = job.params

        def plan() -> tuple[list[UUID], Step]:
            old, new = self._versions(
                job.tenant, p["definition"], p["from_version"], p["to_version"], p["mapping"]
            )
            candidates = self._candidates(job.tenant, p["definition"], p["from_version"])
            return candidates, lambda instance_id: self._migrate_one(job, instance_id, old, new)

        return run_in_batches(
            job,
            self.jobs,
            self.runner.clock.now,
            plan,
            batch_size=self.batch_size,
            refusals=(MigrationRefusedError,),
        )

    def job(self, tenant: str, job_id: UUID) -> Job:
        found = self.jobs.get(tenant, job_id)
        if found is None:
            raise JobNotFoundError(job_id)
        return found

    def _migrate_one(self, job: Job, instance_id: UUID, old: Definition, new: Definition) -> None:
        mapping, reason = job.params["mapping"], job.params.get("reason")
        # Recorded with the move: a resumed job finds the instances moved before the crash.
        key, request = item_key(job, instance_id), fingerprint(str(instance_id))
        if self.keyed.first_result(job.tenant, MIGRATION_JOB, key, request) is not None:
            return

        def command(session: CommandAttempt) -> dict[str, Any]:
            instance = session.load(instance_id, job.tenant)
            migration.migrate(
                instance, old, new, mapping, by=job.created_by, reason=reason, env=session.env
            )
            session.audit(
                audit.entry(
                    job.tenant,
                    audit.INSTANCE_MIGRATED,
                    f"instance:{instance_id}",
                    job=str(job.id),
                    from_version=old.version,
                    to_version=new.version,
                    reason=reason,
                )
            )
            moved = {"instance_id": str(instance_id), "to_version": new.version}
            session.remember(job.tenant, MIGRATION_JOB, key, stored_result(request, moved))
            return moved

        self.keyed.run(command, [instance_id], job.tenant, MIGRATION_JOB, key, request)

    def _versions(
        self, tenant: str, name: str, from_version: int, to_version: int, mapping: dict[str, str]
    ) -> tuple[Definition, Definition]:
        old = self.definitions.get(tenant, name, from_version).definition
        new = self.definitions.get(tenant, name, to_version).definition
        migration.check_mapping(old, new, mapping)
        return old, new

    def _candidates(self, tenant: str, name: str, version: int) -> list[UUID]:
        """Instances of `name` at `version` that have not ended, oldest first."""
        found: list[UUID] = []
        for status in ACTIVE_STATUSES:
            cursor: str | None = None
            while True:
                page = self.queries.list_instances(
                    tenant, InstanceFilter(status=status, definition=name), limit=500, cursor=cursor
                )
                found += [row.id for row in page.items if row.version == version]
                cursor = page.next_cursor
                if not cursor:
                    break
        return found
