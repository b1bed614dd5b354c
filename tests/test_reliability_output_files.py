"""Output files are never the store's own database (issue 11, item 7).

``caf --db x.db export x.db`` used to replace the database with a CSV and exit 0.
Every spelling of the database file (relative, ``./``, absolute, ``..``, a symlink,
a hard link, another case on a case-insensitive file system) and its side files
(``-wal``, ``-shm``, ``-journal``, whether they exist right now or not) is refused:
one error line, exit 1, the database byte-for-byte untouched; the API's ``export``
refuses the same paths with ``OutputIsDatabaseError``.
"""

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from customer_activity_features import CustomerActivityFeatures, OutputIsDatabaseError, StoreError
from store.cli import cli
from store.db import check_output_file

AS_OF = "2025-02-01T00:00:00Z"


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_store(path):
    with CustomerActivityFeatures(path) as store:
        for i in range(20):
            store.add_purchase(f"c{i % 5}", 10.0 + i, f"2025-01-{1 + i:02d}T00:00:00Z", order_id=f"o{i}")
        store.materialize(as_of=AS_OF)
    return path


def case_insensitive(directory):
    probe = Path(directory) / "CaseProbe"
    probe.write_text("")
    try:
        return (Path(directory) / "caseprobe").exists()
    finally:
        probe.unlink()


def spellings(tmp_path, db):
    """(label, path text) of every way tried to name the database or one of its side files."""
    sub = tmp_path / "sub"
    sub.mkdir(exist_ok=True)
    link = tmp_path / "link.db"
    if not link.exists():
        link.symlink_to(db)
    hard = tmp_path / "hard.db"
    if not hard.exists():
        os.link(db, hard)
    wal_link = tmp_path / "wal_link.csv"  # a dangling symlink to where the WAL would be
    if not os.path.lexists(wal_link):
        wal_link.symlink_to(str(db) + "-wal")
    names = [("same", str(db)), ("relative", os.path.relpath(db)), ("dot", "./" + os.path.relpath(db)),
             ("dotdot", str(sub / ".." / db.name)), ("symlink", str(link)), ("hard link", str(hard)),
             ("wal", str(db) + "-wal"), ("shm", str(db) + "-shm"), ("journal", str(db) + "-journal"),
             ("relative wal", os.path.relpath(db) + "-wal"), ("symlink to wal", str(wal_link)),
             ("lock file", str(db) + "-lock-x")]
    if case_insensitive(tmp_path):
        names.append(("other case", str(db.with_name(db.name.upper()))))
    return names


@pytest.fixture
def store_db(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return make_store(tmp_path / "x.db")


def store_db_check(store, target):
    return check_output_file(store.conn, target)


def cli_run(db, args):
    return CliRunner().invoke(cli, ["--db", str(db), *args], prog_name="caf", catch_exceptions=True)


def test_export_onto_the_database_is_refused_and_the_database_is_untouched(tmp_path, store_db):
    before = digest(store_db)
    refused = 0
    for label, target in spellings(tmp_path, store_db):
        for command in (["export", target], ["export", "features", target], ["export", "rfm", target],
                        ["export", "features", target, "--as-of", "2025-01-15"]):
            result = cli_run(store_db, command)
            assert result.exit_code == 1, (label, command, result.exit_code, result.output)
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("Error: refusing to write"), (label, result.stderr)
            assert "Traceback" not in result.output
            assert digest(store_db) == before, (label, command)
            refused += 1
        with CustomerActivityFeatures(store_db) as store:
            with pytest.raises(OutputIsDatabaseError) as caught:
                store.export(target)
            assert isinstance(caught.value, StoreError)
            with pytest.raises(OutputIsDatabaseError):
                store.export(target, as_of="2025-01-15T00:00:00Z")  # the computed path refuses too
        with CustomerActivityFeatures(store_db, read_only=True) as store:
            with pytest.raises(OutputIsDatabaseError):
                store.export(target)
        assert digest(store_db) == before, label
        assert not os.path.exists(str(store_db) + "-journal")
        refused += 3
    conn = sqlite3.connect(store_db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT COUNT(*) FROM purchases").fetchone() == (20,)
    conn.close()
    assert refused >= 12 * 7


def test_export_next_to_the_database_still_works(tmp_path, store_db):
    """Names that only look alike are not refused: x.db.csv, x.db-wal.csv, x.dbx, another directory."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    for target in ("x.db.csv", "x.db-wal.csv", "x.dbx", "x", str(other / "x.db")):
        result = cli_run(store_db, ["export", target])
        assert result.exit_code == 0, (target, result.output)
        assert "customer_id" in Path(target).read_text().splitlines()[0]
        result = cli_run(store_db, ["export", "rfm", target])
        assert result.exit_code == 0, (target, result.output)
        assert Path(target).read_text().startswith("customer_id,frequency")
    with CustomerActivityFeatures(store_db) as store:
        assert store.export(tmp_path / "api.csv")["rows"] == 5
    with CustomerActivityFeatures(store_db) as store:  # an open file descriptor is checked too
        fd = os.open(store_db, os.O_RDONLY)
        try:
            with pytest.raises(OutputIsDatabaseError):
                store_db_check(store, fd)
        finally:
            os.close(fd)
        other_fd = os.open(tmp_path / "fd.csv", os.O_WRONLY | os.O_CREAT)
        try:
            assert store_db_check(store, other_fd) == other_fd
        finally:
            os.close(other_fd)
    with CustomerActivityFeatures() as memory:  # an in-memory store has no file to protect
        memory.add_purchase("c1", 1.0, "2025-01-01T00:00:00Z", order_id="o1")
        assert memory.export(tmp_path / "x.db-wal.csv", as_of=AS_OF)["rows"] == 1


def test_export_whose_partial_file_is_the_database_is_refused(tmp_path, monkeypatch):
    """caf export writes FILE.partial, then renames it: with --db y.db.partial, 'export y.db'
    would have written the database itself."""
    monkeypatch.chdir(tmp_path)
    db = make_store(tmp_path / "y.db.partial")
    before = digest(db)
    for command in (["export", "y.db"], ["export", "rfm", "y.db"]):
        result = cli_run(db, command)
        assert result.exit_code == 1 and "refusing to write" in result.stderr, (command, result.output)
        assert digest(db) == before
    assert not (tmp_path / "y.db").exists()


def test_export_onto_the_database_from_a_real_process(tmp_path, store_db):
    """The command as a user types it (python -m store), exit status and file checked from outside."""
    before = digest(store_db)
    for target in ("x.db", "./x.db", "x.db-wal"):
        proc = subprocess.run([sys.executable, "-m", "store", "--db", "x.db", "export", target],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, (target, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("Error: refusing to write") and proc.stderr.count("\n") == 1, proc.stderr
        assert digest(store_db) == before
