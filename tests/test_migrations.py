"""Schema history: opening applies pending steps, re-opening applies nothing,
sqlite-utils sees the same state, and a newer schema is refused untouched."""

import hashlib
import sqlite3

import pytest
import sqlite_utils
from click.testing import CliRunner
from sqlite_utils.cli import cli as sqlite_utils_cli

from customer_activity_features import CustomerActivityFeatures, SchemaTooNewError
from store import db as storedb
from store.resources import resource_dir

MIGRATIONS_PY = str(resource_dir("migrations") / "migrations.py")


def schema(path):
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
    finally:
        conn.close()


def test_opening_applies_every_step_and_reopening_applies_none(tmp_path):
    path = tmp_path / "store.db"
    with CustomerActivityFeatures(path) as store:
        assert storedb.applied_steps(store.conn) == storedb.known_steps()
    conn = sqlite3.connect(path)
    assert storedb.migrate(storedb.configure(conn)) == []
    assert storedb.pending_steps(conn) == []
    conn.close()


def test_steps_are_numbered_sql_files():
    steps = storedb.known_steps()
    assert steps[0] == "0001_initial"
    assert steps == sorted(steps)
    for name in steps:
        text = (resource_dir("migrations") / f"{name}.sql").read_text()
        assert "CREATE" in text.upper() or "ALTER TABLE" in text.upper()


def test_sqlite_utils_migrate_sees_the_same_state(tmp_path):
    path = str(tmp_path / "store.db")
    CustomerActivityFeatures(path).close()
    result = CliRunner().invoke(sqlite_utils_cli, ["migrate", path, MIGRATIONS_PY, "--list"])
    assert result.exit_code == 0, result.output
    applied, pending = result.output.split("Pending:")
    for step in storedb.known_steps():
        assert step in applied
    assert "(none)" in pending


def test_sqlite_utils_migrate_builds_the_same_schema(tmp_path):
    by_cli = str(tmp_path / "cli.db")
    result = CliRunner().invoke(sqlite_utils_cli, ["migrate", by_cli, MIGRATIONS_PY])
    assert result.exit_code == 0, result.output
    by_store = str(tmp_path / "store.db")
    CustomerActivityFeatures(by_store).close()
    assert schema(by_cli) == schema(by_store)
    # ... and the store opens the CLI-made database without applying anything.
    with CustomerActivityFeatures(by_cli) as store:
        assert storedb.pending_steps(store.conn) == []


def test_a_partly_migrated_database_gets_the_remaining_steps_and_the_same_schema(tmp_path):
    # A new database is given the schema image (store.db.schema_image) at once; one with some
    # steps applied gets the others one by one: both end with the schema of every step.
    partial = str(tmp_path / "partial.db")
    result = CliRunner().invoke(sqlite_utils_cli, ["migrate", partial, MIGRATIONS_PY,
                                                   "--stop-before", storedb.known_steps()[3]])
    assert result.exit_code == 0, result.output
    conn = storedb.configure(sqlite3.connect(partial))
    assert storedb.migrate(conn) == storedb.known_steps()[3:]
    conn.close()
    fresh = str(tmp_path / "fresh.db")
    with CustomerActivityFeatures(fresh) as store:
        assert storedb.applied_steps(store.conn) == storedb.known_steps()
        applied_at = {r[0] for r in store.conn.execute("SELECT applied_at FROM _sqlite_migrations")}
    assert schema(partial) == schema(fresh)
    assert len(applied_at) == 1 and applied_at.pop() > storedb.schema_image().rows[0][2][0][-1]


def test_an_in_memory_store_has_the_schema_of_a_new_file(tmp_path):
    # CustomerActivityFeatures() copies a per-process template (store.db.new_memory_database);
    # a new file gets the schema image under the write lock: the same objects and steps
    path = str(tmp_path / "store.db")
    CustomerActivityFeatures(path).close()
    with CustomerActivityFeatures() as memory:
        objects = sorted(tuple(r) for r in memory.conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"))
        assert storedb.applied_steps(memory.conn) == storedb.known_steps()
        applied_at = {r[0] for r in memory.conn.execute("SELECT applied_at FROM _sqlite_migrations")}
        assert len(applied_at) == 1 and applied_at.pop() >= storedb.schema_image().rows[0][2][0][-1]
    file_conn = sqlite3.connect(path)
    try:
        assert objects == sorted(tuple(r) for r in file_conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"))
    finally:
        file_conn.close()


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "store.db"
    with CustomerActivityFeatures(path) as store:
        store.add_purchase("c1", 10.0, "2024-01-01T00:00:00Z")
    db = sqlite_utils.Database(path)
    db["_sqlite_migrations"].insert({"migration_set": storedb.MIGRATION_SET,
                                     "name": "9999_from_the_future", "applied_at": "2030-01-01"})
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(SchemaTooNewError, match="9999_from_the_future"):
        CustomerActivityFeatures(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_each_event_table_is_indexed_for_the_access_path(tmp_path):
    with CustomerActivityFeatures(tmp_path / "s.db") as store:
        for table in ("purchases", "sessions", "cart_events", "support_interactions"):
            info = store.conn.execute(
                "SELECT name FROM pragma_index_list(?) WHERE origin = 'pk'", [table]).fetchall()
            assert info, table
            columns = [r[2] for r in store.conn.execute("SELECT * FROM pragma_index_info(?)", [info[0][0]])]
            assert columns[:3] == ["shop_id", "customer_id", "event_time_us"]
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
