"""Users' own feature families (issue 12, item 3): family files registered from the user's folder
(feature_paths=, caf --features, CAF_FEATURES) appear everywhere a built-in family does, and a
file that is not a read-only, well-formed family is refused with its file, line and reason."""

import csv
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures, FamilyDefinitionError
from store import registry, timeutil

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "user_features.sql"
BASE = datetime(2025, 1, 1, tzinfo=timezone.utc)
COLUMNS = ("big_order_count", "big_order_value", "refunded_order_share")


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- the plain-Python oracle of docs/examples/user_features.sql ----------------------------------
def oracle(purchases, refunds, as_of, days=None):
    """purchases: [(time, value, order_id)], refunds: [(time, order_id)] of one customer."""
    seen = [p for p in purchases if p[0] <= as_of]
    windowed = [p for p in seen if days is None or p[0] >= as_of - timedelta(days=days)]
    big = [p for p in windowed if p[1] > 100]
    refunded = {order for t, order in refunds if t <= as_of}
    share = sum(1 for p in seen if p[2] in refunded) / len(seen) if seen else 0.0
    return {"big_order_count": len(big), "big_order_value": float(sum(p[1] for p in big)),
            "refunded_order_share": share}


def user_dir(tmp_path):
    folder = tmp_path / "my_features"
    folder.mkdir(exist_ok=True)
    shutil.copy(EXAMPLE, folder / "user_features.sql")
    return folder


_REFUND_IDS = itertools.count()


def fill(store, purchases, refunds, customer="c1"):
    for i, (moment, value, order) in enumerate(purchases):
        store.add_purchase(customer, value, iso(moment), order_id=order)
    for i, (moment, order) in enumerate(refunds):
        store.add_refund(customer, 1.0, iso(moment), refund_id=f"r{next(_REFUND_IDS)}", order_id=order)


HISTORY = ([(BASE + timedelta(days=1), 150.0, "o1"), (BASE + timedelta(days=20), 50.0, "o2"),
            (BASE + timedelta(days=40), 250.0, "o3"), (BASE + timedelta(days=70), 100.0, "o4")],
           [(BASE + timedelta(days=25), "o1"), (BASE + timedelta(days=80), "o3")])
AS_OF = BASE + timedelta(days=75)


def close(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and abs(a - b) < 1e-9)


def test_the_documented_example_file_works_everywhere_a_built_in_family_does(tmp_path):
    """Exactly docs/examples/user_features.sql: get_all_features (all time and a window), a cohort,
    iter_features, features_at, materialize (every window), refresh, export, catalog(),
    feature_catalog, family_sql and materialize_families."""
    db = tmp_path / "s.db"
    with CustomerActivityFeatures(db, feature_paths=[EXAMPLE]) as store:
        fill(store, *HISTORY)
        store.add_purchase("c2", 500.0, iso(BASE + timedelta(days=74)), order_id="x1")
        for days in (None, 30):
            got = store.get_all_features("c1", days, as_of=iso(AS_OF))
            want = oracle(*HISTORY, AS_OF, days)
            assert all(close(got[k], want[k]) for k in COLUMNS), (days, got, want)
            assert type(got["big_order_count"]) is int and type(got["big_order_value"]) is float
        cohort = store.get_cohort_features(["c1", "c2", "nobody"], 30, as_of=iso(AS_OF))
        assert cohort["c1"]["big_order_count"] == oracle(*HISTORY, AS_OF, 30)["big_order_count"]
        assert cohort["c2"]["big_order_count"] == 1 and cohort["nobody"]["big_order_count"] == 0
        streamed = dict(store.iter_features(as_of=iso(AS_OF)))
        assert streamed["c1"]["big_order_value"] == 400.0 and streamed["c2"]["big_order_value"] == 500.0
        summary = store.get_cohort_summary(["c1", "c2", "nobody"], 30, as_of=iso(AS_OF))["aggregates"]
        for key in COLUMNS:  # the user family's numeric columns are averaged too
            assert close(summary[key], sum(cohort[c][key] for c in cohort) / 3), (key, summary)
        assert list(summary)[-3:] == list(COLUMNS)
        cutoffs = [BASE, BASE + timedelta(days=1), AS_OF, BASE + timedelta(days=90)]
        rows = list(store.features_at([("c1", iso(c)) for c in cutoffs]))
        for got, cutoff in zip(rows, cutoffs):  # flat customer_features rows
            assert got["customer_id"] == "c1" and got["as_of_us"] == timeutil.to_us(iso(cutoff))
            want = oracle(*HISTORY, cutoff)
            assert all(close(got[k], want[k]) for k in COLUMNS), (cutoff, got, want)

        assert "big_order_features" in store.materialize_families()
        assert "big_order_features" not in CustomerActivityFeatures.materialize_families()
        store.materialize(as_of=iso(AS_OF), windows=(30, 90))
        row = store.conn.execute("SELECT big_order_count, big_order_count_30d, big_order_value_90d, "
                                 "refunded_order_share FROM customer_features WHERE customer_id = 'c1'").fetchone()
        assert row == (2, 0, 400.0, 0.25)
        run = store.conn.execute("SELECT families, all_families FROM materializations ORDER BY id DESC").fetchone()
        assert "big_order_features" in json.loads(run[0]) and run[1] == 1
        store.add_purchase("c1", 300.0, iso(AS_OF + timedelta(hours=1)), order_id="o5")
        result = store.refresh(as_of=iso(AS_OF + timedelta(days=1)))
        assert result["kind"] == "refresh" and "recomputed_from_scratch" not in result
        assert store.conn.execute("SELECT big_order_count_30d FROM customer_features WHERE customer_id = 'c1'"
                                  ).fetchone() == (1,)
        out = tmp_path / "out.csv"
        store.export(out)
        with open(out, newline="") as f:
            exported = {r["customer_id"]: r for r in csv.DictReader(f)}
        assert exported["c1"]["big_order_count_30d"] == "1" and exported["c2"]["big_order_value"] == "500.0"
        names = [r["name"] for r in store.catalog()]
        assert names[-3:] == list(COLUMNS)
        stored = store.conn.execute("SELECT name, query, added_by FROM feature_catalog WHERE query = "
                                    "'big_order_features' ORDER BY position").fetchall()
        assert [r[0] for r in stored] == list(COLUMNS)
        assert all(r[2] == f"user family file {EXAMPLE}" for r in stored)
        assert "FROM target AS t" in store.family_sql("big_order_features")


