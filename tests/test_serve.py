"""The feature browser (issue 14 item 2): `caf serve` as a real process on a free localhost port
(a customer's features as JSON equal the store's, an unknown customer is an empty 200, never a
500, the server stops by its PID), and the Datasette metadata generated from the catalog."""

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("datasette", reason="caf serve needs the [serve] extra")

from customer_activity_features import CustomerActivityFeatures  # noqa: E402
from store import browser, catalog, synthetic  # noqa: E402

from serving import Server, get  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "user_features.sql"
FAMILIES = ["purchase_features", "session_features", "behavior_segments"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    db = tmp_path_factory.mktemp("serve") / "shop.db"
    with CustomerActivityFeatures(db) as store:
        synthetic.populate(store, 60, seed=11)
        store.materialize(as_of=synthetic.DEFAULT_END, families=FAMILIES, windows=(30,))
    return db


@pytest.fixture(scope="module")
def server(shop):
    s = Server(shop)
    yield s
    s.stop()


def test_customer_features_as_json_equal_the_store(shop, server):
    with CustomerActivityFeatures(shop, read_only=True) as store:
        row = store.conn.execute("SELECT * FROM customer_features ORDER BY customer_id LIMIT 1")
        names = [d[0] for d in row.description]
        materialised = dict(zip(names, row.fetchone()))
        cid = materialised["customer_id"]
        computed = store.get_all_features(cid, as_of=synthetic.DEFAULT_END)
    status, body = get(f"{server.base}/customer.json?customer_id={cid}&_shape=objects")
    assert status == 200
    assert body["rows"] == [materialised]  # every column, cell for cell
    shared = [k for k in computed if k in materialised]
    assert len(shared) >= 5
    for key in shared:
        value = computed[key]
        served = body["rows"][0][key]
        if isinstance(value, bool):
            value = int(value)
        assert served == pytest.approx(value), key


def test_unknown_customer_is_empty_not_an_error(server):
    status, body = get(f"{server.base}/customer.json?customer_id=nobody&_shape=objects")
    assert status == 200 and body["ok"] is True and body["rows"] == []
    status, _ = get(f"{server.base}/customer.json?_shape=objects")  # no customer_id at all
    assert status == 200
    status, body = get(f"{server.base}/customer_features/,nobody.json")  # the row page: 404
    assert status == 404


def test_canned_queries_and_pages_answer(server):
    for path in ("top_customers.json", "rejections_by_reason.json", "load_history.json",
                 "materializations.json", "customer_features_readable.json", "customer_features.json",
                 "purchases.json", "customer_features_readable.json?_shape=objects"):
        status, body = get(f"{server.base}/{path}")
        assert status == 200, (path, body)
    status, body = get(f"{server.base}/customer_features_readable.json?_shape=objects&_size=1")
    row = body["rows"][0]
    assert "last_purchase_utc" in row and (row["last_purchase_utc"] is None or row["last_purchase_utc"].endswith("Z"))
    status, body = get(f"{server.base}/top_customers.json?_shape=objects")
    values = [r["total_purchase_value"] for r in body["rows"]]
    assert values == sorted(values, reverse=True) and len(values) == 60


def test_read_only(server):
    status, body = get(f"{server.base}.json?sql=" + urllib.request.quote("CREATE TABLE x (a)"))
    assert status != 200 or not body.get("ok", True)
    status, body = get(f"{server.base}.json?sql=" + urllib.request.quote("DELETE FROM purchases"))
    assert status != 200 or not body.get("ok", True)


def test_metadata_describes_every_column(shop):
    with CustomerActivityFeatures(shop, read_only=True) as store:
        doc = browser.metadata(store.conn, store.shop_id, store.registry, database="shop")
        columns = [r[1] for r in store.conn.execute("PRAGMA table_info(customer_features)")]
        event_tables = {t: [r[1] for r in store.conn.execute(f"PRAGMA table_info({t})")]
                        for t in browser.event_tables()}
        every_table = [r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    tables = doc["databases"]["shop"]["tables"]
    described = tables["customer_features"]["columns"]
    assert set(described) == set(columns)
    assert all(described[c] and "Unit: " in described[c] for c in columns)
    types = {f.name: f.type for f in catalog.features()}
    facets = tables["customer_features"]["facets"]
    assert facets and all(types[c] in ("text", "boolean") for c in facets)
    assert {c for c in columns if types.get(c) in ("text", "boolean")} == set(facets)
    for table, cols in event_tables.items():
        assert set(tables[table]["columns"]) == set(cols)
        assert all(tables[table]["columns"][c] and "Unit: " in tables[table]["columns"][c] for c in cols)
    hidden = {t for t, v in tables.items() if v.get("hidden")}
    assert {"load_staging_online_retail", "changed_customers", "_sqlite_migrations"} <= hidden
    assert "customer_features_previous" not in every_table or "customer_features_previous" in hidden
    assert not hidden & ({"customer_features", "purchases", "rejected_events", "loads"})
    queries = doc["databases"]["shop"]["queries"]
    assert {"customer", "top_customers", "rejections_by_reason", "load_history",
            "customer_features_readable"} <= set(queries)


def test_users_families_appear_and_metadata_file(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "user_features.sql")
    db = tmp_path / "users.db"
    with CustomerActivityFeatures(db, feature_paths=[folder]) as store:
        synthetic.populate(store, 20, seed=3)
        store.materialize(as_of=synthetic.DEFAULT_END, families=["purchase_features", "big_order_features"],
                          windows=(30,))
    env = {**os.environ, "CAF_FEATURES": str(folder)}
    for name in ("meta.json", "meta.yaml"):
        out = subprocess.run([sys.executable, "-m", "store", "--db", str(db), "datasette-metadata",
                              str(tmp_path / name)], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "meta.json").read_text())
    import yaml
    assert yaml.safe_load((tmp_path / "meta.yaml").read_text()) == doc
    described = doc["databases"]["users"]["tables"]["customer_features"]["columns"]
    assert "big_order_count" in described and "big_order_count_30d" in described
    assert "the last 30 days" in described["big_order_count_30d"]
