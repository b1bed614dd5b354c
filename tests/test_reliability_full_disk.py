"""Full disk: ``PRAGMA max_page_count`` makes the database fill up in the middle of a load.

The load stops with ``StorageFullError`` (a ``StoreError``), the database passes
``integrity_check`` and holds only whole batches (a prefix of the stream), and
running the same load again once space is available ends with exactly the rows
of an uninterrupted load. Single ``add_*`` calls, bulk methods, the dump loader
and ``materialize`` are covered.
"""

import sqlite3
import threading
import time

import pytest

from customer_activity_features import CustomerActivityFeatures
from store import ingest, synthetic
from store.errors import StorageFullError, StoreError

BATCH = 500
CUSTOMERS = 400


def stream():
    return list(synthetic.events("purchase", CUSTOMERS, seed=3))


def page_count(store):
    return store.conn.execute("PRAGMA page_count").fetchone()[0]


def limit(store, pages):
    store.conn.execute(f"PRAGMA max_page_count = {int(pages)}")


def check(store):
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def stored_ids(store):
    return {r[0] for r in store.conn.execute("SELECT event_id FROM purchases")}


def reference(tmp_path):
    with CustomerActivityFeatures(tmp_path / "ref.db") as ref:
        ref.add_purchases(stream(), batch_size=BATCH)
        return sorted(ref.conn.execute("SELECT * FROM purchases"))


@pytest.mark.parametrize("headroom", [3, 12])
def test_bulk_load_fills_the_disk_then_resumes(tmp_path, headroom):
    records = stream()
    ids = [r["order_id"] for r in records]
    with CustomerActivityFeatures(tmp_path / "full.db") as store:
        store.add_purchases(records[:BATCH], batch_size=BATCH)  # some data first
        limit(store, page_count(store) + headroom)
        with pytest.raises(StorageFullError) as info:
            store.add_purchases(records, batch_size=BATCH)
        assert isinstance(info.value, StoreError) and "full" in str(info.value)
        check(store)
        got = stored_ids(store)
        assert len(got) % BATCH == 0 and got == set(ids[:len(got)]), "part of a batch was stored"
        assert len(got) < len(ids)
        # the partial counts travel with the error
        partial = info.value.result
        assert partial is not None and partial.accepted + partial.duplicates == len(got)
        # space again: the same load completes, nothing twice
        limit(store, 1_000_000)
        result = store.add_purchases(records, batch_size=BATCH)
        assert result.accepted == len(ids) - len(got) and result.duplicates == len(got)
        check(store)
        assert sorted(store.conn.execute("SELECT * FROM purchases")) == reference(tmp_path)


def test_single_calls_fill_the_disk_then_resume(tmp_path, monkeypatch):
    thread_errors = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    records = stream()
    with CustomerActivityFeatures(tmp_path / "full.db") as store:
        store.add_purchases(records[:BATCH], batch_size=BATCH)
        limit(store, page_count(store) + 4)
        stored_before_error = None
        with pytest.raises(StorageFullError):
            for i, r in enumerate(records):
                store.add_purchase(r["customer_id"], r["order_value"], r["purchase_date"], order_id=r["order_id"])
                if i % 100 == 99:
                    store.flush()
                    stored_before_error = i + 1
        check(store)
        got = stored_ids(store)
        # every flushed event is there; what was in flight is either wholly there or wholly not
        assert stored_before_error and len(got) >= stored_before_error
        assert got == {r["order_id"] for r in records[:len(got)]}
        limit(store, 1_000_000)
        for r in records:
            store.add_purchase(r["customer_id"], r["order_value"], r["purchase_date"], order_id=r["order_id"])
        store.flush()
        check(store)
        assert sorted(store.conn.execute("SELECT * FROM purchases")) == reference(tmp_path)
    # no commit timer left behind by the failed transaction fires on the closed store
    time.sleep(ingest.MAX_PENDING_SECONDS * 2)
    assert thread_errors == []


def test_dump_load_fills_the_disk_then_resumes(tmp_path):
    records = stream()
    source = tmp_path / "purchases.csv"
    with open(source, "w") as handle:
        handle.write("customer_id,order_value,purchase_date,order_id\n")
        for r in records:
            handle.write(f"{r['customer_id']},{r['order_value']},{r['purchase_date']},{r['order_id']}\n")
    with CustomerActivityFeatures(tmp_path / "ok.db") as ok:
        ok.load("purchases", source)
        expected = sorted(ok.conn.execute("SELECT * FROM purchases"))
    with CustomerActivityFeatures(tmp_path / "full.db") as store:
        store.add_purchases(records[:10])
        limit(store, page_count(store) + 6)
        with pytest.raises(StorageFullError):
            store.load("purchases", source)
        check(store)
        limit(store, 1_000_000)
        report = store.load("purchases", source)
        assert report.read == report.accepted + report.rejected + report.duplicates
        check(store)
        assert sorted(store.conn.execute("SELECT * FROM purchases")) == expected


def test_materialize_on_a_full_disk_keeps_the_previous_snapshot(tmp_path):
    with CustomerActivityFeatures(tmp_path / "full.db") as store:
        store.add_purchases(stream())
        store.materialize(as_of="2025-06-01T00:00:00Z")
        before = sorted(store.conn.execute("SELECT * FROM customer_features"))
        limit(store, page_count(store) + 2)
        with pytest.raises(StorageFullError):
            store.materialize(as_of="2026-01-01T00:00:00Z")
        check(store)
        assert sorted(store.conn.execute("SELECT * FROM customer_features")) == before
        limit(store, 1_000_000)
        store.materialize(as_of="2026-01-01T00:00:00Z")
        assert sorted(store.conn.execute("SELECT * FROM customer_features")) != before
        check(store)


def test_full_error_is_not_an_operational_error_leak():
    assert issubclass(StorageFullError, StoreError)
    assert not issubclass(StorageFullError, sqlite3.Error)
