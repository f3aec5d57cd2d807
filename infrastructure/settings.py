"""Process configuration read from the environment (one `Settings` per process, built in main)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, computed_field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Waymark's knobs. Every field is `WAYMARK_<FIELD>` except the two well-known URLs.

    - `DATABASE_URL`: production PostgreSQL (`postgresql://user:pw@host:5432/db`, or the
      unix-socket form `postgresql://user@/db?host=/run/postgresql`). Unset means development
      mode: an embedded PostgreSQL under `data_dir`.
    - `KAFKA_BOOTSTRAP_SERVERS`: unset turns the outbox publisher off.
    - `WAYMARK_API_KEYS`: comma-separated `key=tenant:role1|role2` entries, e.g.
      `k1=acme:admin,k2=globex:operator|viewer`.
    - `WAYMARK_TENANT_SECRETS`: comma-separated `tenant=secret` entries, the per-tenant HMAC
      secrets that sign callbacks and webhooks, e.g. `acme=s3cret,globex=0th3r`.
    """

    model_config = SettingsConfigDict(
        env_prefix="WAYMARK_",
        extra="ignore",
        populate_by_name=True,
    )

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
    )
    data_dir: Path = Path(".waymark")
    api_keys: str = ""
    tenant_secrets: str = ""
    db_pool_size: int = Field(default=10, ge=1)
    db_connect_timeout: float = Field(default=5.0, gt=0)
    # Every statement and every lock wait is bounded (seconds, 0 = no limit); a request that
    # runs into one answers 503 instead of holding a connection or the events table's lock.
    db_statement_timeout: float = Field(default=30.0, ge=0)
    db_lock_timeout: float = Field(default=10.0, ge=0)
    # What one command may write to the event store, in bytes of stored event state.
    max_event_bytes: int = Field(default=262_144, ge=1)
    max_command_bytes: int = Field(default=8_388_608, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    task_worker_concurrency: int = Field(default=4, ge=1)
    task_poll_interval: float = Field(default=1.0, gt=0)
    task_lease_seconds: float = Field(default=300, gt=0)
    task_batch_size: int = Field(default=10, ge=1)
    timer_batch_size: int = Field(default=100, ge=1)
    timer_poll_interval: float = Field(default=30.0, gt=0)
    timer_lease_seconds: float = Field(default=30.0, gt=0)
    # After SIGTERM a worker stops claiming and has this long to finish or hand back what it
    # holds (below Kubernetes' default 30 s terminationGracePeriodSeconds).
    worker_shutdown_grace: float = Field(default=25.0, ge=0)
    # Standalone workers LISTEN for commits that create work; off where LISTEN cannot work
    # (a transaction-pooling PgBouncer): they then find work at their next poll.
    worker_listen: bool = True
    # Unset: the workers run inside `waymark serve` only in development (no DATABASE_URL);
    # production runs them as their own processes (`waymark worker ...`).
    run_workers_in_process: bool | None = None
    # Production: apply the migrations at startup instead of refusing an old schema.
    auto_migrate: bool = False
    # Signs pagination cursors; the same on every replica. Unset: derived (see bootstrap).
    cursor_secret: str | None = None
    log_level: str = "INFO"

    # --- External calls: circuit breakers, retries within an attempt, egress guard ---
    # (docs/actions.md). A breaker per action target opens when at least
    # `breaker_failure_ratio` of at least `breaker_min_calls` calls within
    # `breaker_window_seconds` failed, and stays open `breaker_open_seconds`.
    breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    breaker_min_calls: int = Field(default=10, ge=1)
    breaker_window_seconds: float = Field(default=60.0, gt=0)
    breaker_open_seconds: float = Field(default=30.0, gt=0)
    # Transient errors inside one attempt: tries in all, first delay, its multiplier.
    action_retry_attempts: int = Field(default=3, ge=1)
    action_retry_initial: float = Field(default=1.0, ge=0)
    action_retry_backoff: float = Field(default=1.5, ge=1)
    # Hosts or CIDRs that actions may reach although private/loopback/link-local
    # (comma-separated, e.g. "erp.internal,10.20.0.0/16"). Unset guard: `egress_guard`
    # None = on in production (DATABASE_URL set), loopback-only-allowed in development.
    egress_allow: str = ""
    egress_guard: bool | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def dev_mode(self) -> bool:
        """No DATABASE_URL: run against the embedded PostgreSQL in `data_dir`."""
        return self.database_url is None

    @property
    def workers_in_process(self) -> bool:
        """Whether `waymark serve` also runs the workers."""
        if self.run_workers_in_process is None:
            return self.dev_mode
        return self.run_workers_in_process

    def parsed_api_keys(self) -> dict[str, tuple[str, frozenset[str]]]:
        """`{api_key: (tenant, roles)}` from `api_keys`."""
        parsed: dict[str, tuple[str, frozenset[str]]] = {}
        for position, entry in _entries(self.api_keys):
            key, sep, grant = entry.partition("=")
            tenant, colon, roles_text = grant.partition(":")
            key, tenant = key.strip(), tenant.strip()
            roles = frozenset(r.strip() for r in roles_text.split("|") if r.strip())
            if not sep or not colon or not key or not tenant or not roles:
                raise ValueError(
                    f"WAYMARK_API_KEYS entry {position} is malformed: expected "
                    "'key=tenant:role1|role2' (at least one role)"
                )
            if key in parsed:
                raise ValueError(f"WAYMARK_API_KEYS entry {position} repeats an API key")
            parsed[key] = (tenant, roles)
        return parsed

    def parsed_tenant_secrets(self) -> dict[str, str]:
        """`{tenant: hmac_secret}` from `tenant_secrets`."""
        parsed: dict[str, str] = {}
        for position, entry in _entries(self.tenant_secrets):
            tenant, sep, secret = entry.partition("=")
            tenant, secret = tenant.strip(), secret.strip()
            if not sep or not tenant or not secret:
                raise ValueError(
                    f"WAYMARK_TENANT_SECRETS entry {position} is malformed: expected "
                    "'tenant=secret'"
                )
            if tenant in parsed:
                raise ValueError(
                    f"WAYMARK_TENANT_SECRETS entry {position} repeats tenant {tenant!r}"
                )
            parsed[tenant] = secret
        return parsed


def _entries(text: str) -> list[tuple[int, str]]:
    # Error messages cite the entry's position, never its text: entries hold secrets.
    return [
        (position, entry.strip())
        for position, entry in enumerate(text.split(","), start=1)
        if entry.strip()
    ]
