"""materialize(): the customer_features table, its runs, its atomic swap."""

import json
import shutil
import sqlite3
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures, UnknownNameError
from oracle_feature_store import AS_OF, AS_OF_US, events, last_purchase_us, load
from store import catalog, plan as mat, timeutil

SEED_WINDOWED = [f.name for f in catalog.FEATURES if f.materialize == catalog.WINDOWED
                 and f.added_by.startswith("issue 3")]
TRADEOFF = ("high_short_term_activity", "declining_engagement", "support_risk", "cart_abandonment_risk",
            "retention_concern")


def rows(store):
    cur = store.conn.execute("SELECT * FROM customer_features ORDER BY shop_id, customer_id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur]


def _check_row(store, row, windows):
    cid = row["customer_id"]
    assert row["as_of"] == timeutil.iso(AS_OF_US) and row["as_of_us"] == AS_OF_US
    for days, suffix in [(None, "")] + [(w, f"_{w}d") for w in windows]:
        f = store.get_all_features(cid, days, as_of=AS_OF)
        for name in SEED_WINDOWED:
            if name in f:
                assert row[name + suffix] == f[name], (name + suffix)
    f = store.get_all_features(cid, as_of=AS_OF)
    assert row["purchase_recency_days"] == f["purchase_recency_days"]
    assert row["primary_device"] == f["primary_device"]
    for key in TRADEOFF:
        assert row[key] == int(f["activity_retention_tradeoff"][key])
    assert row["activity_trend"] == f["activity_retention_tradeoff"]["activity_trend"]


@settings(max_examples=12, deadline=None)
@given(history=events(), windows=st.sets(st.sampled_from((1, 7, 30, 90, 365)), min_size=1, max_size=3))
def test_materialized_columns_equal_the_getters(history, windows):
    with CustomerActivityFeatures() as store:
        load(store, history)
        result = store.materialize(as_of=AS_OF, windows=windows)
        got = rows(store)
        customers = sorted({rec["customer_id"] for _, rec in history})
        assert [r["customer_id"] for r in got] == customers
        assert result["rows"] == len(customers)
        for row in got:
            _check_row(store, row, sorted(windows))
            assert row["last_purchase_us"] == last_purchase_us(history, row["customer_id"], AS_OF_US)
            # counts per window: from the history directly
            for w in windows:
                n = sum(1 for k, r in history if k == "purchase" and r["customer_id"] == row["customer_id"]
                        and AS_OF_US - timeutil.days_to_us(w) <= timeutil.to_us(r["purchase_date"]) <= AS_OF_US)
                assert row[f"purchase_count_{w}d"] == n


def test_columns_runs_and_readable_as_of():
    with CustomerActivityFeatures() as store:
        store.add_purchase("17850", 20.0, "2025-05-30T10:00:00Z")
        store.add_session("17850", 120.0, "mobile", "2025-05-31T10:00:00Z")
        store.set_customer_metadata("meta-only", {"a": 1})
        result = store.materialize(as_of=AS_OF)
        assert result["kind"] == "full" and result["rows"] == 2 and result["windows"] == [7, 30, 90, 365]
        cols = [r[1] for r in store.conn.execute("PRAGMA table_info(customer_features)")]
        assert cols[:4] == ["shop_id", "customer_id", "as_of", "as_of_us"]
        for name in ("purchase_count_30d", "average_order_value_90d", "session_frequency_7d",
                     "escalation_ratio_365d", "purchase_recency_days", "retention_concern", "activity_trend",
                     "primary_device", "purchase_count", "total_purchase_value"):
            assert name in cols
        row = store.conn.execute("SELECT as_of, purchase_count_7d, primary_device, high_short_term_activity "
                                 "FROM customer_features WHERE customer_id = '17850'").fetchone()
        assert row == ("2025-06-01T12:00:00Z", 1, "mobile", 1)
        run = store.conn.execute("SELECT kind, as_of, windows, rows, recomputed, schema_version, started_at, "
                                 "finished_at, columns FROM materializations").fetchone()
        assert run[:5] == ("full", "2025-06-01T12:00:00Z", "[7, 30, 90, 365]", 2, 2)
        assert run[5].startswith("0") and run[6] <= run[7]
        assert json.loads(run[8]) == cols
        # the column types are declared (readable in the shell)
        types = {r[1]: r[2] for r in store.conn.execute("PRAGMA table_info(customer_features)")}
        assert types["purchase_count_30d"] == "INTEGER" and types["average_order_value_90d"] == "REAL"
        assert types["activity_trend"] == "TEXT"


@pytest.mark.parametrize("windows", [(), (0,), (-7,), (1.5,), ("7",), "7", (True,), (10**9,), 7])
def test_bad_windows_are_refused(windows):
    with CustomerActivityFeatures() as store:
        with pytest.raises(ValueError):
            store.materialize(as_of=AS_OF, windows=windows)


def test_windows_are_normalised():
    assert mat.check_windows([30, 7, 30, 7.0]) == (7, 30)


def test_a_failed_materialize_keeps_the_old_snapshot(monkeypatch):
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 1.0, "2025-05-01T00:00:00Z")
        store.materialize(as_of=AS_OF)
        before = rows(store)
        store.add_purchase("b", 2.0, "2025-05-02T00:00:00Z")
        monkeypatch.setattr(mat.Plan, "staged_insert_sql", lambda self, table: "INSERT INTO nowhere VALUES (1)")
        with pytest.raises(sqlite3.OperationalError):
            store.materialize(as_of=AS_OF)
        assert rows(store) == before
        assert store.conn.execute("SELECT COUNT(*) FROM materializations").fetchone()[0] == 1
        assert not store.conn.in_transaction


