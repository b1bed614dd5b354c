"""The optional pandas / DuckDB materialisation references of the benchmark (benchmarks/dataframes.py)
agree with the hand-written SQL statement (benchmarks/reference.py) on random histories clustered on
the window edges: every column, every customer (None only equals None, floats to 1e-6 relative).

pandas and DuckDB are not dependencies: these tests skip when they are not importable (as in CI)."""

import pytest
from hypothesis import HealthCheck, given, settings

from benchmarks import dataframes, reference
from customer_activity_features import CustomerActivityFeatures
from oracle_feature_store import AS_OF_US, CUSTOMERS, events, load

pd = pytest.importorskip("pandas")


def handwritten(store):
    store.conn.execute("DROP TABLE IF EXISTS temp.bench_handwritten")
    store.conn.execute("CREATE TEMP TABLE bench_handwritten AS " + reference.select_statement(),
                       {"as_of_us": AS_OF_US})
    return store.conn.execute("SELECT COUNT(*) FROM bench_handwritten").fetchone()[0]


def check(store, rows, n):
    result = dataframes.compare(store.conn, rows)
    assert result == {"rows_checked": n, "mismatches": 0, "missing": 0, "extra": 0, "columns": {}}


def _store(history, metadata_only=()):
    store = CustomerActivityFeatures()
    load(store, history)
    if metadata_only:
        store.set_customers_metadata([{"customer_id": c} for c in metadata_only])
    return store


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=events(max_size=40))
def test_pandas_agrees_with_handwritten_sql(history):
    with _store(history, metadata_only=("only-metadata",)) as store:
        n = handwritten(store)
        df = dataframes.pandas_features(pd, dataframes.load_frames(pd, store.conn), AS_OF_US)
        assert list(df.columns) == ["customer_id"] + reference.all_columns()
        check(store, dataframes.pandas_rows(df), n)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=events(max_size=40))
def test_duckdb_agrees_with_handwritten_sql(history):
    pytest.importorskip("duckdb")
    with _store(history, metadata_only=("only-metadata",)) as store:
        n = handwritten(store)
        con = dataframes.duckdb_connect()
        dataframes.duckdb_load(con, dataframes.load_frames(pd, store.conn))
        dataframes.duckdb_compute(con, AS_OF_US)
        check(store, dataframes.duckdb_rows(con), n)
        con.close()


def test_device_tie_rule_and_empty_shop():
    """Most sessions first, then the earliest first session, then the device name."""
    day = 86_400_000_000
    from store import timeutil
    t = [timeutil.iso(AS_OF_US - k * day) for k in range(6)]
    history = [("session", {"customer_id": cid, "duration_seconds": 1.0, "device_type": dev,
                            "session_date": t[k], "session_id": f"s{i}"})
               for i, (cid, dev, k) in enumerate([
                   ("a", "tablet", 1), ("a", "mobile", 1), ("a", "desktop", 2),  # tie on time: name
                   ("b", "tablet", 5), ("b", "mobile", 1), ("b", "mobile", 0),  # count wins
                   ("c", "tablet", 3), ("c", "mobile", 2)])]  # earliest wins
    with _store(history) as store:
        df = dataframes.pandas_features(pd, dataframes.load_frames(pd, store.conn), AS_OF_US)
        assert dict(zip(df["customer_id"], df["primary_device"])) == {"a": "desktop", "b": "mobile",
                                                                       "c": "tablet"}
        check(store, dataframes.pandas_rows(df), handwritten(store))
    with CustomerActivityFeatures() as store:  # no customer at all
        df = dataframes.pandas_features(pd, dataframes.load_frames(pd, store.conn), AS_OF_US)
        assert len(df) == 0 and handwritten(store) == 0
        check(store, dataframes.pandas_rows(df), 0)


def test_compare_counts_differences():
    history = [("purchase", {"customer_id": c, "order_value": 10.0, "purchase_date": "2025-05-30T00:00:00Z",
                             "order_id": f"o{c}"}) for c in CUSTOMERS]
    with _store(history) as store:
        n = handwritten(store)
        df = dataframes.pandas_features(pd, dataframes.load_frames(pd, store.conn), AS_OF_US)
        df.loc[0, "total_purchase_value_all"] += 0.01
        df.loc[1, "average_response_time_hours_7d"] = 1.0  # NULL in the reference
        result = dataframes.compare(store.conn, dataframes.pandas_rows(df.drop(index=2)))
        assert result == {"rows_checked": n - 1, "mismatches": 3, "missing": 1, "extra": 0,
                          "columns": {"total_purchase_value_all": 1, "average_response_time_hours_7d": 1}}
