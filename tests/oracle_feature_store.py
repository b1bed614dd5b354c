"""Random histories for the feature-store tests, and the oracle of its one new feature.

The feature-store capabilities (cohorts, features_at, materialize, refresh,
export) are checked against the per-customer getters of the foundation, whose
own oracle is tests/oracle.py. The only feature added here, last_purchase_us,
has its plain-Python oracle below.
"""

from datetime import datetime, timezone

from hypothesis import strategies as st

from store import timeutil

AS_OF = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
AS_OF_US = timeutil.to_us(AS_OF)
DAY_US = timeutil.US_PER_DAY
CUSTOMERS = ("c1", "c2", "c3", "c4", "17850")
DEVICES = ("mobile", "desktop", "tablet", None)
# Offsets (microseconds before AS_OF) around every edge the features know:
# as_of itself, the materialized windows and the 30/90-day rule windows.
EDGES_DAYS = (0, 1, 2, 7, 30, 60, 61, 90, 365)


@st.composite
def offsets(draw):
    """Microseconds before AS_OF (negative: after it), clustered on window edges."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.integers(-3 * DAY_US, 400 * DAY_US))
    edge = draw(st.sampled_from(EDGES_DAYS)) * DAY_US
    return edge + draw(st.sampled_from((-1, 0, 1, -DAY_US // 2, DAY_US // 2)))


def _time(offset):
    return timeutil.iso(AS_OF_US - offset)


@st.composite
def events(draw, min_size=0, max_size=25):
    """A list of ("kind", record) with unique event ids, for the bulk API."""
    n = draw(st.integers(min_size, max_size))
    out = []
    for i in range(n):
        kind = draw(st.sampled_from(("purchase", "session", "cart_event", "support_interaction")))
        cid = draw(st.sampled_from(CUSTOMERS))
        when = _time(draw(offsets()))
        eid = f"e{draw(st.integers(0, 10**9))}-{i}"
        if kind == "purchase":
            rec = {"customer_id": cid, "order_value": draw(st.sampled_from((0.0, 5.0, 12.5, 100.0))),
                   "purchase_date": when, "order_id": eid}
        elif kind == "session":
            rec = {"customer_id": cid, "duration_seconds": draw(st.sampled_from((0.0, 30.0, 301.5))),
                   "device_type": draw(st.sampled_from(DEVICES)), "session_date": when, "session_id": eid}
        elif kind == "cart_event":
            rec = {"customer_id": cid, "event_type": draw(st.sampled_from(("abandoned", "converted"))),
                   "cart_value": draw(st.sampled_from((None, 0.0, 20.0))), "event_date": when, "cart_id": eid}
        else:
            rec = {"customer_id": cid, "ticket_id": eid,
                   "response_time_hours": draw(st.sampled_from((None, 0.5, 12.0))),
                   "escalated": draw(st.booleans()), "interaction_date": when}
        out.append((kind, rec))
    return out


BULK = {"purchase": "add_purchases", "session": "add_sessions", "cart_event": "add_cart_events",
        "support_interaction": "add_support_interactions"}


def load(store, history):
    """Write a history (from ``events()``) into a store through the bulk API."""
    for kind, method in BULK.items():
        records = [rec for k, rec in history if k == kind]
        if records:
            getattr(store, method)(records)
    store.flush()


def last_purchase_us(history, customer_id, as_of_us):
    """Oracle of last_purchase_us: the latest purchase time at or before as_of, None when none."""
    times = [timeutil.to_us(rec["purchase_date"]) for kind, rec in history
             if kind == "purchase" and rec["customer_id"] == customer_id]
    times = [t for t in times if t <= as_of_us]
    return max(times) if times else None


def approx_equal(a, b, rel=1e-9):
    """Features equal, floats within a relative tolerance (sums in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(approx_equal(a[k], b[k], rel) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return abs(a - b) <= rel * max(1.0, abs(a), abs(b))
    return a == b
