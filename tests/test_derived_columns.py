"""Columns that depend only on as_of (issue 15 item 1): ``customer_features`` is a view of the
stored rows (``customer_features_stored``) and the shop's as_of row (``customer_features_as_of``);
``as_of``, ``as_of_us`` and the columns a family declares ``derived`` are computed when it is read,
so refresh writes the rows of the customers it recomputes and the as_of row, nothing else."""

import pytest

from customer_activity_features import CustomerActivityFeatures
from oracle_feature_store import AS_OF_US, DAY_US
from store import catalog, registry, timeutil, user_families
from store.errors import FamilyDefinitionError
from store.features import runnable


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
        assert [n for n in names if n not in stored] == ["as_of", "as_of_us", "purchase_recency_days",
                                                         "account_age_days"]
        row = inc.conn.execute("SELECT as_of, purchase_recency_days FROM customer_features "
                               "WHERE customer_id = 'c00'").fetchone()
        assert row == (timeutil.iso(AS_OF_US + 3 * DAY_US), 6)


def test_refresh_writes_no_row_of_a_customer_whose_events_did_not_change():
    # the families without a refresh-all hook (behavior_segments' hook also writes the rows whose
    # scores moved: the next test)
    families = [f.query for f in catalog.families() if f.refresh_all is None]
    with CustomerActivityFeatures() as store:
        _shop(store)
        store.materialize(as_of=timeutil.from_us(AS_OF_US), families=families)
        conn = store.conn
        conn.execute("CREATE TEMP TABLE written (customer_id TEXT)")
        for event in ("INSERT", "UPDATE", "DELETE"):
            row = "old" if event == "DELETE" else "new"
            conn.execute(f"CREATE TEMP TRIGGER log_{event.lower()} AFTER {event} ON main.customer_features_stored "
                         f"BEGIN INSERT INTO written VALUES ({row}.customer_id); END")
        rows = conn.execute("SELECT COUNT(*) FROM customer_features_stored").fetchone()[0]
        store.add_purchase("c05", 1.0, timeutil.iso(AS_OF_US + DAY_US // 4))
        store.flush()
        result = store.refresh(as_of=timeutil.from_us(AS_OF_US + DAY_US // 2))
        assert result["kind"] == "refresh" and result["recomputed"] == 1
        assert conn.execute("SELECT customer_id FROM written").fetchall() == [("c05",)]
        assert conn.execute("SELECT COUNT(*) FROM customer_features_stored").fetchone()[0] == rows
        assert store.conn.execute("SELECT purchase_recency_days FROM customer_features "
                                  "WHERE customer_id = 'c11'").fetchone() == ((11 * 17 + 3),)


def test_the_segments_refresh_writes_only_the_rows_whose_scores_or_segment_change():
    # behavior_segments is brought forward for every row (its RFM scores rank the whole shop),
    # but an UPDATE writes a row only when one of its values differs (issue 15 item 3)
    with CustomerActivityFeatures() as store:
        _shop(store)
        store.materialize(as_of=timeutil.from_us(AS_OF_US))
        conn = store.conn
        conn.execute("CREATE TEMP TABLE written (customer_id TEXT)")
        # the hook's writes: an update of its family's columns (refresh's own upsert of the
        # recomputed rows leaves them to the hook)
        columns = ", ".join(f.name for f in registry.stored_columns("behavior_segments"))
        conn.execute(f"CREATE TEMP TRIGGER count_writes AFTER UPDATE OF {columns} ON main.customer_features_stored "
                     "BEGIN INSERT INTO written VALUES (new.customer_id); END")
        before = dict((r[0], tuple(r[1:])) for r in conn.execute("SELECT customer_id, * FROM customer_features_stored"))
        store.add_purchase("c07", 500.0, timeutil.iso(AS_OF_US + DAY_US // 4))
        store.flush()
        later = AS_OF_US + DAY_US
        assert store.refresh(as_of=timeutil.from_us(later))["kind"] == "refresh"
        after = dict((r[0], tuple(r[1:])) for r in conn.execute("SELECT customer_id, * FROM customer_features_stored"))
        changed = {c for c in after if after[c] != before[c]}
        assert "c07" in changed and len(changed) < len(after)
        assert {c for (c,) in conn.execute("SELECT DISTINCT customer_id FROM written")} <= changed
        with CustomerActivityFeatures() as full:
            _shop(full)
            full.add_purchase("c07", 500.0, timeutil.iso(AS_OF_US + DAY_US // 4))
            full.flush()
            full.materialize(as_of=timeutil.from_us(later))
            assert _table(store) == _table(full)

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
    -- spend_first_us: Time of the first purchase.; integer, microseconds; NULL when none; window: all time
    MIN(p.event_time_us) AS spend_first_us{computed}
    -- spend_days: Days since the first purchase.; integer, days; NULL when none; window: all time
FROM target AS t
LEFT JOIN purchases AS p
    ON p.shop_id = :shop_id AND p.customer_id = t.customer_id AND p.event_time_us <= t.as_of_us
GROUP BY t.target_id
"""
SPEND_DAYS = "-- derived: spend_days = (as_of_us - spend_first_us) / 86400000000"


def _spend_file(tmp_path, derived=SPEND_DAYS, computed=""):
    path = tmp_path / "spend.sql"
    path.write_text(FAMILY.format(derived=derived, computed=computed), encoding="utf-8")
    return path


@pytest.mark.parametrize("line, reason", [
    ("-- derived: spend_days = (SELECT COUNT(*) FROM purchases)", "no such table: purchases"),
    ("-- derived: spend_days = as_of_us - nothing_here", "no such column: nothing_here"),
    ("-- derived: spend_days = as_of_us - spend_days", "no such column: spend_days"),
    ("-- derived: spend_days = as_of_us - :shop_id", "may read only"),
    # another family's column, even a stored all-time one: a derived column reads its own family
    ("-- derived: spend_days = as_of_us - last_purchase_us", "no such column: last_purchase_us"),
    ("-- derived: spend_nope = as_of_us", "not an all-time feature column of the family"),
    ("-- derived: spend_days as_of_us", "is 'COLUMN = SQL expression'"),
])
def test_a_bad_derived_declaration_is_refused_with_file_and_line(tmp_path, line, reason):
    path = _spend_file(tmp_path, line)
    with pytest.raises(FamilyDefinitionError, match=reason) as info:
        user_families.load([path])
    assert f"{path}, line 4" in str(info.value)


def test_a_derived_column_the_query_computes_too_is_refused(tmp_path):
    path = _spend_file(tmp_path, computed=",\n    (MAX(t.as_of_us) - MIN(p.event_time_us)) / 86400000000 AS spend_days")
    with pytest.raises(FamilyDefinitionError, match="output column spend_days appears twice .*derived"):
        user_families.load([path])


def test_a_user_family_derives_a_column_from_as_of_and_its_own_columns(tmp_path):
    path = _spend_file(tmp_path, SPEND_DAYS + " - 0 * spend_total")
    reg = user_families.load([path])
    assert catalog.derived_columns(reg)["spend_days"].inputs == {"as_of_us", "spend_first_us", "spend_total"}
    assert catalog.derived_columns(registry.builtin())["purchase_recency_days"].inputs == {
        "as_of_us", "last_purchase_us"}
    with CustomerActivityFeatures(feature_paths=[path]) as store:
        _shop(store, 3)
        as_of = AS_OF_US + DAY_US // 2
        expected = {f"c{i:02d}": (as_of - (AS_OF_US - (i * 17 + 3) * DAY_US)) // DAY_US for i in range(3)}
        expected["late"] = (as_of - (AS_OF_US - 100 * DAY_US)) // DAY_US
        expected["meta"] = None
        # the one expression, computed by the family's statements (getters, features_at) and
        # by the view over the stored columns
        assert {c: store.get_all_features(c, as_of=timeutil.from_us(as_of))["spend_days"]
                for c in expected} == expected
        rows = store.features_at([(c, timeutil.from_us(as_of)) for c in expected])
        assert {r["customer_id"]: r["spend_days"] for r in rows} == expected
        store.materialize(as_of=timeutil.from_us(as_of))
        stored = [r[1] for r in store.conn.execute("PRAGMA table_info(customer_features_stored)")]
        assert "spend_days" not in stored and "spend_first_us" in stored
        assert dict(store.conn.execute("SELECT customer_id, spend_days FROM customer_features")) == expected


def test_every_statement_computes_a_derived_column_from_its_one_declaration():
    # the family file does not compute purchase_recency_days: the statement that runs it does,
    # from the derived line's text (the view's text too)
    reg = registry.builtin()
    expr = catalog.derived_columns(reg)["purchase_recency_days"].expr
    body = "\n".join(line for line in reg.query("purchase_features").splitlines() if not line.lstrip().startswith("--"))
    assert "86400000000" not in body and "purchase_recency_days" not in body
    assert f"({expr}) AS \"purchase_recency_days\"" in runnable(reg, "purchase_features")
