"""Schemas: upgrade from the first migration step, refusal of a newer schema, read-only files.

* a database made by migration 0001 only, holding rows, is upgraded to the
  latest step on open with every row intact (and features still computed);
* a database claiming a step this code does not know is refused with
  ``SchemaTooNewError`` and left byte-for-byte untouched (no -wal/-shm left);
* a database opened read-only (``read_only=True``, or a file the process may
  not write) serves reads and refuses every write with ``ReadOnlyStoreError``;
  the case of a real user (a 0444 file in a 0555 directory) runs as uid 65534,
  also when the suite runs as root (``tests/unprivileged.py``).
"""

import hashlib
import os
import shutil
import sqlite3

import pytest
import sqlite_utils

import unprivileged

from customer_activity_features import CustomerActivityFeatures, ReadOnlyStoreError, SchemaTooNewError
from store import db as store_db

AS_OF = "2025-01-01T00:00:00Z"
FIRST = store_db.known_steps()[0]
ROWS_0001 = {
    "customers": [("", "c1", '{"tier": "gold", "note": "\'; DROP"}', "2024-01-01T00:00:00Z"),
                  ("shop2", "c1", "{}", "2024-01-01T00:00:00Z")],
    "purchases": [("", "c1", 1_700_000_000_000_000, "o1", 10.5), ("", "c1", 1_700_000_100_000_000, "o2", 4.5),
                  ("", "c2", 1_700_000_000_000_000, "o3", 1.0), ("shop2", "c1", 1_700_000_000_000_000, "o1", 99.0)],
    "sessions": [("", "c1", 1_700_000_000_000_000, "s1", 60.0, "mobile"),
                 ("", "c1", 1_700_000_000_000_001, "s2", 30.0, "desktop")],
    "cart_events": [("", "c1", 1_700_000_000_000_000, "k1", "abandoned", None),
                    ("", "c1", 1_700_000_000_000_000, "k2", "converted", 12.0)],
    "support_interactions": [("", "c1", 1_700_000_000_000_000, "t1", 3.0, 1),
                             ("", "c2", 1_700_000_000_000_000, "t2", None, 0)],
    "rejected_events": [(1, "", "purchase", '{"order_value": -1}', "order_value: is negative",
                         "2024-01-01T00:00:00Z")],
}


def make_first_step_db(path):
    conn = sqlite3.connect(path)
    conn.isolation_level = None
    store_db.migrations().apply(sqlite_utils.Database(conn), stop_before=store_db.known_steps()[1:])
    assert store_db.applied_steps(conn) == [FIRST]
    for table, rows in ROWS_0001.items():
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # noqa: S608 fixed names
    conn.close()


def snapshot(path):
    """The 0001 columns of every 0001 table, as stored."""
    conn = sqlite3.connect(path)
    try:
        out = {}
        for table, rows in ROWS_0001.items():
            width = len(rows[0])
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")][:width]  # noqa: S608
            out[table] = sorted(conn.execute(f"SELECT {', '.join(columns)} FROM {table}"), key=repr)  # noqa: S608
        return out
    finally:
        conn.close()


def test_first_step_database_upgrades_with_every_row_intact(tmp_path):
    path = tmp_path / "old.db"
    make_first_step_db(path)
    before = snapshot(path)
    assert before == {t: sorted(rows, key=repr) for t, rows in ROWS_0001.items()}
    with CustomerActivityFeatures(path) as store:
        assert store_db.applied_steps(store.conn) == store_db.known_steps()
        assert store_db.pending_steps(store.conn) == []
        assert store.get_total_purchase_value("c1", as_of=AS_OF) == 15.0
        assert store.get_device_usage_pattern("c1", as_of=AS_OF) == {"mobile": 1, "desktop": 1}
        assert store.get_escalation_count("c1", as_of=AS_OF) == 1
        assert store.get_all_features("c1", as_of=AS_OF)["metadata"] == {"tier": "gold", "note": "'; DROP"}
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # new writes work on the upgraded file
        assert store.add_purchase("c3", 2.0, AS_OF, order_id="o9")
    after = snapshot(path)
    after["purchases"] = [r for r in after["purchases"] if r[3] != "o9"]
    assert after == before
    with CustomerActivityFeatures(path, shop_id="shop2") as other:
        assert other.get_total_purchase_value("c1", as_of=AS_OF) == 99.0


