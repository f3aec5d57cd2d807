"""Process configuration read from the environment (one `Settings` per process, built in main)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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
    # Actions run at once per task worker, and activities claimed per poll (each batch is
    # recorded in few commits: 100/16 against 10/4 took the 3-step bench from 113 to 228
    # workflows/s in one process, docs/performance.md).
    task_worker_concurrency: int = Field(default=16, ge=1)
    task_poll_interval: float = Field(default=1.0, gt=0)
    task_lease_seconds: float = Field(default=300, gt=0)
    task_batch_size: int = Field(default=100, ge=1)
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
    # `waymark serve` processes (uvicorn workers); > 1 needs DATABASE_URL and runs the
    # in-process workers as processes of their own (api/serve_processes.py).
    api_workers: int = Field(default=1, ge=1)
    # With api_workers > 1 and the workers in process: true, each API process hosts its own
    # task and timer workers (N replicas of `waymark serve`, eager dispatch in each); false,
    # they run as one `waymark worker tasks` and one `timers` process beside the API ones.
    api_process_workers: bool = True
    # Young-generation threshold of the garbage collector, set (with gc.freeze() of the
    # start-up heap) once a serve or worker process is built; 0 keeps CPython's 700.
    gc_gen0_threshold: int = Field(default=10_000, ge=0)
    # Production: apply the migrations at startup instead of refusing an old schema.
    auto_migrate: bool = False
    # Signs pagination cursors; the same on every replica. Unset: derived (see bootstrap).
    cursor_secret: str | None = None
    log_level: str = "INFO"

    # --- actions: connections (docs/actions.md) ---
    # A JSON or YAML file `{tenant: {name: {"type": "smtp"|"slack"|"teams"|"twilio"|"http",
    # ...settings}}}`; `${VAR}` in values is read from the environment. Unset: no connections.
    connections_file: Path | None = None
    # --- cron schedule triggers (the scheduler inside `waymark worker timers`) ---
    # Ticks missed while the scheduler was down: `latest` fires the latest one once, `none`
    # skips them (a tick fires only when at most poll interval + 60 s late), `all` fires
    # every one (at most 100, the newest).
    schedule_catchup: Literal["latest", "none", "all"] = "latest"
    # How often the scheduler re-reads the scheduled definitions; between reads it wakes
    # at the next tick. A newly published schedule is seen within this time.
    schedule_poll_interval: float = Field(default=30.0, gt=0)
    # --- the HTTP event feed (GET /v1/feed, /v1/feed/stream) --------------------------------
    # Streams wake at once on new events (LISTEN waymark_events, one connection per API
    # process); false where LISTEN cannot work: they find events at their next poll.
    feed_listen: bool = True
    # A stream re-reads at least this often (seconds) without a notification.
    feed_poll_interval: float = Field(default=5.0, gt=0)
    # An idle stream sends a comment line this often (seconds), so proxies keep it open.
    feed_keepalive_interval: float = Field(default=15.0, gt=0)
    # --- cleanup and retention (waymark worker cleanup, waymark cleanup --once) ----------
    # ISO-8601 durations (SPEC §6). Ended instances: completed ones are kept 90 days; failed
    # and cancelled ones are execution history, kept 365 days (what people investigate).
    # "forever" keeps them. A definition's `retention` field overrides these per version.
    cleanup_interval: float = Field(default=7200.0, gt=0)  # seconds between runs (2 h)
    cleanup_batch_rows: int = Field(default=2000, ge=1, le=100_000)
    cleanup_vacuum: bool = True  # VACUUM (ANALYZE) the tables a run deleted from
    retention_completed: str = "P90D"
    retention_history: str = "P365D"
    retention_idempotency: str = "P90D"
    retention_outbox: str = "P7D"  # outbox dead letters
    long_running_after: str = "P1D"  # a suspended instance this old is "long_running"
    # --- task SLAs and notifications (issue 8) ---
    # Off: a task past its SLA is marked overdue (TaskEscalated with to_role null) but no
    # escalate_to_role is added; `timeout` routes still fire.
    sla_escalation: bool = True
    # The base of task links in notifications (`{{ task.link }}`); empty: relative links.
    public_url: str = ""
    # --- Outbox publisher to Kafka (issue 7; on when KAFKA_BOOTSTRAP_SERVERS is set) ---------
    kafka_topic: str = "waymark.events"
    kafka_client_id: str = "waymark-outbox"
    # Idempotent producing (exactly one copy per send, in order): real Kafka has it; turn it
    # off for brokers without it (the test broker).
    kafka_idempotent: bool = True
    kafka_request_timeout: float = Field(default=30.0, gt=0)
    kafka_max_request_bytes: int = Field(default=1_048_576, ge=1)
    # TLS/SASL, passed through to aiokafka: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    # 500, not 50: a batch costs ~8 database round trips and one broker round trip per event
    # of its busiest instance whatever its size, so at 50 the relay topped out below 1,000
    # events/s (bench outbox-lag); when caught up, batches are small anyway.
    outbox_batch_size: int = Field(default=500, ge=1)
    outbox_poll_interval: float = Field(default=10.0, gt=0)
    outbox_retry_attempts: int = Field(default=5, ge=1)
    outbox_retry_initial_delay: float = Field(default=1.0, ge=0)
    outbox_retry_multiplier: float = Field(default=2.0, ge=1)
    outbox_retry_max_delay: float = Field(default=30.0, ge=0)
    outbox_breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    outbox_breaker_min_calls: int = Field(default=10, ge=1)
    outbox_breaker_window: float = Field(default=60.0, gt=0)
    outbox_breaker_reset_timeout: float = Field(default=30.0, gt=0)
    # How often a standby replica tries to take over the publisher's leadership.
    outbox_leader_retry_interval: float = Field(default=2.0, gt=0)
    # --- Kafka command consumer (`waymark worker commands`, README "Kafka commands") -------
    # Consumes `commands_topic` in the consumer group `commands_group_id`; each outcome goes
    # to `commands_replies_topic`, messages that cannot be processed to `commands_dlq_topic`.
    commands_topic: str = Field(default="waymark.commands", min_length=1)
    commands_group_id: str = Field(default="waymark-commands", min_length=1)
    commands_replies_topic: str = Field(default="waymark.commands.replies", min_length=1)
    commands_dlq_topic: str = Field(default="waymark.commands.dlq", min_length=1)
    # At most this many messages per fetch; an empty fetch waits this long (seconds).
    commands_batch_size: int = Field(default=100, ge=1)
    commands_poll_interval: float = Field(default=1.0, gt=0)
    # A transient failure (database unavailable or timed out, concurrency conflict, broker
    # unreachable for the reply) is retried this many times, backoff from 0.5 s doubling up
    # to the max delay; then the message is left uncommitted and fetched again later.
    commands_retry_attempts: int = Field(default=5, ge=1)
    commands_retry_max_delay: float = Field(default=10.0, gt=0)
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
    # Definition patterns (issue 10). Sub-workflow nesting: the deepest level of an instance
    # tree (the root is 0); a child that would be deeper fails its parent's sub_workflow node.
    # At most 64: a cancel or a failure crosses one level per settle round of one command.
    max_sub_workflow_depth: int = Field(default=32, ge=1, le=64)

    # --- multi-instance nodes (`for_each`, domain/engine/multi.py) ---
    # Items one for_each node may hold: a longer list refuses the request that reached it
    # (422 for-each-too-large); reached by a worker (a result, a timer) it fails the node.
    for_each_max_items: int = Field(default=10_000, ge=1, le=1_000_000)
    # Items a parallel for_each starts per command; the rest in follow-up commands. Above 50,
    # a batch of `emit` items exceeds the emits one command may settle (application/session.py).
    for_each_batch_size: int = Field(default=50, ge=1, le=10_000)

    # --- Group commit (docs/performance.md) ---------------------------------------------
    # Commands arriving together on different threads share one transaction (and one
    # fsync'd COMMIT); each caller still gets its own outcome. false: one transaction each.
    group_commit: bool = True
    # At most this many commands in one shared transaction.
    group_commit_max: int = Field(default=64, ge=1)
    # Instances this process committed, kept in memory (LRU) so a command on one of them
    # reads nothing from the store; a stale copy (another process committed since) is
    # caught by the version check and re-decided (application/instance_cache.py). 0: off.
    instance_cache_size: int = Field(default=10_000, ge=0)
    # ... and at most this many events in all (an instance's memory grows with its events:
    # ~5 KiB for a small waiting one, ~1.1 MiB for a 1,000-item for_each's 3,045 events).
    instance_cache_events: int = Field(default=100_000, ge=1)
    # With the task worker in process (`waymark serve`): an activity a commit schedules is
    # inserted already leased to that worker and handed to it in memory, no claim needed
    # (application/eager.py). false: every activity is claimed from the table.
    eager_dispatch: bool = True
    # --- Timer firing at scale (issue 8, bench/timers.py) ---
    # Due timers of one batch stored together, this many per transaction (1 = one
    # transaction per timer). Each is still its own command under optimistic concurrency.
    timer_commit_group: int = Field(default=50, ge=1, le=1000)

    # --- Observability (docs/observability.md): metrics, probes, logs, traces ---
    # Each worker process serves /health/live, /health/ready, /health and /metrics on this
    # port (0: a free port, logged at start). The API serves them on its own port.
    worker_probe_port: int = Field(default=9100, ge=0, le=65535)
    worker_probe_host: str = "0.0.0.0"  # noqa: S104 - probes must be reachable by the kubelet
    # Label instance counters with the tenant (only with few tenants: one series each).
    metrics_tenant_label: bool = False
    # Seconds the database-derived gauges (active instances, timers due, outbox) are cached.
    metrics_cache_seconds: float = Field(default=10.0, ge=0)
    # /health/ready answers 503 when the outbox lag exceeds this (0: the lag never does).
    ready_max_outbox_lag: float = Field(default=0.0, ge=0)
    # A worker loop that has not come round for this long fails /health/live.
    liveness_stall_seconds: float = Field(default=600.0, gt=0)
    # After SIGTERM, `waymark serve` stops accepting connections and gives the requests in
    # flight this long to finish before it closes them (workers: WORKER_SHUTDOWN_GRACE).
    api_shutdown_grace: float = Field(default=20.0, gt=0)
    # `text` (development) or `json` (one object per line: trace id, instance id, tenant).
    log_format: Literal["text", "json"] = "text"
    # Per-logger levels: "waymark.workers=DEBUG,uvicorn.access=WARNING".
    log_levels: str = ""
    # Tracing is off unless an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
    # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER names an exporter;
    # sampling by OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (the SDK's variables).
    # --- People: OIDC/JWT bearer tokens (api/tokens.py, docs/security.md) ---
    # Set `oidc_issuer` to accept tokens besides API keys: verified with the keys at
    # `oidc_jwks_url` (RS256/ES256), `iss` = issuer, `aud` containing `oidc_audience`,
    # `exp` within `oidc_leeway_seconds` of clock skew; the key set is cached
    # `oidc_jwks_cache_seconds` (an unknown `kid` refetches it once). Claim names map the
    # token to the user id, the tenant and the roles (a dotted name reaches into objects).
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_user_claim: str = "sub"
    oidc_tenant_claim: str = "tenant"
    oidc_roles_claim: str = "roles"
    oidc_leeway_seconds: float = Field(default=60.0, ge=0, le=600)
    oidc_jwks_cache_seconds: int = Field(default=300, ge=1)
    # --- Security: database role, rate limits, timeouts, CORS, headers (docs/security.md) ---
    # The role the application switches to on connect, one the row-level security policies
    # apply to (migration 0017 creates `waymark_app`); "" keeps the URL's user (no RLS).
    database_app_role: str = "waymark_app"
    # Requests per API key and per client IP, as `limits` strings ("600/minute", "10/second";
    # "" = no limit). Over the limit: 429 problem+json with Retry-After.
    rate_limit_per_key: str = "1200/minute"
    rate_limit_per_ip: str = "600/minute"
    # Where the counters live: "memory" (each process its own budget) or "postgres" (one
    # budget shared by every replica on the database; one statement per request).
    rate_limit_storage: Literal["memory", "postgres"] = "memory"
    # Trust X-Forwarded-For's first address as the client IP (only behind a proxy you run).
    trust_forwarded_for: bool = False
    # A request taking longer is answered 503 request-timeout (seconds, 0 = none); streamed
    # responses (the event feed) are exempt once they started.
    request_timeout: float = Field(default=60.0, ge=0)
    # Comma-separated allowed origins for CORS ("" = CORS off, "*" = any origin).
    cors_origins: str = ""
    # Strict-Transport-Security max-age in seconds (0 = no header; set it when served over
    # TLS, directly or behind an ingress).
    hsts_max_age: int = Field(default=0, ge=0)
    # --- operator recovery (issue 14: migrations, docs/operations-recovery.md) ---
    # Instances a version-migration job (or a bulk cancel/retry job) handles between two
    # progress updates of its job row.
    migration_batch_size: int = Field(default=50, ge=1, le=10_000)
    # A running job's lease (seconds): renewed while its process works on it; once it ends
    # (the process died), another API process resumes the job from its stored position.
    job_lease_seconds: float = Field(default=30.0, gt=0, le=3600)
    # --- Signed task links (issue 9: approve/reject from a notification, no API key) -------
    # How long a `{{ task.approve_url }}`/`{{ task.reject_url }}` link stays valid (seconds
    # from the notification; 72 h). Used links are refused (409), expired ones 410.
    task_link_ttl_seconds: float = Field(default=72 * 3600, gt=0)

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
            if tenant == "*":
                # The row-level security policies' "every tenant" (docs/security.md).
                raise ValueError(f"WAYMARK_API_KEYS entry {position}: '*' is not a tenant")
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
