"""The one PostgreSQL advisory lock under which the schema and its privileges change (K8S-2, RUN-2).

The db-roles init container (app/db/roles.py) grants on every table while the migrate init
container of another replica (alembic/env.py) may alter one: under two different locks, PostgreSQL
can refuse the GRANT with "tuple concurrently updated". Both take this lock, so they take turns.
"""

# The value alembic/env.py has taken since 0.1.0 ("alembic" in ASCII): a 0.1.x pod's migration,
# still running during an upgrade's rollout, takes turns with the new db-roles too.
SCHEMA_LOCK_ID = 0x616C656D626963