def test_readers_see_the_old_or_the_new_snapshot(tmp_path):
    path = tmp_path / "store.db"
    with CustomerActivityFeatures(path) as store:
        for i in range(50):
            store.add_purchase(f"c{i}", 1.0, "2025-05-01T00:00:00Z")
        store.materialize(as_of=AS_OF)
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")  # a read transaction started before the new snapshot
        old = reader.execute("SELECT COUNT(*), MAX(as_of) FROM customer_features").fetchone()
        for i in range(50, 80):
            store.add_purchase(f"c{i}", 1.0, "2025-05-01T00:00:00Z")
        store.materialize(as_of="2025-06-02T00:00:00Z")
        assert reader.execute("SELECT COUNT(*), MAX(as_of) FROM customer_features").fetchone() == old
        reader.execute("COMMIT")
        assert reader.execute("SELECT COUNT(*), MIN(as_of), MAX(as_of) FROM customer_features").fetchone() == (
            80, "2025-06-02T00:00:00Z", "2025-06-02T00:00:00Z")
        reader.close()


def test_shops_keep_their_own_rows():
    with CustomerActivityFeatures(shop_id="s1") as s1, CustomerActivityFeatures(s1.conn, shop_id="s2") as s2:
        s1.add_purchase("a", 1.0, "2025-05-01T00:00:00Z")
        s2.add_purchase("b", 5.0, "2025-05-01T00:00:00Z")
        s2.add_purchase("a", 7.0, "2025-05-01T00:00:00Z")
        s1.materialize(as_of=AS_OF)
        s2.materialize(as_of=AS_OF, windows=(30,))
        got = {(r["shop_id"], r["customer_id"]): r["total_purchase_value"] for r in rows(s1)}
        assert got == {("s1", "a"): 1.0, ("s2", "a"): 7.0, ("s2", "b"): 5.0}
        s1.materialize(as_of=AS_OF)
        got = {(r["shop_id"], r["customer_id"]): r["total_purchase_value"] for r in rows(s1)}
        assert got == {("s1", "a"): 1.0, ("s2", "a"): 7.0, ("s2", "b"): 5.0}


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="no sqlite3 shell binary")
def test_readable_from_the_sqlite3_shell(tmp_path):
    path = tmp_path / "store.db"
    with CustomerActivityFeatures(path) as store:
        store.add_purchase(17850.0, 15.3, "2025-05-30T10:00:00Z")
        store.materialize(as_of=AS_OF)
    out = subprocess.run(["sqlite3", "-header", str(path),
                          "SELECT * FROM customer_features WHERE customer_id='17850'"],
                         capture_output=True, text=True, check=True).stdout
    header, line = out.strip().splitlines()
    values = dict(zip(header.split("|"), line.split("|")))
    assert values["customer_id"] == "17850"
    assert values["as_of"] == "2025-06-01T12:00:00Z"
    assert values["total_purchase_value_7d"] == "15.3"
    assert values["purchase_recency_days"] == "2"


def test_materialize_without_events():
    with CustomerActivityFeatures() as store:
        assert store.materialize(as_of=AS_OF)["rows"] == 0
        assert rows(store) == []


def test_bad_format_and_unknown_names():
    with pytest.raises(UnknownNameError):
        mat.quote_identifier("x; DROP TABLE purchases", {"x"})
