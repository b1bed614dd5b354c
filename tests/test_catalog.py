"""The feature catalog: every feature has a complete record, every record names a feature."""

import re
import shutil
import subprocess

import pytest

from customer_activity_features import CustomerActivityFeatures
from store import catalog, plan as mat
from store.resources import queries

AS_OF = "2025-06-01T12:00:00Z"
FIELDS = ("name", "type", "unit", "window_rule", "null_rule", "meaning", "query")
# getters returning a flat dict of features (the ones added by other issues when present)
GETTERS = ("get_all_features", "get_behavior_features", "get_sequence_features")


@pytest.fixture(scope="module")
def store():
    s = CustomerActivityFeatures()
    s.add_purchase("a", 10.0, "2025-05-01T00:00:00Z")
    s.add_purchase("a", 12.0, "2025-05-20T00:00:00Z")
    s.add_session("a", 60.0, "mobile", "2025-05-21T00:00:00Z")
    s.set_customer_metadata("a", {"tier": "gold"})
    s.materialize(as_of=AS_OF)
    yield s
    s.close()


def feature_names(store):
    """Every feature the store exposes: getter keys, retention flags, materialized column bases."""
    names = set()
    for getter in GETTERS:
        if hasattr(store, getter):
            names |= set(getattr(store, getter)("a", as_of=AS_OF))
    names |= set(store.get_activity_retention_tradeoff("a", as_of=AS_OF))
    windows = mat.DEFAULT_WINDOWS
    suffix = re.compile(r"_(%s)d$" % "|".join(map(str, windows)))
    cols = [r[1] for r in store.conn.execute("PRAGMA table_info(customer_features)")]
    keys = {name for name, _ in catalog.KEY_COLUMNS}
    names |= {suffix.sub("", c) for c in cols if c not in keys}
    return names


def test_every_feature_has_a_complete_record(store):
    records = {r["name"]: r for r in store.catalog()}
    for name in sorted(feature_names(store)):
        assert name in records, f"feature {name!r} has no catalog record"
        for field in FIELDS:
            assert isinstance(records[name][field], str) and records[name][field].strip(), (name, field)


def test_every_record_names_a_feature(store):
    names = feature_names(store)
    for record in store.catalog():
        assert record["name"] in names, f"catalog record {record['name']!r} names no feature"


def test_records_are_well_formed():
    known = queries()
    for f in catalog.features():
        assert f.type in catalog.TYPES
        assert f.query in known, f"{f.name}: no SQL query named {f.query!r}"
        assert f.materialize in (None, catalog.WINDOWED, catalog.FIXED)
        assert f.meaning.rstrip().endswith("."), f"{f.name}: the meaning is one sentence ending with a period"
        if f.materialize:
            assert f.query in {fam.query for fam in catalog.FAMILIES}


def test_materialized_columns_follow_the_catalog(store):
    cols = [r[1] for r in store.conn.execute("PRAGMA table_info(customer_features)")]
    plan = mat.Plan(store.conn)
    assert cols == plan.column_names
    for f in catalog.features():
        if f.materialize == catalog.WINDOWED:
            assert f.name in cols and all(f"{f.name}_{w}d" in cols for w in mat.DEFAULT_WINDOWS)
        elif f.materialize == catalog.FIXED and any(fam.query == f.query for fam in plan.families):
            assert f.name in cols and f"{f.name}_7d" not in cols


def test_feature_catalog_table_holds_the_same_records(store):
    store.catalog()
    cur = store.conn.execute("SELECT * FROM feature_catalog ORDER BY position")
    names = [d[0] for d in cur.description]
    table = [dict(zip(names, row)) for row in cur]
    records = store.catalog()
    assert [r["name"] for r in table] == [r["name"] for r in records]
    for row, record in zip(table, records):
        for field in FIELDS:
            assert row[field] == record[field]
        assert row["materialized"] == (record["materialize"] or "")


def test_a_missing_or_incomplete_record_is_detected(monkeypatch):
    broken = catalog.Feature("broken", "real", "", "rule", "rule", "Meaning.", "purchase_features")
    monkeypatch.setattr(catalog, "FEATURES", catalog.FEATURES + [broken])
    with pytest.raises(catalog.StoreError, match="empty field"):
        catalog.features()
    dup = catalog.FEATURES[0]
    monkeypatch.setattr(catalog, "FEATURES", catalog.FEATURES[:-1] + [dup])
    with pytest.raises(catalog.StoreError, match="twice"):
        catalog.features()


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="no sqlite3 shell binary")
def test_catalog_readable_from_the_sqlite3_shell(tmp_path):
    path = tmp_path / "store.db"
    with CustomerActivityFeatures(path) as s:
        s.catalog()
    out = subprocess.run(["sqlite3", str(path), "SELECT name, unit, query FROM feature_catalog "
                          "WHERE name = 'average_order_value'"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "average_order_value|currency units|purchase_features"


def test_the_catalog_is_in_the_database_from_the_first_open(tmp_path):
    import sqlite3

    from customer_activity_features import CustomerActivityFeatures
    from store import catalog as catalog_module

    path = tmp_path / "fresh.db"
    CustomerActivityFeatures(path).close()
    conn = sqlite3.connect(path)
    names = [name for (name,) in conn.execute("SELECT name FROM feature_catalog ORDER BY position")]
    conn.close()
    assert names == [f.name for f in catalog_module.features()]
