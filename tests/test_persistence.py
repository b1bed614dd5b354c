"""Persistence: reopening a file shows everything written; instances and shops are
independent; buffered writes are visible to reads at once and to other connections
after flush(), close() or leaving the with block."""

import os
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlite_utils

from customer_activity_features import CustomerActivityFeatures
from oracle import AS_OF

CUSTOMERS = ("c1", "c2", "c3", "nobody")


def ago(days):
    return AS_OF - timedelta(days=days)


def fill(store):
    store.add_purchase("c1", 10.0, ago(1), order_id="o1")
    store.add_purchase("c1", 20.0, ago(45))
    store.add_purchase("c2", 5.5, ago(100))
    store.add_session("c1", 30, "mobile", ago(2))
    store.add_session("c2", 60, None, ago(3))
    store.add_cart_event("c1", "abandoned", 12.0, ago(4))
    store.add_cart_event("c3", "converted", None, ago(5))
    store.add_support_interaction("c3", "t1", 2.5, True, ago(6))
    store.add_purchases([{"customer_id": "c3", "order_value": 1.0, "purchase_date": ago(7)}])
    store.set_customer_metadata("c1", {"tier": "gold"})
    store.add_purchase("", 1.0, ago(1))  # a rejection


def snapshot(store):
    return ({(cid, days): store.get_all_features(cid, days, as_of=AS_OF) for cid in CUSTOMERS for days in (None, 30)},
            store.get_cohort_summary(CUSTOMERS, as_of=AS_OF))


def plain_count(path, table):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("as_str", [False, True])
def test_write_close_reopen_gives_the_same_features(tmp_path, as_str):
    path = tmp_path / "store.db"
    assert not path.exists()
    store = CustomerActivityFeatures(str(path) if as_str else path)
    fill(store)
    before = snapshot(store)
    store.close()
    assert path.exists()
    with CustomerActivityFeatures(path) as reopened:
        assert snapshot(reopened) == before
        assert reopened.get_all_features("c1", as_of=AS_OF)["metadata"] == {"tier": "gold"}
        assert reopened.conn.execute("SELECT count(*) FROM rejected_events").fetchone()[0] == 1
        # natural keys survive the restart
        assert reopened.add_purchase("c1", 99.0, ago(1), order_id="o1") is False
        assert reopened.get_total_purchase_value("c1", as_of=AS_OF) == 30.0


def test_reads_before_close_equal_reads_after_reopen_without_flush(tmp_path):
    """Reads commit the buffer; close() commits what was added after the last read."""
    path = tmp_path / "store.db"
    store = CustomerActivityFeatures(path)
    store.add_purchase("c1", 1.0, ago(1))
    assert store.get_total_purchase_value("c1", as_of=AS_OF) == 1.0
    store.add_purchase("c1", 2.0, ago(1))  # after the read: still buffered
    store.close()
    with CustomerActivityFeatures(path) as reopened:
        assert reopened.get_total_purchase_value("c1", as_of=AS_OF) == 3.0


def test_two_in_memory_instances_are_independent():
    a, b = CustomerActivityFeatures(), CustomerActivityFeatures()
    with a, b:
        a.add_purchase("c1", 10.0, ago(1), order_id="same")
        assert b.get_total_purchase_value("c1", as_of=AS_OF) == 0.0
        assert b.add_purchase("c1", 3.0, ago(1), order_id="same") is True  # its own key space
        assert a.get_total_purchase_value("c1", as_of=AS_OF) == 10.0
        assert b.get_total_purchase_value("c1", as_of=AS_OF) == 3.0
        a.set_customer_metadata("c1", {"x": 1})
        assert "metadata" not in b.get_all_features("c1", as_of=AS_OF)


def test_buffered_writes_are_visible_to_reads_at_once(tmp_path):
    with CustomerActivityFeatures(tmp_path / "store.db") as store:
        for i in range(50):
            store.add_purchase("c1", 1.0, ago(1))
            assert store.get_total_purchase_value("c1", as_of=AS_OF) == float(i + 1)
        store.add_session("c1", 5, "tv", ago(1))
        assert store.get_primary_device("c1", as_of=AS_OF) == "tv"
        store.add_cart_event("c1", "abandoned", 1.0, ago(1))
        assert store.get_cohort_features(["c1"], as_of=AS_OF)["c1"]["abandoned_cart_count"] == 1
        store.add_support_interaction("c1", "t", 1.0, True, ago(1))
        assert store.get_cohort_summary(["c1"], as_of=AS_OF)["aggregates"]["escalation_count"] == 1.0


def test_a_second_connection_sees_events_after_flush(tmp_path):
    path = tmp_path / "store.db"
    store = CustomerActivityFeatures(path)
    try:
        for i in range(10):
            store.add_purchase("c1", 1.0, ago(1))
        store.add_session("c1", 1, "m", ago(1))
        store.add_purchase("", 1.0, ago(1))  # rejected
        store.flush()
        assert plain_count(path, "purchases") == 10
        assert plain_count(path, "sessions") == 1
        assert plain_count(path, "rejected_events") == 1
        store.add_purchase("c2", 1.0, ago(1))
    finally:
        store.close()
    assert plain_count(path, "purchases") == 11


