"""Columns that depend only on as_of (issue 15 item 1): ``customer_features`` is a view of the
stored rows (``customer_features_stored``) and the shop's as_of row (``customer_features_as_of``);
``as_of``, ``as_of_us`` and the columns a family declares ``derived`` are computed when it is read,
so refresh writes the rows of the customers it recomputes and the as_of row, nothing else."""

import pytest

from customer_activity_features import CustomerActivityFeatures
from oracle_feature_store import AS_OF_US, DAY_US
from store import catalog, registry, timeutil, user_families
from store.errors import FamilyDefinitionError


def _table(store):
    cur = store.conn.execute("SELECT * FROM customer_features WHERE shop_id = ? ORDER BY customer_id",
                             [store.shop_id])
    return [d[0] for d in cur.description], [tuple(r) for r in cur]


def _shop(store, n=12):
    for i in range(n):
        store.add_purchase(f"c{i:02d}", 10.0 + i, timeutil.iso(AS_OF_US - (i * 17 + 3) * DAY_US))
        store.add_session(f"c{i:02d}", 60.0, "mobile", timeutil.iso(AS_OF_US - (i * 11 + 1) * DAY_US))
    store.add_purchase("late", 5.0, timeutil.iso(AS_OF_US - 100 * DAY_US))
    store.set_customer_metadata("meta", {"a": 1})
    store.flush()