def test_the_registry_is_per_store_and_the_built_in_one_is_cached(tmp_path):
    folder = user_dir(tmp_path)
    with CustomerActivityFeatures(feature_paths=[folder]) as mine, CustomerActivityFeatures() as plain:
        for store in (mine, plain):
            fill(store, *HISTORY)
        assert "big_order_count" in mine.get_all_features("c1", as_of=iso(AS_OF))
        assert "big_order_count" not in plain.get_all_features("c1", as_of=iso(AS_OF))
        assert plain.registry is registry.builtin() and mine.registry is not registry.builtin()
        plain.materialize(as_of=iso(AS_OF))
        assert "big_order_count" not in [r[1] for r in plain.conn.execute("PRAGMA table_info(customer_features)")]
    assert registry.builtin() is registry.builtin()


# -- the property test ----------------------------------------------------------------------------
moments = st.integers(min_value=0, max_value=120 * 24).map(lambda h: BASE + timedelta(hours=h))
values = st.sampled_from([0.0, 50.0, 100.0, 100.5, 150.0, 999.0])


@st.composite
def histories(draw):
    purchases = [(t, v, f"o{i}") for i, (t, v) in enumerate(draw(st.lists(st.tuples(moments, values), max_size=8)))]
    orders = [p[2] for p in purchases] + ["unknown"]
    refunds = draw(st.lists(st.tuples(moments, st.sampled_from(orders)), max_size=4))
    times = [p[0] for p in purchases] + [t for t, _ in refunds]
    # as_of edges: at an event, at an event + the window, one microsecond before either, anywhere
    edge = st.sampled_from(times) if times else moments
    cutoff = st.one_of(moments, edge, edge.map(lambda t: t + timedelta(days=30)),
                       edge.map(lambda t: t - timedelta(microseconds=1)),
                       edge.map(lambda t: t + timedelta(days=30, microseconds=1)))
    return purchases, refunds, draw(st.lists(cutoff, min_size=1, max_size=3))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_a_user_family_equals_its_plain_python_oracle(history):
    """Random purchase/refund histories, cutoffs at the window edges: get_all_features (all time and
    30 days), features_at and the materialized row equal the oracle."""
    purchases, refunds, cutoffs = history
    with CustomerActivityFeatures(feature_paths=[EXAMPLE]) as store:
        fill(store, purchases, refunds)
        for cutoff in cutoffs:
            for days in (None, 30):
                got = store.get_all_features("c1", days, as_of=iso(cutoff))
                want = oracle(purchases, refunds, cutoff, days)
                assert all(close(got[k], want[k]) for k in COLUMNS), (cutoff, days, got, want)
        rows = list(store.features_at([("c1", iso(c)) for c in cutoffs]))
        for got, cutoff in zip(rows, cutoffs):  # flat customer_features rows
            assert got["customer_id"] == "c1" and got["as_of_us"] == timeutil.to_us(iso(cutoff))
            want = oracle(purchases, refunds, cutoff)
            assert all(close(got[k], want[k]) for k in COLUMNS), (cutoff, got, want)
        if purchases:
            store.materialize(as_of=iso(cutoffs[0]), windows=(30,))
            row = store.conn.execute("SELECT big_order_count, big_order_value, big_order_count_30d, "
                                     "big_order_value_30d, refunded_order_share FROM customer_features").fetchone()
            total, window = oracle(purchases, refunds, cutoffs[0]), oracle(purchases, refunds, cutoffs[0], 30)
            want = (total["big_order_count"], total["big_order_value"], window["big_order_count"],
                    window["big_order_value"], total["refunded_order_share"])
            assert all(close(a, b) for a, b in zip(row, want)), (row, want)
            # refresh to the last cutoff, after one more purchase and a refund of it
            late = cutoffs[-1] - timedelta(hours=1)
            fill(store, [(late, 150.0, "late")], [(late, "late")], customer="c1")
            purchases, refunds = purchases + [(late, 150.0, "late")], refunds + [(late, "late")]
            store.refresh(as_of=iso(cutoffs[-1]))
            row = store.conn.execute("SELECT big_order_count, big_order_value, big_order_count_30d, "
                                     "big_order_value_30d, refunded_order_share FROM customer_features").fetchone()
            total, window = oracle(purchases, refunds, cutoffs[-1]), oracle(purchases, refunds, cutoffs[-1], 30)
            want = (total["big_order_count"], total["big_order_value"], window["big_order_count"],
                    window["big_order_value"], total["refunded_order_share"])
            assert all(close(a, b) for a, b in zip(row, want)), ("refresh", row, want)


