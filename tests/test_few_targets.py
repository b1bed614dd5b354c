"""Plans suited to few targets (issue 15 item 4): for a small target set, each family's
statement reads only those targets' rows of the event tables, never the whole shop.

Checked on SQLite's own program for each statement (``EXPLAIN``), not on its text: every
cursor the statement opens on an event table (the table or one of its indexes) must be
positioned by a seek on at least ``(shop_id, customer_id)`` (or be a point lookup), never
walked from its start (``Rewind``/``Last``) nor sought on ``shop_id`` alone (the whole shop).
The statements are those a refresh of 100 customers runs (``Plan.stage_statements`` over a
100-row ``temp.target``, as ``refresh`` stages each family) and those a 100-customer
``get_cohort_features`` runs (recorded as it runs them).
"""

import pytest

from customer_activity_features import CustomerActivityFeatures
from store import behavior, features, plan, synthetic
from store.db import automatic_indexes
from store.resources import query

AS_OF = "2026-01-01T00:00:00Z"
AS_OF_US = 1_767_225_600_000_000
EVENT_TABLES = ("purchases", "sessions", "cart_events", "support_interactions", "interactions",
                "purchase_attributions", "refunds")
# Families whose values are relative to the whole shop (RFM ranks over every customer): their
# statement reads every purchase of the shop by design (a refresh ranks the stored measures
# instead, store.behavior.refresh_segments: test_a_refresh_walks_the_shop_only_...).
POPULATION_FAMILIES = {"behavior_segments"}
_SEEKS = {"SeekGE", "SeekGT", "SeekLE", "SeekLT"}
_POINT = {"Found", "NotFound", "NoConflict", "SeekRowid", "NotExists"}


def whole_shop_reads(conn, sql, params=(), tables=EVENT_TABLES):
    """[(table or index, why)] of the cursors the statement ``sql`` walks over the whole shop:
    opened on one of ``tables`` of the main database (an event table) or on one of their indexes
    and rewound, or sought on fewer than two key columns."""
    roots = {row[0]: row[1] for row in conn.execute(
        "SELECT rootpage, name FROM main.sqlite_master WHERE tbl_name IN (%s) AND rootpage > 0"
        % ", ".join("?" * len(tables)), tables)}
    program = conn.execute("EXPLAIN " + sql, params).fetchall()
    cursors, bad = {}, []
    for _, opcode, p1, p2, p3, p4, *_ in program:
        if opcode in ("OpenRead", "ReopenIdx") and p3 == 0 and p2 in roots:
            cursors[p1] = roots[p2]
        elif p1 in cursors:
            if opcode in ("Rewind", "Last"):
                bad.append((cursors[p1], opcode))
            elif opcode in _SEEKS and int(p4) < 2:
                bad.append((cursors[p1], f"{opcode} on {p4} key column"))
    return bad


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    db = tmp_path_factory.mktemp("few") / "shop.db"
    with CustomerActivityFeatures(str(db)) as store:
        synthetic.populate(store, 300, end=AS_OF)
    return str(db)


def test_a_whole_shop_read_is_seen():
    # the check itself: a statement reading the shop's purchases is caught, one per customer is not
    with CustomerActivityFeatures() as store:
        assert whole_shop_reads(store.conn, "SELECT SUM(order_value) FROM purchases WHERE shop_id = ''")
        assert whole_shop_reads(store.conn, "SELECT SUM(order_value) FROM purchases")
        assert not whole_shop_reads(store.conn, "SELECT COUNT(*) FROM purchases "
                                                "WHERE shop_id = '' AND customer_id = 'c1'")


def test_each_family_statement_reads_only_the_targets_rows(shop):
    with CustomerActivityFeatures(shop) as store:
        conn = store.conn
        p = plan.Plan(conn)
        params = p.params(store.shop_id, AS_OF_US)
        plan.fill_targets(conn, "SELECT ROW_NUMBER() OVER (ORDER BY customer_id), customer_id, :as_of_us "
                                "FROM (SELECT customer_id FROM customers WHERE shop_id = :shop_id "
                                "ORDER BY customer_id LIMIT 100)", {"shop_id": store.shop_id, "as_of_us": AS_OF_US})
        assert conn.execute("SELECT COUNT(*) FROM temp.target").fetchone()[0] == 100
        found, staged = {}, []
        with automatic_indexes(conn):
            for st in p.stage_statements():
                bound = {**params, **st.parameters}
                if st.table not in POPULATION_FAMILIES:
                    found[st.table] = whole_shop_reads(conn, st.sql, bound)
                staged.append(st.table)  # a later statement reads the tables of earlier ones
                plan.stage_keyed(conn, "temp." + st.table, st.sql, bound, st.table)
        p.unstage(conn, staged)
        plan.drop_targets(conn)
        assert len(found) > 20
        assert {name: bad for name, bad in found.items() if bad} == {}


def test_a_100_customer_cohort_reads_only_its_customers(shop):
    with CustomerActivityFeatures(shop) as store:
        ids = [row[0] for row in store.conn.execute("SELECT customer_id FROM customers ORDER BY customer_id LIMIT 100")]
        statements = []
        store.conn.set_trace_callback(statements.append)
        try:
            features = store.get_cohort_features(ids, as_of=AS_OF)
        finally:
            store.conn.set_trace_callback(None)
        assert len(features) == 100
        reads = [s for s in statements if s.lstrip().upper().startswith(("WITH", "SELECT"))]
        assert reads
        assert {s[:80]: bad for s in reads if (bad := whole_shop_reads(store.conn, s))} == {}


