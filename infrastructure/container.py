"""The composition root's product: every service a process needs, built once from Settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from application.analytics import AnalyticsService
from application.callbacks import CallbackService
from application.definitions import DefinitionService
from application.instances import InstanceService
from application.ports import ActionRunner, ActivityQueue, Clock
from application.session import CommandRunner
from application.tasks import ActivityService, TaskService
from application.templates import TemplateService
from application.timers import TimerService
from application.webhooks import WebhookService

if TYPE_CHECKING:
    from infrastructure.settings import Settings


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from the API key."""

    key_name: str
    tenant: str
    roles: frozenset[str]


@dataclass
class Container:
    settings: Settings
    clock: Clock
    definitions: DefinitionService
    instances: InstanceService
    tasks: TaskService
    callbacks: CallbackService
    webhooks: WebhookService
    activities: ActivityService
    timers: TimerService
    templates: TemplateService
    analytics: AnalyticsService
    activity_queue: ActivityQueue
    actions: ActionRunner
    api_keys: dict[str, Principal]
    runner: CommandRunner
    # The resolved URL (embedded or configured): LISTEN and leadership need connections of
    # their own, outside the pool.
    database_url: str
    check_database: Callable[[], None]
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()
