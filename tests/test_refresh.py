"""refresh(): incremental recomputation equals a full materialize, row for row."""

from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from oracle_feature_store import AS_OF_US, DAY_US, events, load
from store import timeutil

# New as_of values: the same instant, a microsecond, exactly a window length, a day, back in time.
as_of_steps = st.sampled_from((0, 1, -1, DAY_US, -DAY_US, 7 * DAY_US, 30 * DAY_US, 90 * DAY_US // 2,
                               DAY_US // 3, 365 * DAY_US))


def snapshot(store):
    cur = store.conn.execute("SELECT * FROM customer_features WHERE shop_id = ? ORDER BY customer_id",
                             [store.shop_id])
    return [tuple(r) for r in cur]


@st.composite
def operations(draw):
    ops = []
    for i in range(draw(st.integers(1, 5))):
        ops.append(("events", draw(events(max_size=8)), draw(st.booleans())))
        ops.append(("refresh", draw(as_of_steps)))
    return ops


def _renamed(history, round_no):
    out = []
    for kind, rec in history:
        rec = dict(rec)
        for key in ("order_id", "session_id", "cart_id", "ticket_id"):
            if key in rec:
                rec[key] = f"r{round_no}-{rec[key]}"
        out.append((kind, rec))
    return out


@settings(max_examples=20, deadline=None)
@given(history=events(), ops=operations(), windows=st.sets(st.sampled_from((1, 7, 30, 365)), min_size=1, max_size=2))
def test_refresh_equals_materialize(history, ops, windows):
    with CustomerActivityFeatures() as inc, CustomerActivityFeatures() as full:
        load(inc, history)
        load(full, history)
        as_of = AS_OF_US
        inc.materialize(as_of=timeutil.from_us(as_of), windows=windows)
        for round_no, op in enumerate(ops):
            if op[0] == "events":
                batch = _renamed(op[1], round_no)
                load(inc, batch)
                load(full, batch)
                if op[2]:
                    inc.set_customer_metadata(f"meta-{round_no}", {"n": round_no})
                    full.set_customer_metadata(f"meta-{round_no}", {"n": round_no})
            else:
                as_of += op[1]
                result = inc.refresh(as_of=timeutil.from_us(as_of))
                assert result["kind"] == "refresh"
                full.materialize(as_of=timeutil.from_us(as_of), windows=windows)
                assert snapshot(inc) == snapshot(full)


def test_refresh_recomputes_only_changed_customers():
    with CustomerActivityFeatures() as store:
        for i in range(20):
            store.add_purchase(f"c{i}", 10.0, timeutil.iso(AS_OF_US - 200 * DAY_US))
        store.add_purchase("recent", 10.0, timeutil.iso(AS_OF_US - 6 * DAY_US - DAY_US // 2))
        store.materialize(as_of=timeutil.from_us(AS_OF_US))
        # nothing changed, same as_of: nobody recomputed
        assert store.refresh(as_of=timeutil.from_us(AS_OF_US))["recomputed"] == 0
        # one new event: one customer
        store.add_purchase("c3", 5.0, timeutil.iso(AS_OF_US - 300 * DAY_US))
        assert store.refresh(as_of=timeutil.from_us(AS_OF_US))["recomputed"] == 1
        # a day passes: 'recent' leaves the 7-day window; the others only age (recency derived by the view)
        result = store.refresh(as_of=timeutil.from_us(AS_OF_US + DAY_US))
        assert result["recomputed"] == 1 and result["rows"] == 21
        assert store.conn.execute("SELECT purchase_recency_days, purchase_count_7d FROM customer_features "
                                  "WHERE customer_id = 'recent'").fetchone() == (7, 0)
        assert store.conn.execute("SELECT purchase_recency_days FROM customer_features "
                                  "WHERE customer_id = 'c0'").fetchone() == (201,)
        kinds = [r[0] for r in store.conn.execute("SELECT kind FROM materializations ORDER BY id")]
        assert kinds == ["full", "refresh", "refresh", "refresh"]


def test_refresh_without_a_snapshot_materializes():
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 1.0, "2025-01-01T00:00:00Z")
        result = store.refresh(as_of=timeutil.from_us(AS_OF_US))
        assert result["kind"] == "full" and result["rows"] == 1


def test_refresh_keeps_the_windows_of_the_last_run():
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 1.0, "2025-05-30T00:00:00Z")
        store.materialize(as_of=timeutil.from_us(AS_OF_US), windows=(3,))
        result = store.refresh(as_of=timeutil.from_us(AS_OF_US + DAY_US))
        assert result["kind"] == "refresh" and result["windows"] == [3]
        cols = [r[1] for r in store.conn.execute("PRAGMA table_info(customer_features)")]
        assert "purchase_count_3d" in cols and "purchase_count_7d" not in cols


def test_changed_customers_log_is_kept_by_triggers_and_cleared_by_runs():
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 1.0, "2025-01-01T00:00:00Z")
        store.add_session("b", 1.0, None, "2025-01-01T00:00:00Z")
        store.add_purchase("a", 1.0, "2025-01-01T00:00:00Z", order_id="o1")
        store.add_purchase("a", 1.0, "2025-01-01T00:00:00Z", order_id="o1")  # duplicate: no change
        store.flush()
        log = store.conn.execute("SELECT customer_id FROM changed_customers ORDER BY 1").fetchall()
        assert log == [("a",), ("b",)]
        store.materialize(as_of=timeutil.from_us(AS_OF_US))
        assert store.conn.execute("SELECT COUNT(*) FROM changed_customers").fetchone() == (0,)


# -- customers crossing window edges (refresh recomputes them family by family) ------------
_DATE_FIELDS = ("purchase_date", "session_date", "event_date", "interaction_date")
# Every edge refresh() knows: the materialized windows, the all-time frequency window (30),
# the families' edges (30, 61, 90, 180), each also one day later (crossed by a one-day step).
_REFRESH_EDGES = (0, 1, 7, 8, 30, 31, 61, 62, 90, 91, 180, 181, 365, 366)


@st.composite
def edge_histories(draw):
    """A history whose events sit on (or a microsecond / half a day off) the refresh edges."""
    out = []
    for kind, rec in draw(events(min_size=1, max_size=20)):
        rec = dict(rec)
        offset = (draw(st.sampled_from(_REFRESH_EDGES)) * DAY_US
                  + draw(st.sampled_from((-1, 0, 1, DAY_US // 2, -DAY_US // 2))))
        for key in _DATE_FIELDS:
            if key in rec:
                rec[key] = timeutil.iso(AS_OF_US - offset)
        out.append((kind, rec))
    return out


@settings(max_examples=25, deadline=None)
@given(history=edge_histories(), steps=st.lists(st.sampled_from((DAY_US, DAY_US // 2, 1, 0)), min_size=1, max_size=3),
       new=events(max_size=3))
def test_refresh_across_window_edges_equals_materialize(history, steps, new):
    with CustomerActivityFeatures() as inc, CustomerActivityFeatures() as full:
        load(inc, history)
        load(full, history)
        inc.materialize(as_of=timeutil.from_us(AS_OF_US))
        as_of = AS_OF_US
        for round_no, step in enumerate(steps):
            if round_no == 1:  # a few new events between two refreshes
                batch = _renamed(new, round_no)
                load(inc, batch)
                load(full, batch)
            as_of += step
            assert inc.refresh(as_of=timeutil.from_us(as_of))["kind"] == "refresh"
            full.materialize(as_of=timeutil.from_us(as_of))
            assert snapshot(inc) == snapshot(full)


def test_refresh_recomputes_only_the_families_an_edge_crossing_changes():
    with CustomerActivityFeatures() as inc, CustomerActivityFeatures() as full:
        for store in (inc, full):
            # each customer has one event exactly on one edge: a one-day step moves it out
            store.add_session("s7", 60.0, "mobile", timeutil.iso(AS_OF_US - 7 * DAY_US))
            store.add_purchase("p61", 10.0, timeutil.iso(AS_OF_US - 61 * DAY_US))
            store.add_purchase("p180", 10.0, timeutil.iso(AS_OF_US - 180 * DAY_US))
            store.add_purchase("p180", 20.0, timeutil.iso(AS_OF_US - 20 * DAY_US))
            store.add_cart_event("c30", "abandoned", 5.0, timeutil.iso(AS_OF_US - 30 * DAY_US))
            store.add_support_interaction("t30", "k1", None, True, timeutil.iso(AS_OF_US - 30 * DAY_US))
            store.add_purchase("quiet", 10.0, timeutil.iso(AS_OF_US - 200 * DAY_US))
            store.flush()
        inc.materialize(as_of=timeutil.from_us(AS_OF_US))
        result = inc.refresh(as_of=timeutil.from_us(AS_OF_US + DAY_US))
        assert result["kind"] == "refresh" and result["recomputed"] == 5  # not 'quiet'
        full.materialize(as_of=timeutil.from_us(AS_OF_US + DAY_US))
        assert snapshot(inc) == snapshot(full)
        row = inc.conn.execute("SELECT recency_risk, risk_score, purchase_recency_days FROM customer_features "
                               "WHERE customer_id = 'p61'").fetchone()
        assert row == (1, 25, 62)


def test_refresh_of_chosen_families_equals_materialize():
    for chosen in (["session_features"], ["purchase_features"], ["behavior_family", "cart_features"]):
        with CustomerActivityFeatures() as inc, CustomerActivityFeatures() as full:
            for store in (inc, full):
                store.add_session("a", 1.0, None, timeutil.iso(AS_OF_US - 7 * DAY_US))
                store.add_purchase("a", 1.0, timeutil.iso(AS_OF_US - 61 * DAY_US))
                store.add_cart_event("b", "abandoned", 5.0, timeutil.iso(AS_OF_US - 30 * DAY_US))
                store.flush()
            inc.materialize(as_of=timeutil.from_us(AS_OF_US), families=chosen)
            inc.refresh(as_of=timeutil.from_us(AS_OF_US + DAY_US))
            full.materialize(as_of=timeutil.from_us(AS_OF_US + DAY_US), families=chosen)
            assert snapshot(inc) == snapshot(full)


def test_refresh_of_families_refreshed_for_everyone_only_adds_new_customers():
    # behavior_segments alone: every family of the snapshot is brought forward for everyone by
    # its refresh-all hook, which updates rows; a customer new since the snapshot needs a row.
    for chosen in (["behavior_segments"], ["cart_features", "behavior_segments"]):
        with CustomerActivityFeatures() as inc, CustomerActivityFeatures() as full:
            for store in (inc, full):
                store.add_purchase("a", 1.0, timeutil.iso(AS_OF_US - 61 * DAY_US))
                store.add_purchase("b", 3.0, timeutil.iso(AS_OF_US - 2 * DAY_US))
                store.flush()
            inc.materialize(as_of=timeutil.from_us(AS_OF_US), families=chosen)
            for store in (inc, full):
                store.add_purchase("new", 2.0, timeutil.iso(AS_OF_US + DAY_US // 2))
                store.flush()
            inc.refresh(as_of=timeutil.from_us(AS_OF_US + DAY_US))
            full.materialize(as_of=timeutil.from_us(AS_OF_US + DAY_US), families=chosen)
            assert [r[1] for r in snapshot(full)] == ["a", "b", "new"]
            assert snapshot(inc) == snapshot(full)


@st.composite
def segment_histories(draw):
    """Purchases on (or a microsecond / half a day off) the 'new' rule's edge (NEW_CUSTOMER_DAYS,
    one day more or less) and anywhere in the year before, and other events."""
    from store.rules import NEW_CUSTOMER_DAYS
    out = []
    for kind, rec in draw(events(min_size=1, max_size=20)):
        rec = dict(rec)
        if kind == "purchase" and draw(st.booleans()):
            days = NEW_CUSTOMER_DAYS + draw(st.sampled_from((-1, 0, 1)))
            rec["purchase_date"] = timeutil.iso(AS_OF_US - days * DAY_US
                                                + draw(st.sampled_from((-1, 0, 1, DAY_US // 2, -DAY_US // 2))))
        out.append((kind, rec))
    return out


@settings(max_examples=30, deadline=None)
@given(history=segment_histories(), steps=st.lists(st.sampled_from((DAY_US, DAY_US // 2, 1, 0, -DAY_US, 40 * DAY_US)),
                                                    min_size=1, max_size=3),
       new=events(max_size=4), chosen=st.sampled_from((["cart_features", "behavior_segments"],
                                                      ["session_features", "behavior_segments"], None)))
def test_refresh_of_segments_equals_materialize(history, steps, new, chosen):
    # behavior_segments' refresh (store.behavior.refresh_segments) recomputes only the rows whose
    # scores or segment can change: the recomputed customers, the members between a boundary's old
    # and new value, the first purchases crossing the 'new' rule's edge. Without purchase_features
    # the last are no refresh target of another family: only that rule finds them.
    with CustomerActivityFeatures() as inc, CustomerActivityFeatures() as full:
        load(inc, history)
        load(full, history)
        inc.materialize(as_of=timeutil.from_us(AS_OF_US), families=chosen)
        as_of = AS_OF_US
        for round_no, step in enumerate(steps):
            if round_no == 1:  # new events (purchases: other customers' scores move) between two refreshes
                batch = _renamed(new, round_no)
                load(inc, batch)
                load(full, batch)
            as_of += step
            assert inc.refresh(as_of=timeutil.from_us(as_of))["kind"] == "refresh"
            full.materialize(as_of=timeutil.from_us(as_of), families=chosen)
            assert snapshot(inc) == snapshot(full)


def test_the_edges_of_all_features_follow_its_rules_constants():
    # recency_risk (all_features) flips when the last purchase crosses as_of - (threshold + 1) whole
    # days: the family declares that edge so refresh recomputes it (no second copy of the rule). Its
    # other edges are the declared edges of the 30- and 90-day helpers it reads, not the windows of
    # the families it requires (reads windows: no); the property tests above check that refresh
    # still equals a full materialize
    from store import catalog, refresh
    from store.features import LONG_WINDOW_DAYS, RECENCY_CONCERN_DAYS, SHORT_WINDOW_DAYS

    fam = catalog.family("all_features")
    assert RECENCY_CONCERN_DAYS + 1 in fam.edges_days and fam.edge_tables == ("purchases",)
    assert not fam.reads_windows and not catalog.family("behavior_family").reads_windows
    short, long = SHORT_WINDOW_DAYS, LONG_WINDOW_DAYS
    assert refresh._family_edges(fam, (7, 30, 90, 365)) == {
        ("purchases", short), ("purchases", long), ("purchases", RECENCY_CONCERN_DAYS + 1),
        ("sessions", short), ("cart_events", short), ("support_interactions", short)}


# refresh_hits (sql/materialize.sql) on its own: the (customer, window edge) pairs of the events that
# lie in an edge's interval [lo - e days, hi - e days] (e = 0: between the two as_of), as the
# interval definition gives them, for times on and beside the day boundaries of the intervals; the
# days of event_days filled by event_days_changed (what every run does), with days listed whose
# events are gone (a deleted or moved event leaves its day listed).
def _near_edges(lo, span):
    offsets = st.sampled_from((-DAY_US, -1, 0, 1, DAY_US // 2, DAY_US - 1, DAY_US, DAY_US + 1))
    return st.builds(lambda days, off: lo - days * DAY_US + off, st.integers(-2, 400), offsets) | \
        st.integers(lo - 401 * DAY_US, lo + span + DAY_US)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), lo=st.sampled_from((AS_OF_US, AS_OF_US + 1, -5 * DAY_US - 7, 0)),
       span=st.sampled_from((0, 1, DAY_US // 2, DAY_US - 1, DAY_US, DAY_US + 1, 2 * DAY_US, 400 * DAY_US)),
       edges=st.sets(st.integers(1, 400), max_size=6))
def test_refresh_hits_are_the_events_in_each_edge_interval(data, lo, span, edges):
    from store.event_days import events_sql
    from store.refresh import fill_refresh_edges, refresh_hits_sql
    hi = lo + span
    times = data.draw(st.lists(_near_edges(lo, span), max_size=30))
    gone = data.draw(st.lists(_near_edges(lo, span), max_size=10))  # listed days without events
    with CustomerActivityFeatures() as store:
        conn = store.conn
        conn.execute("CREATE TABLE events (shop_id TEXT, customer_id TEXT, event_time_us INTEGER)")
        conn.executemany("INSERT INTO events VALUES ('', ?, ?)", [(f"c{i % 7}", t) for i, t in enumerate(times)])
        conn.execute("INSERT INTO events VALUES ('other shop', 'c0', ?)", [lo])
        conn.execute("DELETE FROM changed_customers")
        conn.executemany("INSERT OR IGNORE INTO changed_customers VALUES (?, ?)",
                         [("", f"c{i % 7}") for i in range(len(times))] + [("other shop", "c0")])
        for shop in ("", "other shop"):
            conn.execute(events_sql("event_days_changed", "events", {"events"}), {"shop_id": shop, "events_table": "events"})
        conn.executemany("INSERT OR IGNORE INTO event_days VALUES ('', 'events', ? / 86400000000, ?)",
                         [(t, f"c{i % 5}") for i, t in enumerate(gone)])
        listed = set(conn.execute("SELECT customer_id, day FROM event_days WHERE shop_id = '' AND events_table = 'events'"))
        assert {(f"c{i % 7}", int(t / DAY_US)) for i, t in enumerate(times)} <= listed  # SQLite divides toward zero
        fill_refresh_edges(conn, [("events", e) for e in {0} | edges] + [("other", e) for e in range(0, 401, 3)])
        sql = refresh_hits_sql("events", {"events"})
        got = set(conn.execute(sql, {"shop_id": "", "lo_us": lo, "hi_us": hi, "events_table": "events"}))
    expected = {(f"c{i % 7}", "events", e) for i, t in enumerate(times) for e in {0} | edges
                if lo - e * DAY_US <= t <= hi - e * DAY_US}
    assert got == expected


def test_refresh_hits_read_a_range_of_days_and_seek_each_candidates_events():
    # no walk of the events (issue 15 item 2): each edge of the table (the outer loop) reads one
    # range of event_days' key, and each customer found there is checked by one seek of its
    # events in the edge's interval
    from store.refresh import fill_refresh_edges, refresh_hits_sql
    with CustomerActivityFeatures() as store:
        store.add_purchase("c1", 10.0, timeutil.iso(AS_OF_US - DAY_US))
        fill_refresh_edges(store.conn, [(t, e) for t in ("purchases", "sessions") for e in range(0, 400, 10)])
        sql = refresh_hits_sql("purchases", {"purchases"})
        plan = [row[3] for row in store.conn.execute(
            "EXPLAIN QUERY PLAN " + sql, {"shop_id": store.shop_id, "lo_us": AS_OF_US, "hi_us": AS_OF_US + DAY_US,
                                          "events_table": "purchases"})]
        steps = [p for p in plan if p.startswith(("SCAN", "SEARCH"))]
        assert not [p for p in steps if p.startswith("SCAN")], plan
        assert steps[0].startswith("SEARCH i ") and "events_table=?" in steps[0], plan
        assert steps[1].startswith("SEARCH d ") and "day>? AND day<?" in steps[1], plan
        assert any("purchases" in p and "customer_id=? AND event_time_us>? AND event_time_us<?" in p
                   for p in steps[2:]), plan


def test_refresh_drops_a_customer_whose_events_were_all_deleted():
    # a full materialize has no row for a customer with no event and no customers row; nor has a
    # refresh (found by tests/test_event_days.py's property test: refresh kept the row, zeroed)
    with CustomerActivityFeatures() as store:
        store.add_purchase("gone", 10.0, timeutil.iso(AS_OF_US - DAY_US))
        store.add_purchase("kept", 10.0, timeutil.iso(AS_OF_US - DAY_US))
        store.set_customer_metadata("meta only", {"n": 1})
        store.flush()
        store.materialize(as_of=timeutil.iso(AS_OF_US))
        with store.conn:
            store.conn.execute("DELETE FROM purchases WHERE customer_id IN ('gone', 'meta only')")
        assert store.refresh(as_of=timeutil.iso(AS_OF_US + DAY_US))["rows"] == 2
        assert [r[1] for r in snapshot(store)] == ["kept", "meta only"]
        inc = snapshot(store)
        store.materialize(as_of=timeutil.iso(AS_OF_US + DAY_US))
        assert inc == snapshot(store)


def test_refresh_runs_a_windowed_family_only_for_the_windows_an_edge_crossing_changes(monkeypatch):
    # Each customer has one event on one edge: the one-day step moves it out of that window only.
    from store.plan import Plan

    ran = {}
    real = Plan.stage_statement

    def recording(self, conn, statement, params, schema="temp"):
        ran[statement.table] = [r[0] for r in conn.execute("SELECT customer_id FROM temp.target ORDER BY 1")]
        return real(self, conn, statement, params, schema)

    with CustomerActivityFeatures() as inc, CustomerActivityFeatures() as full:
        for store in (inc, full):
            store.add_session("s7", 60.0, "mobile", timeutil.iso(AS_OF_US - 7 * DAY_US))
            store.add_session("s365", 60.0, "mobile", timeutil.iso(AS_OF_US - 365 * DAY_US))
            store.add_session("s365", 60.0, "mobile", timeutil.iso(AS_OF_US - 100 * DAY_US))
            store.add_purchase("p90", 10.0, timeutil.iso(AS_OF_US - 90 * DAY_US))
            store.add_purchase("p90", 10.0, timeutil.iso(AS_OF_US - 10 * DAY_US))
            store.add_purchase("new", 10.0, timeutil.iso(AS_OF_US - 10 * DAY_US))
            store.flush()
        inc.materialize(as_of=timeutil.from_us(AS_OF_US))
        inc.add_purchase("new", 30.0, timeutil.iso(AS_OF_US - 2 * DAY_US))  # logged: every run
        monkeypatch.setattr(Plan, "stage_statement", recording)
        inc.refresh(as_of=timeutil.from_us(AS_OF_US + DAY_US))
        monkeypatch.undo()
        full.add_purchase("new", 30.0, timeutil.iso(AS_OF_US - 2 * DAY_US))
        full.materialize(as_of=timeutil.from_us(AS_OF_US + DAY_US))
        assert snapshot(inc) == snapshot(full)
    sessions = {table: ids for table, ids in ran.items() if table.startswith("session_features")}
    assert sessions == {"session_features": ["new"], "session_features_7d": ["new", "s7"],
                        "session_features_30d": ["new"], "session_features_90d": ["new"],
                        "session_features_365d": ["new", "s365"]}
    purchases = {table: ids for table, ids in ran.items() if table.startswith("purchase_features")}
    # the all-time run reads the 90-day helper (purchases.sql: edges days: 30, 90)
    assert purchases == {"purchase_features": ["new", "p90"], "purchase_features_7d": ["new"],
                         "purchase_features_30d": ["new"], "purchase_features_90d": ["new", "p90"],
                         "purchase_features_365d": ["new"]}
