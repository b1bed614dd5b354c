"""materialize(families=...), and the staged execution behind materialize and refresh."""

import re
import sqlite3
from pathlib import Path

import pytest

from customer_activity_features import CustomerActivityFeatures, UnknownNameError
from store import catalog, parallel, plan as mat, runs
from store.errors import StoreError
from store.resources import query

AS_OF = "2025-06-30T00:00:00Z"
LATER = "2025-07-02T00:00:00Z"
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
SEED = list(catalog.SEED_FAMILIES) + ["all_features", "primary_device"]


def _shop(store):
    store.add_purchase("p", 10.0, "2025-06-01T00:00:00Z", order_id="o1")
    store.add_purchase("p", 20.0, "2025-06-20T00:00:00Z", order_id="o2")
    store.add_session("s", 60.0, "mobile", "2025-06-02T00:00:00Z")
    store.add_cart_event("c", "abandoned", 5.0, "2025-06-03T00:00:00Z")
    store.add_support_interaction("t", "k1", 2.0, True, "2025-06-04T00:00:00Z")
    store.set_customers_metadata({"m": {"segment": "new"}})


def _temp_tables(store):
    return sorted(r[0] for r in store.conn.execute("SELECT name FROM temp.sqlite_master WHERE type = 'table'"))


def test_families_limit_the_columns_and_refresh_and_export_keep_them(tmp_path):
    with CustomerActivityFeatures() as store:
        _shop(store)
        result = store.materialize(as_of=AS_OF, families=SEED)
        cols = runs.table_columns(store.conn)
        assert result["columns"] == len(cols)
        assert "purchase_count_30d" in cols and "primary_device" in cols
        assert not any(c.startswith("sequence_") for c in cols)
        full = mat.Plan(store.conn).column_names
        assert set(cols) < set(full)
        store.add_purchase("p", 5.0, "2025-07-01T00:00:00Z", order_id="o3")
        run = store.refresh(as_of=LATER)
        assert run["kind"] == "refresh" and runs.table_columns(store.conn) == cols
        again = [tuple(r) for r in store.conn.execute("SELECT * FROM customer_features ORDER BY customer_id")]
        store.materialize(as_of=LATER, families=SEED)
        assert again == [tuple(r) for r in store.conn.execute("SELECT * FROM customer_features ORDER BY customer_id")]
        out = store.export(tmp_path / "f.csv")
        assert out["columns"] == len(cols) and out["source"] == "materialized"


def test_every_family_by_default_and_the_allowlist():
    with CustomerActivityFeatures() as store:
        _shop(store)
        names = store.materialize_families()
        assert names == [f.query for f in catalog.FAMILIES]
        assert store.materialize(as_of=AS_OF)["columns"] == len(mat.Plan(store.conn).column_names)
        with pytest.raises(UnknownNameError, match="unknown feature family 'nope'"):
            store.materialize(as_of=AS_OF, families=["purchase_features", "nope"])
        with pytest.raises(ValueError):
            store.materialize(as_of=AS_OF, families="purchase_features")
        with pytest.raises(ValueError):
            store.materialize(as_of=AS_OF, families=[])


def test_one_family_gives_the_same_values_as_every_family():
    with CustomerActivityFeatures() as store:
        _shop(store)
        store.materialize(as_of=AS_OF, families=["purchase_features"])
        one = {r[0]: r[1:] for r in store.conn.execute(
            "SELECT customer_id, purchase_count_30d, total_purchase_value, purchase_recency_days "
            "FROM customer_features")}
        store.materialize(as_of=AS_OF)
        every = {r[0]: r[1:] for r in store.conn.execute(
            "SELECT customer_id, purchase_count_30d, total_purchase_value, purchase_recency_days "
            "FROM customer_features")}
        assert one == every and {"p", "s", "c", "t"} <= set(one)


def test_staged_tables_are_dropped_after_a_run_and_after_a_failure(monkeypatch):
    with CustomerActivityFeatures() as store:
        _shop(store)
        before = _temp_tables(store)
        store.materialize(as_of=AS_OF)
        store.refresh(as_of=LATER)
        assert _temp_tables(store) == before
        monkeypatch.setattr(mat.Plan, "staged_insert_sql", lambda self, table: "INSERT INTO nowhere VALUES (1)")
        with pytest.raises(sqlite3.OperationalError):
            store.materialize(as_of=AS_OF)
        assert _temp_tables(store) == before


def test_all_customer_targets_read_the_tables_of_the_all_customers_view():
    """fill_targets_all_customers lists the view's tables arm by arm: they must stay the same."""
    with CustomerActivityFeatures() as store:
        view = store.conn.execute("SELECT sql FROM sqlite_master WHERE name = 'all_customers'").fetchone()[0]
    in_view = set(re.findall(r"FROM\s+(\w+)", view))
    in_query = set(re.findall(r"FROM\s+(\w+)\s+WHERE shop_id", query("fill_targets_all_customers")))
    assert in_query
    assert in_view == in_query


