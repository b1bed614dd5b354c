"""A lock held longer than the busy timeout (issue 11, item 11).

Another process holds the write lock (``BEGIN IMMEDIATE``) of a store; a store opened with a
short ``busy_timeout`` gets ``DatabaseLockedError`` (a ``StoreError``, not a raw
``sqlite3.OperationalError``) from every call that needs the lock: single ``add_*`` (+ flush),
bulk, metadata, ``load``, ``materialize``, ``refresh``; the message names the holding process
(from /proc/locks, on Linux) and the loads recorded as running, and says what to do. Reads are
still served meanwhile (WAL), nothing is half-written, and the same store writes again once the
lock is released. The CLI says it in one line and exits 1; ``--busy-timeout`` sets the wait.
"""

import contextlib
import os
import sqlite3
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from customer_activity_features import CustomerActivityFeatures, DatabaseLockedError, StoreError
from store import db as store_db
from store.cli import cli

AS_OF = "2025-01-01T00:00:00Z"
HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # held until the test closes our stdin
conn.execute("ROLLBACK")
"""
PROC_LOCKS = os.path.exists(store_db.PROC_LOCKS)


@contextlib.contextmanager
def lock_held_by_another_process(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def make_shop(path):
    with CustomerActivityFeatures(path) as store:
        store.add_purchase("c1", 10.0, "2024-12-01T00:00:00Z", order_id="o1")
        store.add_purchase("c2", 20.0, "2024-12-02T00:00:00Z", order_id="o2")
        store.materialize(as_of=AS_OF)
    conn = sqlite3.connect(path)  # an interrupted load: recorded as running
    conn.execute("INSERT INTO loads (kind, source_name, source_size, source_sha256, status, started_at, rows_read) "
                 "VALUES ('purchases', 'orders.csv', 10, 'x', 'running', '2025-01-01T00:00:00Z', 5000)")
    conn.commit()
    conn.close()


def counts(path):
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 fixed names
                for t in ("purchases", "customers", "rejected_events", "materializations", "loads")}
    finally:
        conn.close()


def test_a_lock_held_past_the_busy_timeout_is_a_clear_store_error(tmp_path):
    path = tmp_path / "shop.db"
    make_shop(path)
    source = tmp_path / "more.csv"
    source.write_text("customer_id,order_value,purchase_date,order_id\nc3,1.0,2024-12-03,o3\n")
    before = counts(path)
    store = CustomerActivityFeatures(path, busy_timeout=0.2)
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 200
    calls = {
        "add_purchase + flush": lambda: (store.add_purchase("c3", 1.0, AS_OF, order_id="o3"), store.flush()),
        "add_purchase (rejected)": lambda: store.add_purchase("c3", -1.0, AS_OF),
        "add_purchases": lambda: store.add_purchases([{"customer_id": "c3", "order_value": 1.0}]),
        "set_customer_metadata": lambda: store.set_customer_metadata("c1", {"tier": "gold"}),
        "load_history": lambda: store.load_history("purchase", [{"customer_id": "c3", "order_value": 1.0}]),
        "load": lambda: store.load("purchases", source),
        "materialize": lambda: store.materialize(as_of=AS_OF),
        "materialize(workers=2)": lambda: store.materialize(as_of=AS_OF, workers=2),
        "refresh": lambda: store.refresh(as_of="2025-01-02T00:00:00Z"),
    }
    with lock_held_by_another_process(path) as holder:
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(DatabaseLockedError) as info:
                call()
            waited = time.monotonic() - started
            error = info.value
            assert isinstance(error, StoreError) and not isinstance(error, sqlite3.OperationalError)
            assert isinstance(error.__cause__, sqlite3.OperationalError)
            assert 0.15 <= waited < 10, (name, waited)
            message = str(error)
            assert message.startswith(f"database is locked: another connection held the lock on {path}"), message
            assert "busy timeout (0.2 s)" in message and error.timeout_seconds == 0.2
            assert "load 1 (purchases from 'orders.csv', started 2025-01-01T00:00:00Z, 5,000 rows so far)" in message
            assert "retry" in message and "busy_timeout=SECONDS" in message and "--busy-timeout" in message
            if PROC_LOCKS:
                assert error.holder.startswith(f"process {holder.pid} (") and f"process {holder.pid}" in message
        # reads are served while the lock is held
        assert store.get_total_purchase_value("c1", as_of=AS_OF) == 10.0
        assert sorted(store.get_cohort_features(["c1", "c2"], as_of=AS_OF)) == ["c1", "c2"]
    assert counts(path) == before  # nothing half-written
    assert store.add_purchase("c3", 1.0, AS_OF, order_id="o3")  # the same store writes again
    store.close()
    assert counts(path)["purchases"] == before["purchases"] + 1


def test_the_lock_holder_of_this_process_is_named(tmp_path):
    path = tmp_path / "shop.db"
    make_shop(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with CustomerActivityFeatures(path, busy_timeout=0) as store:
            with pytest.raises(DatabaseLockedError) as info:
                store.add_purchase("c3", 1.0, AS_OF, order_id="o3")
    finally:
        other.execute("ROLLBACK")
        other.close()
    if PROC_LOCKS:
        assert f"another connection of this process (pid {os.getpid()})" in str(info.value)


def run(args, env=None):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=True)


def test_the_cli_reports_a_held_lock_in_one_line(tmp_path):
    path = tmp_path / "shop.db"
    make_shop(path)
    source = tmp_path / "more.csv"
    source.write_text("customer_id,order_value,purchase_date,order_id\nc3,1.0,2024-12-03,o3\n")
    commands = {
        "load": ["--db", str(path), "--busy-timeout", "0.2", "load", "purchases", str(source)],
        "materialize": ["--db", str(path), "--busy-timeout", "0.2", "materialize", "--as-of", AS_OF],
        "refresh": ["--db", str(path), "--busy-timeout", "0.2", "refresh"],
        "demo": ["--db", str(path), "--busy-timeout", "0.2", "demo", "--customers", "3"],
        "materialize (CAF_BUSY_TIMEOUT)": ["--db", str(path), "materialize"],
    }
    with lock_held_by_another_process(path) as holder:
        for name, args in commands.items():
            started = time.monotonic()
            result = run(args, env={"CAF_BUSY_TIMEOUT": "0.2"})
            assert time.monotonic() - started < 10, name
            lines = result.stderr.strip().splitlines()
            assert result.exit_code == 1 and len(lines) == 1, (name, result.exit_code, result.stderr)
            assert lines[0].startswith("Error: database is locked: ") and "--busy-timeout" in lines[0], lines[0]
            assert "Traceback" not in result.output
            if PROC_LOCKS:
                assert f"process {holder.pid}" in lines[0]
        stats = run(["--db", str(path), "--busy-timeout", "0.2", "stats"])  # reads are served
        assert stats.exit_code == 0, stats.output


def test_busy_timeout_is_checked():
    for bad in (-1, float("nan"), float("inf"), "5", True, 10**6):
        with pytest.raises(ValueError, match="busy_timeout"):
            CustomerActivityFeatures(busy_timeout=bad)
    with CustomerActivityFeatures() as store:  # the default stays 30 s
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    result = run(["--busy-timeout", "-1", "stats"])
    assert result.exit_code == 2 and "--busy-timeout" in result.stderr


@pytest.mark.long
def test_a_running_materialize_is_named_as_the_holder_long(tmp_path):
    """The real holder: 'caf materialize' over 20,000 synthetic customers in another process."""
    from store import synthetic

    path = tmp_path / "shop.db"
    with CustomerActivityFeatures(path) as store:
        synthetic.populate(store, 20_000)
    store = CustomerActivityFeatures(path, busy_timeout=0.2)
    probe = sqlite3.connect(path, isolation_level=None, timeout=0)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "store", "--db", str(path), "materialize", "--as-of",
                             "2026-01-01T00:00:00Z"],  # the end of the synthetic year
                            stdout=subprocess.DEVNULL)
    try:
        while True:  # until materialize holds the lock
            assert proc.poll() is None, "materialize ended before it was seen holding the lock"
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
                time.sleep(0.005)
            except sqlite3.OperationalError:
                break
        locked_at = time.monotonic()
        with pytest.raises(DatabaseLockedError) as info:
            store.add_purchase("c-new", 1.0, AS_OF, order_id="o-new")
        waited = time.monotonic() - locked_at
        assert proc.wait(timeout=600) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    held = time.monotonic() - locked_at
    probe.close()
    message = str(info.value)
    if PROC_LOCKS:
        assert f"process {proc.pid} (" in message and "materialize --as-of" in info.value.holder, message
    assert store.add_purchase("c-new", 1.0, AS_OF, order_id="o-new")  # writes again afterwards
    store.close()
    print(f"\nRELIABILITY lock: caf materialize of 20,000 customers held the write lock ~{held:.1f} s "
          f"(run {time.monotonic() - started:.1f} s); add_purchase with busy_timeout=0.2 raised "
          f"DatabaseLockedError after {waited:.2f} s naming: {info.value.holder}")
