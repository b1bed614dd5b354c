"""The steps of the store's schema history, with nothing but the standard library.

Each step is a numbered ``NNNN_name.sql`` file beside this one; the step's name
is the file's stem. ``store.db`` reads these facts on every open (is the
database up to date?) without importing sqlite-utils, which is slow to import
when pandas is installed; ``migrations.py`` registers the same steps with
sqlite-utils to apply them.
"""

import sqlite3
from pathlib import Path

MIGRATION_SET = "customer_activity_features"  # the migration set's name in _sqlite_migrations
STEPS_DIR = Path(__file__).resolve().parent
STEP_FILES = sorted(STEPS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))
STEPS = [path.stem for path in STEP_FILES]  # the names of the steps, in order


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
