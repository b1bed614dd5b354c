"""export(): materialised or on-the-fly feature rows streamed to csv or ndjson."""

import csv
import json

import pytest
from hypothesis import given, settings

from customer_activity_features import CustomerActivityFeatures, UnknownNameError
from oracle_feature_store import AS_OF, AS_OF_US, DAY_US, events, load
from store import timeutil


def table_rows(store):
    cur = store.conn.execute("SELECT * FROM customer_features WHERE shop_id = ? ORDER BY customer_id",
                             [store.shop_id])
    names = [d[0] for d in cur.description]
    return names, [list(r) for r in cur]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, list(reader)


def as_csv(value):
    return "" if value is None else str(value)


@settings(max_examples=8, deadline=None)
@given(history=events())
def test_csv_and_ndjson_equal_the_materialized_rows(tmp_path_factory, history):
    tmp = tmp_path_factory.mktemp("export")
    with CustomerActivityFeatures() as store:
        load(store, history)
        store.materialize(as_of=AS_OF)
        names, rows = table_rows(store)
        result = store.export(tmp / "f.csv")
        assert result["source"] == "materialized" and result["rows"] == len(rows)
        header, got = read_csv(tmp / "f.csv")
        assert header == names
        assert got == [[as_csv(v) for v in row] for row in rows]
        result = store.export(tmp / "f.ndjson", format="ndjson", as_of=AS_OF)
        assert result["source"] == "materialized"
        with open(tmp / "f.ndjson", encoding="utf-8") as f:
            lines = [json.loads(line) for line in f]
        assert lines == [dict(zip(names, row)) for row in rows]


def test_on_the_fly_rows_equal_a_materialization_at_that_as_of(tmp_path):
    other = timeutil.from_us(AS_OF_US - 3 * DAY_US)
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 10.0, "2025-05-27T00:00:00Z")
        store.add_purchase("b", 20.0, "2025-05-31T00:00:00Z")
        store.add_session("b", 20.0, "tablet", "2025-05-31T00:00:00Z")
        # no snapshot yet: computed on the fly
        result = store.export(tmp_path / "a.csv", as_of=other)
        assert result["source"] == "computed" and result["rows"] == 2
        store.materialize(as_of=AS_OF)
        # a snapshot at another as_of: computed on the fly, equal to materializing at `other`
        result = store.export(tmp_path / "b.csv", as_of=other)
        assert result["source"] == "computed" and result["as_of"] == timeutil.iso(AS_OF_US - 3 * DAY_US)
        store.materialize(as_of=other)
        names, rows = table_rows(store)
        assert read_csv(tmp_path / "b.csv") == (names, [[as_csv(v) for v in row] for row in rows])
        assert read_csv(tmp_path / "a.csv") == read_csv(tmp_path / "b.csv")
        # the temp table of the on-the-fly export is gone
        assert store.conn.execute("SELECT COUNT(*) FROM temp.sqlite_master "
                                  "WHERE name = 'target'").fetchone() == (0,)


def test_export_only_the_stores_shop(tmp_path):
    with CustomerActivityFeatures(shop_id="s1") as s1, CustomerActivityFeatures(s1.conn, shop_id="s2") as s2:
        s1.add_purchase("a", 1.0, "2025-05-01T00:00:00Z")
        s2.add_purchase("b", 1.0, "2025-05-01T00:00:00Z")
        s1.materialize(as_of=AS_OF)
        s2.materialize(as_of=AS_OF)
        s1.export(tmp_path / "s1.csv")
        _, rows = read_csv(tmp_path / "s1.csv")
        assert [(r[0], r[1]) for r in rows] == [("s1", "a")]
        s2.export(tmp_path / "s2.ndjson", format="ndjson", as_of="2025-05-15T00:00:00Z")
        with open(tmp_path / "s2.ndjson", encoding="utf-8") as f:
            assert [(d["shop_id"], d["customer_id"]) for d in map(json.loads, f)] == [("s2", "b")]


@pytest.mark.parametrize("fmt", ["xml", "CSV", "", None])
def test_unknown_format_is_refused(tmp_path, fmt):
    with CustomerActivityFeatures() as store:
        with pytest.raises(UnknownNameError):
            store.export(tmp_path / "x", format=fmt)
        assert not (tmp_path / "x").exists()


def test_export_streams(tmp_path):
    """Rows go from the cursor to the file one at a time (no fetchall)."""
    with CustomerActivityFeatures() as store:
        store.add_purchases({"customer_id": f"c{i:05d}", "order_value": 1.0, "purchase_date": "2025-05-01T00:00:00Z",
                             "order_id": f"o{i}"} for i in range(3000))
        store.materialize(as_of=AS_OF)
        seen = []
        store.conn.set_trace_callback(seen.append)
        result = store.export(tmp_path / "big.ndjson", format="ndjson")
        store.conn.set_trace_callback(None)
        assert result["rows"] == 3000
        assert len(seen) < 50  # a fixed number of statements, not one per row
        with open(tmp_path / "big.ndjson", encoding="utf-8") as f:
            assert sum(1 for _ in f) == 3000