def test_context_manager_commits(tmp_path):
    path = tmp_path / "store.db"
    with CustomerActivityFeatures(path) as store:
        store.add_purchase("c1", 1.0, ago(1))
        store.set_customer_metadata("c1", {"a": 1})
    assert plain_count(path, "purchases") == 1
    assert plain_count(path, "customers") == 1


def test_context_exit_on_an_exception_commits_what_was_added(tmp_path):
    path = tmp_path / "store.db"
    with pytest.raises(RuntimeError):
        with CustomerActivityFeatures(path) as store:
            store.add_purchase("c1", 1.0, ago(1))
            raise RuntimeError("boom")
    assert plain_count(path, "purchases") == 1


def test_idle_buffer_is_committed_within_a_fraction_of_a_second(tmp_path):
    path = tmp_path / "store.db"
    with CustomerActivityFeatures(path) as store:
        store.add_purchase("c1", 1.0, ago(1))
        deadline = time.monotonic() + 10  # generous: only eventual visibility is checked
        while plain_count(path, "purchases") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert plain_count(path, "purchases") == 1


def test_close_is_idempotent(tmp_path):
    store = CustomerActivityFeatures(tmp_path / "store.db")
    store.add_purchase("c1", 1.0, ago(1))
    store.close()
    store.close()
    assert plain_count(tmp_path / "store.db", "purchases") == 1


@pytest.mark.parametrize("wrap", ["sqlite3", "sqlite_utils"])
def test_an_open_connection_is_accepted_and_left_open(tmp_path, wrap):
    path = tmp_path / "store.db"
    conn = sqlite3.connect(str(path))
    db = conn if wrap == "sqlite3" else sqlite_utils.Database(conn)
    with CustomerActivityFeatures(db) as store:
        fill(store)
        before = snapshot(store)
    # the caller's connection stays usable and sees the committed events
    assert conn.execute("SELECT count(*) FROM purchases").fetchone()[0] == 4
    conn.close()
    with CustomerActivityFeatures(Path(path)) as reopened:
        assert snapshot(reopened) == before


def test_shops_in_one_file_are_separate(tmp_path):
    path = tmp_path / "store.db"
    with CustomerActivityFeatures(path, shop_id="a") as a:
        a.add_purchase("c1", 1.0, ago(1), order_id="o1")
    with CustomerActivityFeatures(path, shop_id="b") as b:
        assert b.get_total_purchase_value("c1", as_of=AS_OF) == 0.0
        assert b.add_purchase("c1", 5.0, ago(1), order_id="o1") is True
    with CustomerActivityFeatures(path, shop_id="a") as a:
        assert a.get_total_purchase_value("c1", as_of=AS_OF) == 1.0
    with CustomerActivityFeatures(path) as default:
        assert default.get_total_purchase_value("c1", as_of=AS_OF) == 0.0


def test_single_adds_are_buffered_not_committed_per_call(tmp_path, monkeypatch):
    """With the time limit out of the way, a loop of add_* calls stays in one open
    transaction until flush() (another connection sees nothing before)."""
    from store import ingest
    monkeypatch.setattr(ingest, "MAX_PENDING_SECONDS", 3600)
    path = tmp_path / "store.db"
    with CustomerActivityFeatures(path) as store:
        for i in range(20):
            assert store.add_purchase("c1", 1.0, ago(1)) is True
        assert store.conn.in_transaction
        assert plain_count(path, "purchases") == 0
        store.flush()
        assert not store.conn.in_transaction
        assert plain_count(path, "purchases") == 20


def test_buffer_is_committed_every_max_pending_events(tmp_path, monkeypatch):
    from store import ingest
    monkeypatch.setattr(ingest, "MAX_PENDING_SECONDS", 3600)
    monkeypatch.setattr(ingest, "MAX_PENDING", 5)
    path = tmp_path / "store.db"
    with CustomerActivityFeatures(path) as store:
        for i in range(12):
            store.add_purchase("c1", 1.0, ago(1))
        assert plain_count(path, "purchases") == 10


def test_file_store_uses_wal_and_a_busy_timeout(tmp_path):
    with CustomerActivityFeatures(tmp_path / "store.db") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0


def test_large_sorts_may_use_one_helper_thread(tmp_path):
    # PRAGMA threads (store.db.SORTER_THREADS): one helper thread for SQLite's sorter when the
    # process may use more than one CPU, on file and in-memory stores alike; a materialize worker
    # process reads with none (store/partition.py), since the workers already use the CPUs.
    from store import db
    assert db.SORTER_THREADS == (1 if len(os.sched_getaffinity(0)) > 1 else 0)
    with CustomerActivityFeatures(tmp_path / "store.db") as store, CustomerActivityFeatures() as memory:
        for s in (store, memory):
            assert s.conn.execute("PRAGMA threads").fetchone()[0] == db.SORTER_THREADS
        reader = db.open_reader(tmp_path / "store.db", sorter_threads=0)
        try:
            assert reader.execute("PRAGMA threads").fetchone()[0] == 0
        finally:
            reader.close()
