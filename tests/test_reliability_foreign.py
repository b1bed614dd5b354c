"""Files that are not stores: read commands never change someone else's database (issue 11, item 9).

Only commands that create or write a store (``caf init``, ``load``, ``demo``, ``migrate``, and
opening a path for writing through the API) may turn a missing or empty file into a store; a file
that is not an SQLite database, or another application's SQLite database, is refused by every
command and every open with ``NotAStoreError`` (one error line in the CLI) and stays
byte-for-byte as it was: same hash, same mtime, no -wal/-shm/-journal left beside it. The read
commands run as uid 65534 too (tests/unprivileged.py), where the file is opened read-only.
"""

import hashlib
import os
import sqlite3

import pytest
from click.testing import CliRunner

import unprivileged
from customer_activity_features import CustomerActivityFeatures, NotAStoreError, ReadOnlyStoreError
from store import db as store_db
from store.cli import cli

AS_OF = "2025-01-01T00:00:00Z"
READ_COMMANDS = {
    "stats": ["stats"], "features": ["features", "c1", "--as-of", AS_OF], "catalog": ["catalog"],
    "rejected": ["rejected"], "export": ["export", "{out}/features.csv"],
    "export rfm": ["export", "rfm", "{out}/rfm.csv"], "migrate --list": ["migrate", "--list"],
}
WRITE_COMMANDS = {
    "load": ["load", "purchases", "{out}/orders.csv"], "demo": ["demo", "--customers", "3"],
    "materialize": ["materialize"], "refresh": ["refresh"], "init": ["init"], "migrate": ["migrate"],
}


def make_foreign(path):
    """Another application's database, in rollback-journal mode, with rows."""
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, total REAL);
        CREATE INDEX orders_user ON orders (user_id);
        INSERT INTO users VALUES (1, 'ada'), (2, 'grace');
        INSERT INTO orders VALUES (1, 1, 9.5);
    """)
    conn.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def make_not_sqlite(path):
    path.write_bytes(b"id,total\n1,9.5\n" * 50)


def make_empty(path):
    path.write_bytes(b"")


FILES = {"foreign": make_foreign, "not sqlite": make_not_sqlite, "empty": make_empty}
REFUSAL = {"foreign": "not a customer-activity-features store", "not sqlite": "not a database",
           "empty": "empty"}


def state(directory):
    """{name: (sha256, mtime_ns)} of every file in the directory."""
    return {name: (hashlib.sha256((directory / name).read_bytes()).hexdigest(),
                   (directory / name).stat().st_mtime_ns) for name in sorted(os.listdir(directory))}


def run_commands(path, out, commands):
    """{command: (exit code, stderr)} of each CLI command on ``path``."""
    (out / "orders.csv").write_text("customer_id,order_value,purchase_date\nc1,1.0,2024-01-01\n")
    runner = CliRunner()
    results = {}
    for name, args in commands.items():
        args = [a.format(out=out) for a in args]
        result = runner.invoke(cli, ["--db", str(path), *args], catch_exceptions=True)
        results[name] = (result.exit_code, result.stderr.strip())
    return results


def open_api(path, **kwargs):
    try:
        CustomerActivityFeatures(path, **kwargs).close()
    except (NotAStoreError, ReadOnlyStoreError) as exc:
        return type(exc).__name__, str(exc)
    return "opened", ""


def one_line_refusal(result, fragment):
    code, stderr = result
    return code == 1 and stderr.startswith("Error: ") and "\n" not in stderr and fragment in stderr


@pytest.mark.parametrize("kind", list(FILES))
def test_a_file_that_is_not_a_store_is_never_changed(tmp_path, kind):
    directory = tmp_path / "app"
    directory.mkdir()
    path = directory / "other_app.db"
    FILES[kind](path)
    out = tmp_path / "out"
    out.mkdir()
    before = state(directory)

    results = run_commands(path, out, READ_COMMANDS)
    api = {"read_only": open_api(path, read_only=True), "create=False": open_api(path, create=False)}
    if kind != "empty":  # a new or empty file may become a store: only these are refused
        results.update(run_commands(path, out, WRITE_COMMANDS))
        api["default"] = open_api(path)
    assert state(directory) == before  # same bytes, same mtime, no -wal/-shm/-journal
    assert not list(out.glob("*.csv.partial")) and not (out / "features.csv").exists()

    for name, result in results.items():
        if kind == "empty" and name == "migrate --list":  # lists the steps 'caf init' would apply
            assert result[0] == 0, result
        else:
            assert one_line_refusal(result, REFUSAL[kind]), (name, result)
    for name, (error, message) in api.items():
        assert error == "NotAStoreError" and REFUSAL[kind] in message and "not modified" in message, (name, message)
    if kind == "foreign":
        assert "orders, orders_user, users" in results["stats"][1]


def test_a_new_or_empty_file_still_becomes_a_store(tmp_path):
    """Commands that create a store keep doing so in a new or an empty file."""
    for args in (["init"], ["load", "purchases", "{out}/orders.csv"], ["demo", "--customers", "3"]):
        path = tmp_path / f"{args[0]}.db"
        path.write_bytes(b"")
        results = run_commands(path, tmp_path, {"create": args})
        assert results["create"][0] == 0, results
        conn = sqlite3.connect(path)
        assert store_db.applied_steps(conn) == store_db.known_steps()
        conn.close()
    empty = tmp_path / "api.db"
    empty.write_bytes(b"")
    with CustomerActivityFeatures(empty) as store:
        assert store.add_purchase("c1", 1.0, AS_OF, order_id="o1")
    with CustomerActivityFeatures(tmp_path / "new.db") as store:
        assert store.get_total_purchase_value("c1", as_of=AS_OF) == 0.0


def test_a_connection_passed_in_still_gets_the_store(tmp_path):
    """A connection is the caller's explicit choice: the store's tables go into its database."""
    path = tmp_path / "shared.db"
    make_foreign(path)
    conn = sqlite3.connect(path)
    with CustomerActivityFeatures(conn) as store:
        assert store.add_purchase("c1", 1.0, AS_OF, order_id="o1")
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 2
    conn.close()
    with pytest.raises(NotAStoreError):
        CustomerActivityFeatures(sqlite3.connect(tmp_path / "other.db"), create=False)


def refuse_as_user(path, out):
    results = run_commands(path, out, READ_COMMANDS)
    results["read_only"] = open_api(path, read_only=True)
    results["default"] = open_api(path)
    return results


@pytest.mark.parametrize("kind", ["foreign", "not sqlite"])
def test_a_file_that_is_not_a_store_is_never_changed_unprivileged(kind):
    """The same refusals for uid 65534, who may read the file but not write it (the read-only path)."""
    base = unprivileged.world_dir()
    try:
        directory = base / "app"
        directory.mkdir()
        path = directory / "other_app.db"
        FILES[kind](path)
        path.chmod(0o444)  # readable, not writable by the unprivileged user (nor by us when we are one)
        directory.chmod(0o555)
        before = state(directory)
        results = unprivileged.as_nobody(refuse_as_user, path, unprivileged.writable_dir(base))
        assert state(directory) == before
    finally:
        unprivileged.remove(base)
    for name, result in results.items():
        if name in ("read_only", "default"):
            assert result[0] == "NotAStoreError" and REFUSAL[kind] in result[1], (name, result)
        else:
            assert one_line_refusal(result, REFUSAL[kind]), (name, result)
