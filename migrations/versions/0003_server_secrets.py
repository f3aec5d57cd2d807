"""Server secrets: random values generated once per database, so replicas agree on them
without any configuration. The first: the key that derives instance ids from idempotency
keys (HMAC-SHA256), so nobody can compute another tenant's instance id from its key.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

KEYED_INSTANCE_IDS = "keyed-instance-ids"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE server_secrets (
            name text NOT NULL,
            value text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT server_secrets_pkey PRIMARY KEY (name)
        )
        """
    )
    # Generated here, in Python's CSPRNG (256 bits), not by a PostgreSQL extension.
    op.execute(
        sa.text("INSERT INTO server_secrets (name, value) VALUES (:name, :value)").bindparams(
            name=KEYED_INSTANCE_IDS, value=secrets.token_hex(32)
        )
    )


def downgrade() -> None:
    op.execute("DROP TABLE server_secrets")
