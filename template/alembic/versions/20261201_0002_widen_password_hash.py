"""widen users.password_hash for Argon2id hashes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 00:00:00

An Argon2id hash in its PHC string is about 100 characters; bcrypt's were 60 (SEC-2). On
PostgreSQL, widening a varchar rewrites nothing: it is a change of the catalog only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite (local runs, tests) cannot alter a column in place; PostgreSQL does.
    with op.batch_alter_table("users") as batch:
        batch.alter_column(
            "password_hash", existing_type=sa.String(length=60), type_=sa.String(length=255), existing_nullable=False
        )


def downgrade() -> None:
    # PostgreSQL refuses this while any Argon2id hash is stored: a downgrade never cuts a hash short.
    with op.batch_alter_table("users") as batch:
        batch.alter_column(
            "password_hash", existing_type=sa.String(length=255), type_=sa.String(length=60), existing_nullable=False
        )