def file_state(directory):
    """{file name: sha256} of every file in the directory (the db and any -wal/-shm/-journal)."""
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in sorted(os.listdir(directory))}


def make_newer_db(path):
    with CustomerActivityFeatures(path) as store:
        store.add_purchase("c1", 1.0, AS_OF, order_id="o1")
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES (?, ?, ?)",
                 [store_db.MIGRATION_SET, "9999_from_the_future", "2099-01-01"])
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


@pytest.mark.parametrize("read_only", [False, True])
def test_newer_schema_is_refused_and_untouched(tmp_path, read_only):
    directory = tmp_path / "newer"
    directory.mkdir()
    path = directory / "new.db"
    make_newer_db(path)
    before = file_state(directory)
    mtime = path.stat().st_mtime_ns
    for _ in range(2):
        with pytest.raises(SchemaTooNewError) as info:
            CustomerActivityFeatures(path, read_only=read_only)
        assert "9999_from_the_future" in str(info.value) and "not modified" in str(info.value)
    assert file_state(directory) == before
    assert path.stat().st_mtime_ns == mtime


def test_newer_schema_refused_through_a_connection(tmp_path):
    path = tmp_path / "new.db"
    make_newer_db(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    conn = sqlite3.connect(path)
    with pytest.raises(SchemaTooNewError):
        CustomerActivityFeatures(conn)
    conn.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def make_store_file(path):
    with CustomerActivityFeatures(path) as store:
        store.add_purchase("c1", 10.0, "2024-12-01T00:00:00Z", order_id="o1")
        store.add_session("c1", 60.0, "mobile", "2024-12-01T00:00:00Z", session_id="s1")
        store.set_customer_metadata("c1", {"tier": "gold"})
        store.materialize(as_of=AS_OF)


def writes(store, tmp_path):
    source = tmp_path / "more.csv"
    source.write_text("customer_id,order_value,purchase_date\nc9,1.0,2024-01-01\n")
    return {
        "add_purchase": lambda: store.add_purchase("c2", 1.0, AS_OF),
        "add_purchase (invalid, would record a rejection)": lambda: store.add_purchase("c2", -1.0, AS_OF),
        "add_session": lambda: store.add_session("c2", 1.0, "mobile", AS_OF),
        "add_purchases": lambda: store.add_purchases([{"customer_id": "c2", "order_value": 1.0}]),
        "set_customer_metadata": lambda: store.set_customer_metadata("c1", {}),
        "set_customers_metadata": lambda: store.set_customers_metadata([{"customer_id": "c1", "metadata": {}}]),
        "materialize": lambda: store.materialize(as_of=AS_OF),
        "refresh": lambda: store.refresh(as_of="2025-01-02T00:00:00Z"),
        "load": lambda: store.load("purchases", source),
    }


def check_read_only_store(store, tmp_path):
    assert store.get_total_purchase_value("c1", as_of=AS_OF) == 10.0
    assert store.get_all_features("c1", as_of=AS_OF)["metadata"] == {"tier": "gold"}
    assert store.get_cohort_features(["c1", "c2"], as_of=AS_OF)["c1"]["total_purchase_value"] == 10.0
    assert store.get_cohort_summary(["c1"], as_of=AS_OF)["size"] == 1
    assert list(store.iter_features(as_of=AS_OF))[0][0] == "c1"
    out = tmp_path / "export.csv"
    store.export(out, as_of=AS_OF)
    assert "c1" in out.read_text()
    for name, write in writes(store, tmp_path).items():
        with pytest.raises(ReadOnlyStoreError):
            write()
            store.flush()
        store.flush()  # nothing pending: the store stays usable
    assert store.get_total_purchase_value("c1", as_of=AS_OF) == 10.0


def test_read_only_open_serves_reads_and_refuses_writes(tmp_path):
    path = tmp_path / "ro.db"
    make_store_file(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with CustomerActivityFeatures(path, read_only=True) as store:
        check_read_only_store(store, tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    with CustomerActivityFeatures(path) as store:  # and nothing was written
        assert store.conn.execute("SELECT count(*) FROM purchases").fetchone()[0] == 1
        assert store.conn.execute("SELECT count(*) FROM rejected_events").fetchone()[0] == 0


def test_read_only_open_of_an_old_schema_is_refused_clearly(tmp_path):
    path = tmp_path / "old.db"
    make_first_step_db(path)
    with pytest.raises(ReadOnlyStoreError) as info:
        CustomerActivityFeatures(path, read_only=True)
    assert "upgrad" in str(info.value)
    assert store_db.applied_steps(sqlite3.connect(path)) == [FIRST]


def test_read_only_open_of_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ReadOnlyStoreError):
        CustomerActivityFeatures(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()


# -- read-only files for an unprivileged user (CI runs as root: see tests/unprivileged.py) --------
def serve_reads_unprivileged(path, out):
    """In the unprivileged child: every read of the API and the CLI read commands on ``path``
    (a 0444 file in a 0555 directory), every write refused. Returns what it saw."""
    from click.testing import CliRunner

    from store.cli import cli

    assert not os.access(path, os.W_OK) and not os.access(path.parent, os.W_OK), "the test runs privileged"
    seen = {}
    with CustomerActivityFeatures(path, read_only=True) as store:
        seen["read_only"], seen["immutable"] = store.read_only, store.immutable
        check_read_only_store(store, out)
        seen["cohort"] = store.get_cohort_features(["c1"], as_of=AS_OF)["c1"]["total_purchase_value"]
        seen["iter_features"] = [cid for cid, _ in store.iter_features(["c1", "c2"], as_of=AS_OF)]
        seen["materialized"] = store.conn.execute(
            "SELECT customer_id FROM customer_features WHERE shop_id = ''").fetchall()
        seen["api catalog"] = len(store.catalog())
        seen["rfm"] = [tuple(row) for row in store.rfm_summary()]
    with CustomerActivityFeatures(path) as store:  # no flag: detected
        seen["detected"] = store.read_only
        assert store.get_total_purchase_value("c1", as_of=AS_OF) == 10.0
        with pytest.raises(ReadOnlyStoreError):
            store.add_purchase("c2", 1.0, AS_OF)
    source = out / "orders.csv"
    source.write_text("customer_id,order_value,purchase_date\nc9,1.0,2024-01-01\n")
    runner = CliRunner()
    commands = {
        "stats": ["stats"], "stats --json": ["stats", "--json"],
        "features": ["features", "c1", "--as-of", AS_OF], "features --json": ["features", "c1", "--json"],
        "catalog": ["catalog"], "catalog NAME": ["catalog", "average_order_value"],
        "export": ["export", str(out / "features.csv")], "export rfm": ["export", "rfm", str(out / "rfm.csv")],
        "rejected": ["rejected"], "migrate --list": ["migrate", "--list"],
        "load": ["load", "purchases", str(source)], "materialize": ["materialize", "--as-of", AS_OF],
        "refresh": ["refresh"], "init": ["init"], "migrate": ["migrate"],
    }
    for name, args in commands.items():
        result = runner.invoke(cli, ["--db", str(path), *args], catch_exceptions=True)
        seen[name] = (result.exit_code, result.stdout[-300:], result.stderr.strip())
    return seen


def test_read_only_directory_serves_an_unprivileged_user(tmp_path):
    """A store file 0444 in a 0555 directory, read by uid 65534: read_only=True (and no flag, and
    every CLI read command) serves every read, every write is ReadOnlyStoreError, the directory is
    unchanged (no -wal/-shm: a WAL database there is read through immutable=1)."""
    base = unprivileged.world_dir()
    try:
        directory = base / "ro"
        directory.mkdir()
        path = directory / "ro.db"
        make_store_file(path)
        path.chmod(0o444)
        directory.chmod(0o555)
        before, mtime = file_state(directory), path.stat().st_mtime_ns
        assert list(before) == ["ro.db"]
        seen = unprivileged.as_nobody(serve_reads_unprivileged, path, unprivileged.writable_dir(base))
        assert file_state(directory) == before and path.stat().st_mtime_ns == mtime
    finally:
        unprivileged.remove(base)
    assert seen["read_only"] and seen["immutable"] and seen["detected"]
    assert seen["cohort"] == 10.0 and seen["iter_features"] == ["c1", "c2"]
    assert seen["materialized"] == [("c1",)] and seen["api catalog"] > 50
    assert [row[0] for row in seen["rfm"]] == ["c1"]
    for name in ("stats", "stats --json", "features", "features --json", "catalog", "catalog NAME", "export",
                 "export rfm", "rejected", "migrate --list"):
        code, stdout, stderr = seen[name]
        assert code == 0 and not stderr, (name, seen[name])
    assert "Wrote 1 rows" in seen["export"][1] and "purchase_features" in seen["catalog NAME"][1]
    for name in ("load", "materialize", "refresh"):
        code, _, stderr = seen[name]
        assert code == 1 and stderr.count("\n") == 0 and "read-only" in stderr, (name, seen[name])
    for name in ("init", "migrate"):  # nothing to upgrade: nothing written
        assert seen[name][0] == 0 and "up to date" in seen[name][1], (name, seen[name])


def make_wal_with_content(directory, *, keep_shm, wal_mode=0o444):
    """A store whose last transaction is only in its -wal file (as a killed writer, or one still
    running, leaves it), copied while the writer is open; ``keep_shm`` keeps the -shm too;
    ``wal_mode``: the -wal file's mode (0o600: the unprivileged user cannot read it)."""
    scratch = directory.parent / (directory.name + ".scratch")
    scratch.mkdir()
    make_store_file(scratch / "ro.db")
    writer = sqlite3.connect(scratch / "ro.db")
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("INSERT INTO purchases (shop_id, customer_id, event_time_us, event_id, order_value) "
                   "VALUES ('', 'c1', 1733011200000000, 'o2', 5.0)")
    writer.commit()
    directory.mkdir()
    for name in os.listdir(scratch):
        if keep_shm or not name.endswith("-shm"):
            shutil.copyfile(scratch / name, directory / name)
    writer.close()
    shutil.rmtree(scratch)
    assert (directory / "ro.db-wal").stat().st_size > 0
    for name in os.listdir(directory):
        (directory / name).chmod(wal_mode if name.endswith("-wal") else 0o444)
    directory.chmod(0o555)
    return directory / "ro.db"


def open_wal_unprivileged(path):
    from click.testing import CliRunner

    from store.cli import cli

    try:
        store = CustomerActivityFeatures(path, read_only=True)
    except ReadOnlyStoreError as exc:
        api = ("refused", str(exc))
    else:
        with store:
            api = ("served", store.immutable, store.get_total_purchase_value("c1", as_of=AS_OF))
    result = CliRunner().invoke(cli, ["--db", str(path), "stats"], catch_exceptions=True)
    return api, (result.exit_code, result.stderr.strip())


@pytest.mark.parametrize("case", ["no -shm", "readable -shm", "unreadable -wal"])
def test_wal_with_changes_in_a_read_only_directory_is_never_served_stale(case):
    """A -wal file holding a transaction, in a 0555 directory, read by uid 65534: with its -shm
    readable SQLite reads it (mode=ro, the transaction is seen); without one, or when the -wal
    cannot be read (SQLite cannot open the database read-only), the open is refused with a
    ReadOnlyStoreError saying to checkpoint it, never served from the database file alone
    (immutable=1 would miss the transaction)."""
    keep_shm = case == "readable -shm"
    base = unprivileged.world_dir()
    try:
        path = make_wal_with_content(base / "ro", keep_shm=keep_shm,
                                     wal_mode=0o600 if case == "unreadable -wal" else 0o444)
        before = file_state(path.parent)
        api, cli_result = unprivileged.as_nobody(open_wal_unprivileged, path)
        assert file_state(path.parent) == before
    finally:
        unprivileged.remove(base)
    if keep_shm:
        assert api == ("served", False, 15.0) and cli_result[0] == 0
    else:
        assert api[0] == "refused" and "ro.db-wal holds" in api[1] and "wal_checkpoint" in api[1], api
        code, stderr = cli_result
        assert code == 1 and stderr.startswith("Error: ") and "\n" not in stderr and "checkpoint" in stderr
