"""Alembic environment: URL from the settings, and a PostgreSQL advisory lock (K8S-2).

Every replica's init container runs `alembic upgrade head` at the same moment. The lock makes
them take turns: the first applies the migrations, the others find the schema at head and do
nothing (the pattern pypi/warehouse uses). The db-roles init container (app/db/roles.py) takes the
same lock, so its grants never meet a migration's ALTER TABLE (app/db/locks.py).
"""

from alembic import context
from sqlalchemy import create_engine, pool, text

import app.models  # noqa: F401  registers every table on Base.metadata
from app.core.config import MigrationSettings
from app.core.logging import configure_logging
from app.db.base import Base
from app.db.locks import SCHEMA_LOCK_ID

config = context.config
# The service's JSON lines, not alembic.ini's text format: the init container's output sits in
# the same log stream as the application's (OPS-1).
settings = MigrationSettings()
configure_logging(settings.log_level)
target_metadata = Base.metadata


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or settings.database_url
    if not url:
        # Fail closed: a migration never guesses which database it changes.
        raise SystemExit("DATABASE_URL is not set: the migration does not know which database to change")
    return url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        locked = connection.dialect.name == "postgresql"
        if locked:
            # Session-level lock: held across the migration transactions, released below
            # or, if the process dies, when its connection closes.
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": SCHEMA_LOCK_ID})
            connection.commit()
        try:
            context.configure(connection=connection, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if locked:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": SCHEMA_LOCK_ID})
                connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