def test_the_view_after_refresh_equals_a_full_materialize_at_the_same_as_of():
    with CustomerActivityFeatures() as inc, CustomerActivityFeatures() as full:
        for store in (inc, full):
            _shop(store)
        inc.materialize(as_of=timeutil.from_us(AS_OF_US))
        for store in (inc, full):
            store.add_purchase("c03", 99.0, timeutil.iso(AS_OF_US + DAY_US // 2))
            store.flush()
        later = timeutil.from_us(AS_OF_US + 3 * DAY_US)
        assert inc.refresh(as_of=later)["kind"] == "refresh"
        full.materialize(as_of=later)
        names, rows = _table(inc)
        assert (names, rows) == _table(full)
        kinds = {r[1]: r[0] for r in inc.conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name LIKE 'customer_features%'")}
        assert kinds["customer_features"] == "view" and kinds["customer_features_stored"] == "table"
        stored = [r[1] for r in inc.conn.execute("PRAGMA table_info(customer_features_stored)")]
        assert "purchase_recency_days" not in stored and "as_of" not in stored and "as_of_us" not in stored
        assert [n for n in names if n not in stored] == ["as_of", "as_of_us", "purchase_recency_days"]
        row = inc.conn.execute("SELECT as_of, purchase_recency_days FROM customer_features "
                               "WHERE customer_id = 'c00'").fetchone()
        assert row == (timeutil.iso(AS_OF_US + 3 * DAY_US), 6)


def test_refresh_writes_no_row_of_a_customer_whose_events_did_not_change():
    # the families without a refresh-all hook (behavior_segments' RFM hook rewrites every row:
    # issue 15 item 3)
    families = [f.query for f in catalog.families() if f.refresh_all is None]
    with CustomerActivityFeatures() as store:
        _shop(store)
        store.materialize(as_of=timeutil.from_us(AS_OF_US), families=families)
        before = dict(store.conn.execute("SELECT customer_id, rowid FROM customer_features_stored"))
        store.add_purchase("c05", 1.0, timeutil.iso(AS_OF_US + DAY_US // 4))
        store.flush()
        result = store.refresh(as_of=timeutil.from_us(AS_OF_US + DAY_US // 2))
        assert result["kind"] == "refresh" and result["recomputed"] == 1
        after = dict(store.conn.execute("SELECT customer_id, rowid FROM customer_features_stored"))
        assert {c for c in before if before[c] != after.get(c)} == {"c05"}
        assert len(after) == len(before)
        assert store.conn.execute("SELECT purchase_recency_days FROM customer_features "
                                  "WHERE customer_id = 'c11'").fetchone() == ((11 * 17 + 3),)


def test_a_store_whose_table_is_still_a_table_keeps_working_and_refresh_rebuilds_it():
    with CustomerActivityFeatures() as store, CustomerActivityFeatures() as full:
        for s in (store, full):
            _shop(s)
        store.materialize(as_of=timeutil.from_us(AS_OF_US))
        # the layout before derived columns: one table with every column
        conn = store.conn
        conn.execute("CREATE TABLE old_layout AS SELECT * FROM customer_features")
        conn.execute("DROP VIEW customer_features")
        conn.execute("DROP TABLE customer_features_stored")
        conn.execute("DROP TABLE customer_features_as_of")
        conn.execute("ALTER TABLE old_layout RENAME TO customer_features")
        old = _table(store)
        assert store.get_all_features("c01")["total_purchase_value"] == 11.0
        assert store.get_behavior_features("c01")["customer_segment"]
        result = store.refresh(as_of=timeutil.from_us(AS_OF_US + DAY_US))
        assert result["kind"] == "full"
        full.materialize(as_of=timeutil.from_us(AS_OF_US + DAY_US))
        assert _table(store) == _table(full)
        kinds = dict(conn.execute("SELECT name, type FROM sqlite_master WHERE name LIKE 'customer_features%'"))
        assert kinds["customer_features"] == "view" and kinds["customer_features_previous"] == "table"
        previous = conn.execute("SELECT * FROM customer_features_previous ORDER BY customer_id").fetchall()
        assert [tuple(r) for r in previous] == old[1]
        # the next materialize keeps the replaced snapshot as a view with every column
        store.materialize(as_of=timeutil.from_us(AS_OF_US + 2 * DAY_US))
        kinds = dict(conn.execute("SELECT name, type FROM sqlite_master WHERE name LIKE 'customer_features%'"))
        assert kinds["customer_features_previous"] == "view"
        previous = conn.execute("SELECT * FROM customer_features_previous ORDER BY customer_id").fetchall()
        assert [tuple(r) for r in previous] == _table(full)[1]


FAMILY = """-- family: spend_features
-- order: 1000
-- tables: purchases
{derived}
SELECT
    t.target_id AS target_id,
    -- spend_total: Sum of the order values up to as_of.; real, currency units; 0.0 when none; window: all time
    TOTAL(p.order_value) AS spend_total,
    -- spend_days: Days since the first purchase.; integer, days; NULL when none; window: all time
    (MAX(t.as_of_us) - MIN(p.event_time_us)) / 86400000000 AS spend_days
FROM target AS t
LEFT JOIN purchases AS p
    ON p.shop_id = :shop_id AND p.customer_id = t.customer_id AND p.event_time_us <= t.as_of_us
GROUP BY t.target_id
"""


@pytest.mark.parametrize("line, reason", [
    ("-- derived: spend_days = (SELECT COUNT(*) FROM purchases)", "may read only as_of_us and stored"),
    ("-- derived: spend_days = as_of_us - nothing_here", "no such column: nothing_here"),
    ("-- derived: spend_days = as_of_us - spend_days", "no such column: spend_days"),
    ("-- derived: spend_days = as_of_us - :shop_id", "may read only"),
    ("-- derived: spend_nope = as_of_us", "not an all-time feature column of the family"),
    ("-- derived: spend_days as_of_us", "is 'COLUMN = SQL expression'"),
])
def test_a_bad_derived_declaration_is_refused_with_file_and_line(tmp_path, line, reason):
    path = tmp_path / "spend.sql"
    path.write_text(FAMILY.format(derived=line), encoding="utf-8")
    with pytest.raises(FamilyDefinitionError, match=reason) as info:
        user_families.load([path])
    assert f"{path}:4" in str(info.value) or str(path) in str(info.value)


def test_a_user_family_may_derive_a_column_from_as_of_and_stored_columns(tmp_path):
    path = tmp_path / "spend.sql"
    path.write_text(FAMILY.format(derived="-- derived: spend_days = (as_of_us - last_purchase_us) / 86400000000 "
                                  "- 0 * spend_total"), encoding="utf-8")
    reg = user_families.load([path])
    assert catalog.derived_columns(reg)["spend_days"].inputs == {"as_of_us", "last_purchase_us", "spend_total"}
    assert catalog.derived_columns(registry.builtin())["purchase_recency_days"].inputs == {
        "as_of_us", "last_purchase_us"}


def test_a_derived_column_without_its_inputs_is_stored_and_refresh_to_another_day_rebuilds():
    # purchase_features without purchase_last (last_purchase_us): the recency is stored as the
    # family computes it, so it moves with as_of only through a full materialize
    with CustomerActivityFeatures() as store:
        _shop(store, 3)
        store.materialize(as_of=timeutil.from_us(AS_OF_US), families=["purchase_features"])
        stored = [r[1] for r in store.conn.execute("PRAGMA table_info(customer_features_stored)")]
        assert "purchase_recency_days" in stored and "last_purchase_us" not in stored
        assert store.refresh(as_of=timeutil.from_us(AS_OF_US))["kind"] == "refresh"
        assert store.refresh(as_of=timeutil.from_us(AS_OF_US + DAY_US))["kind"] == "full"
        assert store.conn.execute("SELECT purchase_recency_days FROM customer_features "
                                  "WHERE customer_id = 'c00'").fetchone() == (4,)
