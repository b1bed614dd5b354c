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
        # a day passes: 'recent' leaves the 7-day window; the others only age (recency by UPDATE)
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
