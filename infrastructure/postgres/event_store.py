"""The eventsourcing `Application` that stores instances' events in `waymark_events`."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import BaseInfrastructureFactory, Environment
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)

from infrastructure.postgres.recorder import EVENTS_TABLE, WaymarkRecorder, WriteLimits
from infrastructure.postgres.repository import CopyingRepository


class WaymarkFactory(PostgresFactory):
    """A PostgresFactory over a datastore built by the composition root.

    The library's factory builds its own pool from `POSTGRES_*` variables; Waymark has one
    pool per process shared by the event store, the read models and the workers, so this
    factory takes that pool instead, and leaves closing it to whoever built it.
    """

    def __init__(
        self,
        env: Environment,
        datastore: PostgresDatastore,
        recorder_class: type[PostgresApplicationRecorder] = WaymarkRecorder,
        limits: WriteLimits | None = None,
    ) -> None:
        BaseInfrastructureFactory.__init__(self, env)  # skips the env-built pool
        self.datastore = datastore
        self.recorder_class = recorder_class
        self.limits = limits

    def application_recorder(self) -> PostgresApplicationRecorder:
        # The alembic migrations own the schema: never create_table() from here.
        if issubclass(self.recorder_class, WaymarkRecorder):
            return self.recorder_class(
                datastore=self.datastore, events_table_name=EVENTS_TABLE, limits=self.limits
            )
        return self.recorder_class(datastore=self.datastore, events_table_name=EVENTS_TABLE)

    def env_create_table(self) -> bool:
        return False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        return None

    def close(self) -> None:
        return None


class WaymarkApplication(Application[UUID]):
    """Repository and event store of workflow instances (events table `waymark_events`).

    Run the migrations before building it: the recorder loads the `stored_event_uuid`
    composite type from the database when it is constructed.
    """

    name = "waymark"

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        recorder_class: type[PostgresApplicationRecorder] = WaymarkRecorder,
        env: dict[str, str] | None = None,
        limits: WriteLimits | None = None,
    ) -> None:
        self._datastore = datastore
        self._recorder_class = recorder_class
        self._limits = limits
        super().__init__(env)

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # Configuration comes from Settings, not from whatever the process environment
        # holds (the library would otherwise read e.g. COMPRESSOR_TOPIC or cache settings).
        return Environment(name, {**type(self).env, **(env or {})})

    # eventsourcing types this as InfrastructureFactory[TrackingRecorder] with an invariant
    # type variable, so no PostgresFactory (InfrastructureFactory[PostgresTrackingRecorder])
    # can satisfy it; the override is sound, the library's annotation is too narrow.
    def construct_factory(self, env: Environment) -> WaymarkFactory:  # type: ignore[override]
        return WaymarkFactory(env, self._datastore, self._recorder_class, self._limits)

    def construct_repository(self) -> CopyingRepository:
        # The library's, with its cached copy made under the fast-forward lock
        # (infrastructure/postgres/repository.py).
        base = super().construct_repository()
        return CopyingRepository(
            event_store=base.event_store,
            snapshot_store=base.snapshot_store,
            cache_maxsize=_cache_size(self.env.get(self.AGGREGATE_CACHE_MAXSIZE)),
            fastforward=base.fastforward,
            fastforward_skipping=base.fastforward_skipping,
            deepcopy_from_cache=base.deepcopy_from_cache,
        )


def _cache_size(value: str | None) -> int | None:
    return int(value) if value else None
