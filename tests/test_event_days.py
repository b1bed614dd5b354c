"""event_days (migration 0008): the per-day summary refresh finds the window-edge crossers in.

Every run adds the days of the logged customers' events before it consumes the change log, so
the summary lists every day with events of every customer not in the log; a deleted or moved
event leaves its day listed, and refresh still equals a full materialize.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from oracle_feature_store import AS_OF_US, DAY_US, events, load
from store import event_days, timeutil
from test_refresh import snapshot


def _true_days(conn, shop_id):
    """{(events_table, day, customer_id)} of the shop's events, from the events themselves."""
    out = set()
    for table in event_days.EVENT_TABLES:
        out |= {(table, day, cid) for day, cid in conn.execute(
            f'SELECT event_time_us / 86400000000, customer_id FROM "{table}" WHERE shop_id = ?', [shop_id])}
    return out


def _listed(conn, shop_id):
    return set(conn.execute("SELECT events_table, day, customer_id FROM event_days WHERE shop_id = ?", [shop_id]))


def test_every_event_table_has_the_columns_the_summary_reads():
    # one list, derived from the kinds the store ingests; each table has the change log's triggers
    with CustomerActivityFeatures() as store:
        triggers = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        for table in event_days.EVENT_TABLES:
            cols = {r[1] for r in store.conn.execute(f'PRAGMA table_info("{table}")')}
            assert {"shop_id", "customer_id", "event_time_us"} <= cols
            assert f"changed_customers_{table}_insert" in triggers


def test_a_run_lists_the_days_of_the_logged_customers_before_it_consumes_the_log():
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 10.0, "2025-03-01T10:00:00Z")
        store.add_session("a", 60, "mobile", "2025-03-01T23:59:59Z")
        store.add_session("b", 60, "mobile", "2025-02-27T00:00:00Z")
        store.flush()
        assert _listed(store.conn, store.shop_id) == set()  # ingest writes only the log
        store.materialize(as_of="2025-04-01T00:00:00Z")
        assert _listed(store.conn, store.shop_id) == _true_days(store.conn, store.shop_id)
        assert len(_listed(store.conn, store.shop_id)) == 3
        assert store.conn.execute("SELECT COUNT(*) FROM changed_customers").fetchone()[0] == 0


def test_an_upgraded_store_gets_the_days_of_its_events_and_refreshes_exactly(tmp_path):
    # a store at migration 0007 with a snapshot and a consumed log: 0008 builds the summary from
    # the events it holds, so the next refresh finds the crossers of events older than the step
    path = str(tmp_path / "old.db")
    with CustomerActivityFeatures(path) as store:
        for i, days in enumerate((1, 7, 8, 30, 31, 90)):
            store.add_purchase(f"c{i}", 10.0 + i, timeutil.iso(AS_OF_US - days * DAY_US + 3600_000_000))
        store.flush()
        store.materialize(as_of=timeutil.iso(AS_OF_US))
        with store.conn:  # as if 0008 had never run
            store.conn.execute("DROP TABLE event_days")
            store.conn.execute("DELETE FROM _sqlite_migrations WHERE name = '0008_event_days'")
    with CustomerActivityFeatures(path) as store:
        assert _listed(store.conn, store.shop_id) == _true_days(store.conn, store.shop_id) != set()
        assert store.refresh(as_of=timeutil.iso(AS_OF_US + DAY_US))["kind"] == "refresh"
        inc = snapshot(store)
        store.materialize(as_of=timeutil.iso(AS_OF_US + DAY_US))
        assert inc == snapshot(store)


@st.composite
def changes(draw):
    """Rounds of: delete some events, move some in time, add new ones; then a step of as_of."""
    rounds = []
    for _ in range(draw(st.integers(1, 3))):
        rounds.append((draw(st.lists(st.integers(0, 40), max_size=3)),
                       draw(st.lists(st.tuples(st.integers(0, 40), st.integers(-40, 40)), max_size=3)),
                       draw(events(max_size=4)),
                       draw(st.sampled_from((DAY_US, DAY_US // 2, 7 * DAY_US, -DAY_US)))))
    return rounds


def _edit(store, deletes, moves):
    """Delete and move (by whole days) events of the store's purchases and sessions, chosen by
    position; the change log's triggers record their customers."""
    conn = store.conn
    rows = conn.execute("SELECT 'purchases', event_id FROM purchases UNION ALL "
                        "SELECT 'sessions', event_id FROM sessions ORDER BY 1, 2").fetchall()
    if not rows:
        return
    with conn:
        for pick, days in moves:
            table, event_id = rows[pick % len(rows)]
            conn.execute(f'UPDATE "{table}" SET event_time_us = event_time_us + ? WHERE event_id = ?',
                         [days * DAY_US, event_id])
        for pick in deletes:
            table, event_id = rows[pick % len(rows)]
            conn.execute(f'DELETE FROM "{table}" WHERE event_id = ?', [event_id])


@settings(max_examples=20, deadline=None)
@given(history=events(), rounds=changes())
def test_refresh_after_deleted_moved_and_new_events_equals_materialize(history, rounds):
    with CustomerActivityFeatures() as inc, CustomerActivityFeatures() as full:
        load(inc, history)
        load(full, history)
        as_of = AS_OF_US
        inc.materialize(as_of=timeutil.from_us(as_of))
        for round_no, (deletes, moves, new, step) in enumerate(rounds):
            for store in (inc, full):
                _edit(store, deletes, moves)
                load(store, [(kind, dict(rec, **{k: f"n{round_no}-{rec[k]}" for k in
                                                  ("order_id", "session_id", "cart_id", "ticket_id") if k in rec}))
                             for kind, rec in new])
            as_of += step
            assert inc.refresh(as_of=timeutil.from_us(as_of))["kind"] == "refresh"
            full.materialize(as_of=timeutil.from_us(as_of))
            assert snapshot(inc) == snapshot(full)
            # a superset of the events' days: a deleted or moved event may leave its day listed
            assert _true_days(inc.conn, inc.shop_id) <= _listed(inc.conn, inc.shop_id)
