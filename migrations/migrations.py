"""The schema history of the customer-activity store, as sqlite-utils migrations.

The steps are the numbered ``NNNN_name.sql`` files beside this one (``steps.py``
lists them). The store applies pending steps when it opens a database, and the
sqlite-utils command line sees the same set::

    sqlite-utils migrate store.db migrations/migrations.py --list

This file is loaded both by ``store.db`` and by ``sqlite-utils migrate`` (which
executes it with ``__file__`` set, outside any package), so it uses nothing but
the standard library and sqlite-utils, and loads ``steps.py`` by its path.
"""

import importlib.util
from pathlib import Path

from sqlite_utils import Migrations


def _load_steps():
    spec = importlib.util.spec_from_file_location("_caf_migration_steps", Path(__file__).resolve().parent / "steps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


steps = _load_steps()
MIGRATION_SET = steps.MIGRATION_SET
STEPS = steps.STEPS
split_statements = steps.split_statements

migrations = Migrations(MIGRATION_SET)


def _register(path):
    script = path.read_text(encoding="utf-8")

    def apply_step(db):
        # Statement by statement: executescript() would COMMIT the transaction
        # that sqlite-utils wraps around each step and its record.
        for statement in split_statements(script):
            db.conn.execute(statement)

    apply_step.__name__ = path.stem
    migrations(name=path.stem)(apply_step)


for _path in steps.STEP_FILES:
    _register(_path)