def _target_walks(conn, sql, params):
    """The EXPLAIN QUERY PLAN lines of ``sql`` that walk a relation once per row of another
    (a SCAN on the right of a LEFT JOIN): what the join of a family's derived columns to its
    target must never be (store.features.runnable)."""
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)
            if row[3].startswith("SCAN") and "LEFT-JOIN" in row[3]]


def test_a_derived_columns_join_to_its_target_is_a_lookup(shop):
    # the derived columns (purchase_recency_days, account_age_days) join each row of their
    # family to its target's as_of_us: a lookup by target_id in every statement that runs a
    # family with derived columns (materialize's, a cohort's, refresh_segments' over every row)
    with CustomerActivityFeatures(shop) as store:
        conn = store.conn
        store.materialize(as_of=AS_OF, families=["purchase_features", "behavior_segments"])
        params = dict(features.parameters(store.shop_id), as_of_us=AS_OF_US)
        with automatic_indexes(conn):
            # refresh_segments' last statement, over every stored row, its scores from the staged boundaries
            conn.execute("CREATE TEMP TABLE behavior_rfm_boundaries_new (k INTEGER PRIMARY KEY, last_us, frequency, "
                         "monetary)")
            every_row = behavior.segments_rows_sql(
                "target AS NOT MATERIALIZED (SELECT rowid AS target_id, customer_id, :as_of_us AS as_of_us "
                "FROM main.customer_features_stored WHERE shop_id = :shop_id)")
            assert _target_walks(conn, every_row, params) == []
            conn.execute("DROP TABLE temp.behavior_rfm_boundaries_new")
            p = plan.Plan(conn, families=["purchase_features", "behavior_segments"])
            plan.fill_targets(conn, query("fill_targets_all_customers"),
                              plan.all_customers_params(store.shop_id, AS_OF_US))
            bound = p.params(store.shop_id, AS_OF_US)
            for st in p.stage_statements(one_as_of=False):
                if "derived_as_of" in st.sql:
                    assert _target_walks(conn, st.sql, {**bound, **st.parameters}) == [], st.table
            plan.drop_targets(conn)


class _Explaining:
    """A connection whose execute first records the whole-shop reads of the statement
    (whole_shop_reads, on the same connection, before it runs); everything else is the
    connection's."""

    def __init__(self, conn):
        self._conn, self.reads = conn, []

    def execute(self, sql, params=()):
        if sql.lstrip().upper().startswith(("WITH", "SELECT", "INSERT", "UPDATE", "--")):
            self.reads.append((sql, whole_shop_reads(self._conn, sql, params, EVENT_TABLES + ("event_days",)),
                               whole_shop_reads(self._conn, sql, params, ("customer_features_stored",))))
        return self._conn.execute(sql, params)

    def executemany(self, sql, rows):
        rows = list(rows)
        if rows:
            self.execute(sql, rows[0])
            rows = rows[1:]
        return self._conn.executemany(sql, rows)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_a_refresh_walks_no_event_table(shop, tmp_path):
    # after 1% of the customers buy and a day passes, no statement of refresh() reads an event
    # table over the whole shop: the window-edge crossers come from ranges of event_days
    # (refresh_hits, issue 15 item 2), which the run keeps from the change log (event_days_changed,
    # the log the outer loop); the segments' ranks are taken from the stored measures
    # (store.behavior.refresh_segments), not from the purchases
    import shutil

    from store import refresh, timeutil

    db = str(tmp_path / "refresh.db")
    shutil.copy(shop, db)
    with CustomerActivityFeatures(db) as store:
        store.materialize(as_of=AS_OF)
        ids = [row[0] for row in store.conn.execute("SELECT customer_id FROM customers ORDER BY customer_id LIMIT 3")]
        for i, cid in enumerate(ids):
            store.add_purchase(cid, 12.5, timeutil.iso(AS_OF_US + 3_600_000_000 * (i + 1)), order_id=f"late-{i}")
        store.flush()
        conn = _Explaining(store.conn)
        result = refresh.refresh(conn, store.shop_id, AS_OF_US + timeutil.US_PER_DAY)
    assert result["kind"] == "refresh"
    assert any("behavior_rfm_boundaries_new" in sql for sql, *_ in conn.reads)  # the segments were brought forward
    walks = {" ".join(sql.split())[:120]: bad for sql, bad, _ in conn.reads if bad}
    assert not walks, walks
    assert any("JOIN event_days" in sql for sql, *_ in conn.reads)  # refresh_hits, by ranges of days
    assert any("INSERT OR IGNORE INTO event_days" in sql for sql, *_ in conn.reads)  # the run keeps it
    # and no statement walks the shop's stored rows but the run record's count of them (its
    # primary key) and the segments' boundaries: walks of the stored measures' indexes (the
    # population's size, a position in each order; store.behavior.refresh_segments)
    stored = {" ".join(sql.split()): bad for sql, _, bad in conn.reads if bad}
    count = "SELECT COUNT(*) FROM customer_features WHERE shop_id = ?"
    assert stored.pop(count) == [("sqlite_autoindex_customer_features_stored_1", "SeekGE on 1 key column")]
    assert stored and all("behavior_rfm_members" in sql or "behavior_rfm_boundaries" in sql for sql in stored), stored
    assert all(name.startswith("customer_features_rfm_") for bad in stored.values() for name, _ in bad), stored
