"""The application role (`waymark_app`, or `WAYMARK_DATABASE_APP_ROLE`): created if the
migrating user may, and granted what the application needs; both as SQL blocks that never
fail for want of a privilege (they raise a WARNING naming the manual step instead).

Migration 0017 runs them first; `waymark migrate` runs the grants again after every upgrade
(idempotent), so once a database administrator has created the role by hand, the next
`waymark migrate` finishes the setup. docs/security.md, "Without CREATEROLE".
"""

from __future__ import annotations

import os

DEFAULT_ROLE = "waymark_app"

MANUAL_STEP = (
    "as a user with CREATEROLE: CREATE ROLE {role} NOLOGIN; GRANT {role} TO {owner}; "
    "then run `waymark migrate` again"
)


def role_name(configured: str | None = None) -> str:
    """The role to create and grant: the given one, else WAYMARK_DATABASE_APP_ROLE, else
    `waymark_app`. Empty means none (the application then runs as the owner, without RLS)."""
    name = configured if configured is not None else os.environ.get("WAYMARK_DATABASE_APP_ROLE")
    name = DEFAULT_ROLE if name is None else name.strip()
    if name and not name.replace("_", "").isalnum():
        raise ValueError(f"not a role name: {name!r}")
    return name


def create_role_sql(role: str) -> str:
    """Create the role unless it exists; without the privilege to, warn and go on."""
    step = MANUAL_STEP.format(role=role, owner="%I")
    # `role` is checked to be an identifier by role_name().
    return f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                RETURN;
            END IF;
            IF NOT (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user)
            THEN
                RAISE WARNING 'waymark: role {role} does not exist and % may not create it (no '
                    'CREATEROLE): the application role is not set up; %', current_user,
                    format('{step}', current_user);
                RETURN;
            END IF;
            CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS;
        -- Roles are cluster-wide: another database's migration may create it concurrently.
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END
        $$
        """  # noqa: S608


def grant_sql(role: str) -> str:
    """Grant the role the tables (idempotent); skipped, with a WARNING, while it is missing."""
    step = MANUAL_STEP.format(role=role, owner="%I")
    grants = [
        # The owner switches to the role on connect (`-c role=...`): it must be a member.
        f"GRANT USAGE ON SCHEMA public TO {role}",
        # No TRUNCATE (it ignores row-level security), no DDL.
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}",
        # Tables later migrations create (as this owner) are the application's too.
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}",
    ]
    # The audit trail is append-only for the application (the table exists from 0017 on).
    audit = [
        f"REVOKE UPDATE, DELETE ON audit_log FROM {role}",
        f"GRANT UPDATE (exported_at) ON audit_log TO {role}",
    ]
    body = "\n".join(f"            EXECUTE '{g}';" for g in grants)
    audit_body = "\n".join(f"                EXECUTE '{g}';" for g in audit)
    return f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                RAISE WARNING 'waymark: role {role} does not exist: no grants; %',
                    format('{step}', current_user);
                RETURN;
            END IF;
            IF NOT pg_has_role(current_user, '{role}', 'MEMBER') THEN
                BEGIN
                    EXECUTE format('GRANT {role} TO %I', current_user);
                EXCEPTION WHEN insufficient_privilege THEN
                    RAISE WARNING 'waymark: % is not a member of {role} and may not make '
                        'itself one; %', current_user, format('{step}', current_user);
                END;
            END IF;
{body}
            IF to_regclass('public.audit_log') IS NOT NULL THEN
{audit_body}
            END IF;
        END
        $$
        """


def role_exists_sql(role: str) -> str:
    return f"SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}')"  # noqa: S608
