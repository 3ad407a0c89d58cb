"""The service's two PostgreSQL roles, created and kept in step with their secrets (RUN-2).

`python -m app.db.roles` runs in the db-roles init container (deploy/k8s/base/deployment.yaml),
before the migration, with the master credentials RDS manages. It is idempotent and safe to run
from every replica at once:

- `<db>_migrator` owns the schema's objects: Alembic runs as it (K8S-2);
- `<db>_app` may read and write the rows of those tables and use their sequences, nothing else:
  no DDL, no role management, not the master user;
- each role's password is set to the one in its Secrets Manager secret, so rotating a secret
  (database_role_secret_version in Terraform) takes effect at the next pod start. The app role's
  new password is set only after PASSWORD_GRACE_S: by then every running pod's mounted URL file
  holds it, and until then those pods connect with the password PostgreSQL still has
  (app/db/session.py). Set at once, it would lock them out until the kubelet rewrote their files;
- the database: the migrator may CREATE in it (schemas, trusted extensions such as pgcrypto), and
  no role may create temporary tables (TEMPORARY is revoked from PUBLIC), so the app role has DML
  and nothing else;
- default privileges grant the app role what the migrator creates later, table by table;
- objects a service made before 0.2.0 under the master user are handed to the migrator.
"""

import logging
import time

import psycopg
from psycopg import sql
from pydantic import ValidationError
from sqlalchemy import URL, make_url

from app.core.config import MigrationSettings, refuse_to_start
from app.core.logging import configure_logging
from app.db.locks import SCHEMA_LOCK_ID

logger = logging.getLogger(__name__)

# How long a new app-role password waits before PostgreSQL gets it: the kubelet rewrites a mounted
# Secret within its sync period (1 minute by default) of the Secret's change, and this container
# read the changed Secret, so 90 s leaves every running pod's file rewritten (CONTRACTS.md).
PASSWORD_GRACE_S = 90.0
APP_TABLE_PRIVILEGES = sql.SQL("SELECT, INSERT, UPDATE, DELETE")
APP_SEQUENCE_PRIVILEGES = sql.SQL("USAGE, SELECT")
# What the master user may own in the schema and hands over: tables, views, sequences that no
# column owns (the others follow their table), enum and domain types.
LEGACY_OBJECTS = """
SELECT c.relkind::text, c.relname FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = CURRENT_USER)
  AND (c.relkind IN ('r', 'p', 'v', 'm')
       OR (c.relkind = 'S' AND NOT EXISTS (
           SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))))
UNION ALL
SELECT 'type', t.typname FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')
  AND t.typowner = (SELECT oid FROM pg_roles WHERE rolname = CURRENT_USER)
"""
ALTER_OWNER = {
    "r": "ALTER TABLE {} OWNER TO {}",
    "p": "ALTER TABLE {} OWNER TO {}",
    "v": "ALTER VIEW {} OWNER TO {}",
    "m": "ALTER MATERIALIZED VIEW {} OWNER TO {}",
    "S": "ALTER SEQUENCE {} OWNER TO {}",
    "type": "ALTER TYPE {} OWNER TO {}",
}


class RoleSettings(MigrationSettings):
    """DATABASE_URL is the master user's; the two roles come as the URLs their pods use."""

    database_migrator_url: str
    database_app_url: str
    database_role_password_grace_s: float = PASSWORD_GRACE_S