# -- the command line ----------------------------------------------------------------------------
def caf(*args, env=None):
    return subprocess.run([sys.executable, "-m", "store", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=ROOT)


def test_caf_features_registers_a_folder_and_caf_features_env_a_path_list(tmp_path):
    folder = user_dir(tmp_path)
    db = str(tmp_path / "s.db")
    with CustomerActivityFeatures(db) as store:
        fill(store, *HISTORY)
    done = caf("--db", db, "--features", str(folder), "materialize", "--as-of", iso(AS_OF), "--json")
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT big_order_count, refunded_order_share FROM customer_features").fetchone() == (2, 0.25)
    conn.close()
    shown = caf("--db", db, "--features", str(folder), "features", "c1", "--as-of", iso(AS_OF), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["features"]["big_order_value"] == 400.0
    other = tmp_path / "other"
    other.mkdir()
    (other / "f.sql").write_text(EXAMPLE.read_text().replace("big_order", "huge_order")
                                 .replace("refunded_order_share", "refund_share2"))
    listed = caf("--db", db, "catalog", env={"CAF_FEATURES": os.pathsep.join([str(folder), str(other)])})
    assert listed.returncode == 0, listed.stderr
    assert "big_order_count" in listed.stdout and "huge_order_count" in listed.stdout
    sql = caf("--db", db, "--features", str(folder), "catalog", "big_order_count", "--sql")
    assert sql.returncode == 0 and "INSERT INTO temp.big_order_features" in sql.stdout
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "bad.sql").write_text(EXAMPLE.read_text().replace("GROUP BY", "GROUP BYE"))
    refused = caf("--db", db, "--features", str(bad), "materialize")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"{bad / 'bad.sql'}, line 7: family big_order_features" in refused.stderr


# -- refresh sees a changed definition -----------------------------------------------------------
def test_refresh_recomputes_from_scratch_when_a_family_changed_was_added_or_removed(tmp_path):
    folder = user_dir(tmp_path)
    db = tmp_path / "s.db"
    with CustomerActivityFeatures(db) as store:
        fill(store, *HISTORY)
        store.materialize(as_of=iso(AS_OF))
        assert "recomputed_from_scratch" not in store.refresh(as_of=iso(AS_OF))
    with CustomerActivityFeatures(db, feature_paths=[folder]) as store:
        result = store.refresh(as_of=iso(AS_OF))
        assert result["kind"] == "full" and "added: big_order_features" in result["recomputed_from_scratch"]
        assert store.refresh(as_of=iso(AS_OF))["kind"] == "refresh"
    (folder / "user_features.sql").write_text(EXAMPLE.read_text().replace("> 100", "> 40"))
    with CustomerActivityFeatures(db, feature_paths=[folder]) as store:
        result = store.refresh(as_of=iso(AS_OF))
        assert "changed: big_order_features" in result["recomputed_from_scratch"]
        assert store.conn.execute("SELECT big_order_count FROM customer_features").fetchone() == (4,)
    with CustomerActivityFeatures(db) as store:
        result = store.refresh(as_of=iso(AS_OF))
        assert "removed: big_order_features" in result["recomputed_from_scratch"]
        assert "big_order_count" not in [r[1] for r in store.conn.execute("PRAGMA table_info(customer_features)")]


# -- refresh of a windowed user family that gives no row for some targets ------------------------
RECENT_BIG = """-- family: recent_big_orders
-- order: 1000
-- tables: purchases
SELECT
    t.target_id AS target_id,
    -- recent_big_count: Orders above 100 in the window.; integer, count; NULL when none (no row)
    COUNT(*) AS recent_big_count
FROM target AS t
JOIN purchases AS p
    ON p.shop_id = :shop_id
   AND p.customer_id = t.customer_id
   AND p.event_time_us <= t.as_of_us
   AND (:window_us IS NULL OR p.event_time_us >= t.as_of_us - :window_us)
   AND p.order_value > 100
GROUP BY t.target_id
"""


def test_refresh_of_a_windowed_user_family_without_rows_for_some_targets_equals_materialize(tmp_path):
    # The inner join gives no row once the order has left the window, so a full materialize stores
    # NULL there; a refresh recomputes only the run whose window the order left (issue 15: each run
    # of a windowed family for the customers its edges concern) and must store NULL too, not the
    # old count.
    (tmp_path / "recent.sql").write_text(RECENT_BIG)
    for step in (1, 7, 30):
        with CustomerActivityFeatures(feature_paths=[tmp_path]) as inc, \
                CustomerActivityFeatures(feature_paths=[tmp_path]) as full:
            for store in (inc, full):
                fill(store, [(AS_OF - timedelta(days=7), 150.0, "a7"), (AS_OF - timedelta(days=30), 150.0, "a30"),
                             (AS_OF - timedelta(days=2), 20.0, "small")], [])
                fill(store, [(AS_OF - timedelta(days=30), 500.0, "b30")], [], customer="c2")
            inc.materialize(as_of=iso(AS_OF), windows=(7, 30))
            before = inc.conn.execute("SELECT recent_big_count_7d, recent_big_count_30d FROM customer_features "
                                      "WHERE customer_id = 'c1'").fetchone()
            assert before == (1, 2)
            result = inc.refresh(as_of=iso(AS_OF + timedelta(days=step)))
            assert result["kind"] == "refresh"
            full.materialize(as_of=iso(AS_OF + timedelta(days=step)), windows=(7, 30))
            query = "SELECT * FROM customer_features ORDER BY customer_id"
            assert list(inc.conn.execute(query)) == list(full.conn.execute(query)), step
            after = inc.conn.execute("SELECT recent_big_count_7d, recent_big_count_30d FROM customer_features "
                                     "WHERE customer_id = 'c1'").fetchone()
            assert after == {1: (None, 1), 7: (None, 1), 30: (None, None)}[step]


# -- refusals ------------------------------------------------------------------------------------
def family(body, header="-- family: mine\n-- order: 1000\n-- tables: purchases\n"):
    return header + body


GOOD_BODY = """SELECT
    t.target_id AS target_id,
    -- n_orders: Orders up to as_of.; integer, count; 0 when none
    COUNT(p.event_time_us) AS n_orders
FROM target AS t
LEFT JOIN purchases AS p ON p.shop_id = :shop_id AND p.customer_id = t.customer_id
                        AND p.event_time_us <= t.as_of_us
GROUP BY t.target_id
"""

REFUSALS = [
    ("syntax", family(GOOD_BODY.replace("GROUP BY", "GROUP BYE")), 1, "SQLite cannot prepare it"),
    ("no target_id", family(GOOD_BODY.replace("t.target_id AS target_id", "t.target_id AS tid")), 1,
     "first output column must be target_id"),
    ("uncommented column", family(GOOD_BODY.replace("AS n_orders", "AS n_orders, 1 AS extra")), 1,
     "output column extra has no comment"),
    ("comment without column", family(GOOD_BODY.replace(
        "FROM target", "-- ghost: A column not in the output.; integer, count; 0 when none\nFROM target")), 1,
     "column ghost is commented but not an output column"),
    ("name of a built-in", family(GOOD_BODY.replace("n_orders", "purchase_count")), 1,
     "column purchase_count is already taken by purchase_features"),
    ("family name of a built-in", family(GOOD_BODY, "-- family: purchase_features\n-- order: 1\n"
                                         "-- tables: purchases\n"), 1, "family name purchase_features is already taken"),
    ("unknown table", family(GOOD_BODY.replace("purchases AS p", "orders AS p")), 1, "unknown table"),
    ("store table", family(GOOD_BODY.replace("purchases AS p", "materializations AS p").replace(
        "p.event_time_us", "p.as_of_us").replace("p.customer_id", "p.shop_id")), 1,
     "reads table materializations, which is not one of the store's event tables"),
    ("undeclared table", family(GOOD_BODY.replace("purchases AS p", "sessions AS p")), 1,
     "reads sessions, which its '-- tables:' line does not name"),
    ("declared non-event table", family(GOOD_BODY, "-- family: mine\n-- order: 1000\n-- tables: loads\n"), 1,
     "-- tables: names loads, which is not one of the store's event tables"),
    ("unknown parameter", family(GOOD_BODY.replace(":shop_id", ":my_shop")), 1,
     "a parameter the store does not bind"),
    ("internal header", family(GOOD_BODY, "-- family: mine\n-- order: 1000\n-- tables: purchases\n"
                                          "-- refresh all: refresh_segments\n"), 4,
     "header line 'refresh all' is not available to a user family"),
    ("not a family", "-- name: mine\nSELECT 1", 1, "a user file holds '-- family:' queries only"),
]

WRITES = [
    ("delete in a CTE", "WITH gone AS (SELECT 1) DELETE FROM purchases", "SQLITE_DELETE purchases"),
    ("delete with a CTE reading", "WITH gone AS (SELECT event_id FROM purchases) DELETE FROM purchases "
                                  "WHERE event_id IN gone", "SQLITE_DELETE purchases"),
    ("insert", "INSERT INTO purchases (shop_id, customer_id, event_time_us, event_id, order_value) "
               "SELECT '', 'x', 1, 'e', 1.0", "SQLITE_INSERT purchases"),
    ("update", "UPDATE purchases SET order_value = 0", "SQLITE_UPDATE purchases"),
    ("drop", "DROP TABLE purchases", "writes or changes the schema (SQLITE_DELETE sqlite_master"),
    ("alter", "ALTER TABLE purchases RENAME TO p2", "SQLITE_ALTER_TABLE"),
    ("create", "CREATE TABLE t2 AS SELECT * FROM purchases", "writes or changes the schema (SQLITE_INSERT sqlite_master"),
    ("attach", "ATTACH DATABASE 'elsewhere.db' AS other", "SQLITE_ATTACH"),
    ("pragma", "PRAGMA journal_mode = DELETE", "SQLITE_PRAGMA journal_mode"),
    ("two statements", "SELECT 1 AS target_id, 2 AS n_orders;\nDELETE FROM purchases", "more than one statement"),
]


def _write(tmp_path, text, name="mine.sql"):
    folder = tmp_path / "fams"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("case, text, line, reason", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_refused_family_names_the_file_the_line_and_the_reason(tmp_path, case, text, line, reason):
    path = _write(tmp_path, text)
    with pytest.raises(FamilyDefinitionError) as caught:
        CustomerActivityFeatures(feature_paths=[path.parent])
    assert caught.value.source == str(path.resolve()) and caught.value.line == line, str(caught.value)
    assert reason in caught.value.reason, str(caught.value)


def test_the_good_body_is_accepted(tmp_path):
    """The refusal cases above are one change each from this accepted family."""
    path = _write(tmp_path, family(GOOD_BODY))
    with CustomerActivityFeatures(feature_paths=[path]) as store:
        fill(store, *HISTORY)
        assert store.get_all_features("c1", as_of=iso(AS_OF))["n_orders"] == 4


def test_a_column_taken_by_another_user_family_is_refused_in_the_second_file(tmp_path):
    _write(tmp_path, family(GOOD_BODY), "a.sql")
    second = _write(tmp_path, family(GOOD_BODY, "-- family: theirs\n-- order: 1000\n-- tables: purchases\n"), "b.sql")
    with pytest.raises(FamilyDefinitionError, match="column n_orders is already taken by mine") as caught:
        CustomerActivityFeatures(feature_paths=[tmp_path / "fams"])
    assert caught.value.source == str(second.resolve())


def _dump(db):
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.mark.parametrize("case, statement, reason", WRITES, ids=[w[0] for w in WRITES])
def test_a_family_that_writes_is_refused_and_every_table_is_unchanged(tmp_path, case, statement, reason):
    """Writes are found by SQLite's authorizer while the statement is prepared (in a scratch
    database, never the store's): every table of the store is as it was."""
    db = tmp_path / "s.db"
    with CustomerActivityFeatures(db) as store:
        fill(store, *HISTORY)
        store.materialize(as_of=iso(AS_OF))
    before = _dump(db)
    path = _write(tmp_path, family("-- n_orders: x.; integer, count; 0\n" + statement))
    with pytest.raises(FamilyDefinitionError) as caught:
        CustomerActivityFeatures(db, feature_paths=[path])
    assert caught.value.source == str(path.resolve()) and caught.value.line == 1
    assert reason in caught.value.reason, str(caught.value)
    assert _dump(db) == before
    assert not (tmp_path / "elsewhere.db").exists() and not (ROOT / "elsewhere.db").exists()


def test_docs_feature_store_shows_the_example_file_unchanged():
    text = (ROOT / "docs" / "feature_store.md").read_text(encoding="utf-8")
    assert "```sql\n" + EXAMPLE.read_text(encoding="utf-8") + "```" in text
    assert "caf --features my_features/ materialize" in text


def test_partition_workers_compute_the_user_family_too(tmp_path):
    """materialize(workers=2): each worker process rebuilds the store's registry from its files."""
    with CustomerActivityFeatures(tmp_path / "s.db", feature_paths=[EXAMPLE]) as store:
        for i in range(20):
            store.add_purchase(f"c{i:02d}", 50.0 + 10 * i, iso(BASE), order_id=f"o{i}")
        select = "SELECT customer_id, big_order_count, big_order_value_30d FROM customer_features ORDER BY 1"
        store.materialize(as_of=iso(BASE + timedelta(days=10)), workers=2)
        parallel = store.conn.execute(select).fetchall()
        store.materialize(as_of=iso(BASE + timedelta(days=10)))
        assert parallel == store.conn.execute(select).fetchall()
        assert parallel[-1] == ("c19", 1, 240.0)


def test_a_table_only_column_of_a_user_family_is_materialized_but_not_a_getter_key(tmp_path):
    """`-- table only:` in a user's file: the column is in customer_features, features_at and the
    catalog, not in the dicts of get_all_features, cohorts and iter_features (as for the seed
    families' purchase_count)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    text = EXAMPLE.read_text().replace("-- tables: purchases, refunds\n",
                                      "-- tables: purchases, refunds\n-- table only: big_order_value\n", 1)
    assert "-- table only: big_order_value" in text
    (folder / "user_features.sql").write_text(text)
    at = BASE + timedelta(days=10)
    with CustomerActivityFeatures(str(tmp_path / "s.db"), feature_paths=[folder]) as store:
        fill(store, [(BASE, 150.0, "o1"), (BASE + timedelta(days=1), 20.0, "o2")], [])
        got = store.get_all_features("c1", as_of=at)
        assert got["big_order_count"] == 1 and "big_order_value" not in got
        assert "big_order_value" not in store.get_cohort_features(["c1"], as_of=at)["c1"]
        assert "big_order_value" not in next(iter(store.iter_features(["c1"], as_of=at)))[1]
        store.materialize(as_of=at)
        row = store.conn.execute("SELECT big_order_value, big_order_count FROM customer_features").fetchone()
        assert tuple(row) == (150.0, 1)
        (pit,) = store.features_at([("c1", at)])
        assert pit["big_order_value"] == 150.0
        assert "big_order_value" in {r["name"] for r in store.catalog()}
