"""The schema history of the customer-activity store, as sqlite-utils migrations.

Each step is a numbered ``NNNN_name.sql`` file beside this one; the step's name
is the file's stem. The store applies pending steps when it opens a database,
and the sqlite-utils command line sees the same set::

    sqlite-utils migrate store.db migrations/migrations.py --list

This file is loaded both by ``store.schema`` and by ``sqlite-utils migrate``
(which executes it with ``__file__`` set), so it uses nothing but the standard
library and sqlite-utils.
"""

import sqlite3
from pathlib import Path

from sqlite_utils import Migrations

MIGRATION_SET = "customer_activity_features"
STEPS_DIR = Path(__file__).resolve().parent

migrations = Migrations(MIGRATION_SET)
STEPS = []  # the names of the steps, in order (store.db.known_steps)


def split_statements(script):
    """Split an SQL script into complete statements (triggers included)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            if statement.strip():
                yield statement.strip()
            statement = ""
    if statement.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in statement.splitlines()
    ):
        raise ValueError("incomplete SQL statement at the end of a migration step")


def _register(path):
    script = path.read_text(encoding="utf-8")

    def apply_step(db):
        # Statement by statement: executescript() would COMMIT the transaction
        # that sqlite-utils wraps around each step and its record.
        for statement in split_statements(script):
            db.conn.execute(statement)

    apply_step.__name__ = path.stem
    migrations(name=path.stem)(apply_step)
    STEPS.append(path.stem)


for _path in sorted(STEPS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql")):
    _register(_path)