def test_targets_cover_a_customer_seen_in_only_one_table():
    with CustomerActivityFeatures() as store:
        _shop(store)
        store.add_interactions([{"customer_id": "i", "event_type": "page_view",
                                 "event_date": "2025-06-05T00:00:00Z"}])
        store.materialize(as_of=AS_OF, families=["purchase_features"])
        got = [r[0] for r in store.conn.execute("SELECT customer_id FROM customer_features ORDER BY 1")]
        view = [r[0] for r in store.conn.execute(
            "SELECT DISTINCT customer_id FROM all_customers WHERE shop_id = '' ORDER BY 1")]
        assert got == view and "i" in got


def test_alias_t_names_only_the_target_relation_in_sql_files():
    """The alias t names the target relation only (the convention of docs/feature_store.md)."""
    for path in SQL_DIR.glob("*.sql"):
        text = path.read_text()
        for m in re.finditer(r"(\w+)\s+(?i:AS)\s+t\b(?!\w)", text):
            assert m.group(1).lower() == "target", f"{path.name}: {m.group(0)!r}"
        assert not re.search(r"\)\s+t\b(?!\w)", text), path.name


# -- workers: customer ranges computed by parallel worker processes --------------------------
def _file_shop(path, customers=12, timezone="UTC"):
    store = CustomerActivityFeatures(str(path), timezone=timezone)
    for i in range(customers):
        cid = f"c{i:02d}"
        store.add_purchase(cid, 10.0 + i, f"2025-06-{1 + i % 28:02d}T00:00:00Z", order_id=f"o{i}")
        store.add_purchase(cid, 3.0, "2025-06-29T12:00:00Z", order_id=f"x{i}")
        if i % 2:
            store.add_session(cid, 60.0 + i, "mobile" if i % 3 else "desktop", "2025-06-02T00:00:00Z")
        if i % 3 == 0:
            store.add_cart_event(cid, "abandoned", 5.0, "2025-06-03T00:00:00Z")
    store.add_session("only-sessions", 5.0, "tablet", "2025-06-10T00:00:00Z")
    store.set_customers_metadata({"zz-metadata-only": {"segment": "new"}})
    store.flush()
    return store


def _table(store):
    return [tuple(r) for r in store.conn.execute("SELECT * FROM customer_features ORDER BY shop_id, customer_id")]


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_give_the_same_table_as_one_process(tmp_path, workers):
    with _file_shop(tmp_path / "shop.db") as store:
        store.materialize(as_of=AS_OF)
        one = _table(store)
        result = store.materialize(as_of=AS_OF, workers=workers)
        assert _table(store) == one
        assert result["rows"] == result["recomputed"] == len(one)
        attached = [r[1] for r in store.conn.execute("PRAGMA database_list")]
        assert attached == ["main", "temp"] or attached == ["main"]


def test_workers_use_the_store_timezone(tmp_path):
    with _file_shop(tmp_path / "shop.db", timezone="America/New_York") as store:
        store.materialize(as_of=AS_OF)
        one = _table(store)
        store.materialize(as_of=AS_OF, workers=2)
        assert _table(store) == one


def test_workers_keep_other_shops_rows(tmp_path):
    path = tmp_path / "shop.db"
    _file_shop(path).close()
    with CustomerActivityFeatures(str(path), shop_id="other") as other:
        other.add_purchase("a", 1.0, "2025-06-01T00:00:00Z")
        other.materialize(as_of=AS_OF)
    with CustomerActivityFeatures(str(path)) as store:
        store.materialize(as_of=AS_OF)
        one = _table(store)
        store.materialize(as_of=AS_OF, workers=2)
        assert _table(store) == one
        assert ("other", "a") in [r[:2] for r in one]


def test_workers_on_an_in_memory_store_compute_in_process():
    with CustomerActivityFeatures() as store:
        _shop(store)
        store.materialize(as_of=AS_OF)
        one = _table(store)
        store.materialize(as_of=AS_OF, workers=4)
        assert _table(store) == one


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, 65])
def test_workers_must_be_a_small_whole_number(bad):
    with CustomerActivityFeatures() as store:
        with pytest.raises(ValueError, match="workers"):
            store.materialize(as_of=AS_OF, workers=bad)


def test_a_failed_worker_keeps_the_old_snapshot(tmp_path, monkeypatch):
    with _file_shop(tmp_path / "shop.db") as store:
        store.materialize(as_of=AS_OF)
        before = _table(store)
        monkeypatch.setenv("PYTHONPATH", "")
        real = parallel._start_worker

        def broken(task):
            task = dict(task, db=str(tmp_path / "missing.db"))
            return real(task)

        monkeypatch.setattr(parallel, "_start_worker", broken)
        with pytest.raises(StoreError, match="worker failed"):
            store.materialize(as_of=LATER, workers=2)
        assert _table(store) == before
        assert [r[1] for r in store.conn.execute("PRAGMA database_list")] in (["main"], ["main", "temp"])
        store.add_purchase("c00", 1.0, "2025-07-01T00:00:00Z", order_id="late")
        store.refresh(as_of=LATER)  # the store still works