def libpq_url(url: URL) -> str:
    """A SQLAlchemy URL as psycopg takes it (the TLS options stay in its query)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def password_is_current(master: URL, role: URL) -> bool:
    """Whether PostgreSQL accepts the password the role's secret holds now (over the master URL's TLS)."""
    try:
        psycopg.connect(libpq_url(master.set(username=role.username, password=role.password))).close()
    except psycopg.OperationalError:
        return False
    return True


def ensure_roles(master_url: str, migrator_url: str, app_url: str, password_grace_s: float = PASSWORD_GRACE_S) -> None:
    master, migrator, app = make_url(master_url), make_url(migrator_url), make_url(app_url)
    if not (migrator.username and migrator.password and app.username and app.password):
        raise SystemExit("the migrator and app URLs must each carry a user name and a password")
    if len({master.username, migrator.username, app.username}) != 3:
        raise SystemExit("the master, migrator and app roles must be three different roles")
    owner, user = sql.Identifier(migrator.username), sql.Identifier(app.username)
    database = sql.Identifier(master.database or "")

    with psycopg.connect(libpq_url(master), autocommit=True) as connection:
        app_exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (app.username,)).fetchone()
        if app_exists and not password_is_current(master, app):
            # A rotation: the running pods' files get the new password within the kubelet's sync
            # period; they keep connecting with the old one until PostgreSQL has the new (RUN-2).
            logger.info(
                "app role password rotated; setting it after the grace period",
                extra={"app": app.username, "grace_s": password_grace_s},
            )
            time.sleep(password_grace_s)
        # The lock alembic/env.py takes too: a GRANT ON ALL TABLES never meets an ALTER TABLE.
        connection.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_ID,))
        with connection.transaction():
            for name, password in ((migrator.username, migrator.password), (app.username, app.password)):
                exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
                verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
                # Never able to create roles or databases, whatever was there. (The master user of RDS
                # is no superuser: it cannot make one, nor name the attribute, even to refuse it.)
                connection.execute(
                    sql.SQL("{} {} WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                        verb, sql.Identifier(name), sql.Literal(password)
                    )
                )
            # The master user acts for the migrator: hands it objects, sets its default privileges.
            connection.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(owner))
            connection.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(database, owner, user))
            # The migrator owns the schema's objects and may create extensions the way PostgreSQL
            # trusts a database's CREATE holder to (pgcrypto, uuid-ossp, ...). Untrusted ones need
            # rds_superuser: the master user, here, if ever.
            connection.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(database, owner))
            # PUBLIC may create temporary tables by default: the app role would be more than DML.
            # The database's owner (the master user, who created it) grants it to nobody.
            connection.execute(
                sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC, {}, {}").format(database, owner, user)
            )
            # Only the migrator creates; before PostgreSQL 15 every role could create in public.
            connection.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            connection.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(owner))
            connection.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(user))
            handed = connection.execute(LEGACY_OBJECTS).fetchall()
            for kind, name in handed:
                connection.execute(sql.SQL(ALTER_OWNER[kind]).format(sql.Identifier("public", name), owner))
            connection.execute(
                sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT {} ON TABLES TO {}").format(
                    owner, APP_TABLE_PRIVILEGES, user
                )
            )
            connection.execute(
                sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT {} ON SEQUENCES TO {}").format(
                    owner, APP_SEQUENCE_PRIVILEGES, user
                )
            )
            # Tables that exist already: default privileges only cover what is created later.
            connection.execute(
                sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA public TO {}").format(APP_TABLE_PRIVILEGES, user)
            )
            connection.execute(
                sql.SQL("GRANT {} ON ALL SEQUENCES IN SCHEMA public TO {}").format(APP_SEQUENCE_PRIVILEGES, user)
            )
        connection.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_ID,))
    logger.info(
        "database roles ready",
        extra={"migrator": migrator.username, "app": app.username, "objects_handed_to_migrator": len(handed)},
    )


def main() -> None:
    try:
        settings = RoleSettings()  # read from the environment
    except ValidationError as error:
        refuse_to_start(error)
    configure_logging(settings.log_level)
    if not settings.database_url:
        raise SystemExit("DATABASE_URL is not set: the master user's URL creates the roles")
    ensure_roles(
        settings.database_url,
        settings.database_migrator_url,
        settings.database_app_url,
        settings.database_role_password_grace_s,
    )


if __name__ == "__main__":
    main()
