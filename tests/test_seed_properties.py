"""Property tests: every seed getter of the store against the plain-Python oracle.

Random histories of several customers, with event times clustered around the
window edges (exactly on an edge, one microsecond either side), exactly at
``as_of`` and one microsecond after it, None values, device ties and empty
histories; events are given to the store as aware datetimes in various zones
or as ISO-8601 strings (``Z`` or an offset), singly or in bulk. ``as_of`` is
fixed. A dedicated test checks that naive datetimes are local time.
"""

import os
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
import oracle
from oracle import AS_OF, GETTERS, assert_same

US = timedelta(microseconds=1)
CUSTOMERS = ("c1", "c2", "c3")
QUERIED = CUSTOMERS + ("nobody",)
ANCHOR_DAYS = (0, 1, 7, 30, 45.25, 60, 61, 90, 91, 365)
DELTAS_US = (-1, 0, 1, -1_000_000, 1_000_000, 3_600_000_000, -3_600_000_000)
DAYS = (None, 0, -1, -30, 0.25, 1, 7, 30, 45.25, 60, 61, 90, 365)

# A deeper search: SEED_PROPERTY_EXAMPLES=1000 pytest tests/test_seed_properties.py
SETTINGS = settings(max_examples=int(os.environ.get("SEED_PROPERTY_EXAMPLES", "60")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

times = st.one_of(
    st.builds(lambda d, us: AS_OF - timedelta(days=d) + us * US,
              st.sampled_from(ANCHOR_DAYS), st.sampled_from(DELTAS_US)),
    st.just(AS_OF),
    st.just(AS_OF + US),
    st.builds(lambda us: AS_OF + us * US, st.integers(-200 * 86_400_000_000, 2 * 86_400_000_000)),
)
amounts = st.one_of(st.integers(0, 1000), st.floats(0, 1e6, allow_nan=False, allow_infinity=False))
small_amounts = st.one_of(st.integers(0, 100), st.floats(0, 500, allow_nan=False, allow_infinity=False))
customers = st.sampled_from(CUSTOMERS)

purchase = st.fixed_dictionaries({"customer_id": customers, "order_value": amounts, "time": times})
session = st.fixed_dictionaries({
    "customer_id": customers, "duration_seconds": small_amounts,
    "device_type": st.sampled_from(("mobile", "desktop", "tablet", None, "")), "time": times})
cart = st.fixed_dictionaries({
    "customer_id": customers, "event_type": st.sampled_from(("abandoned", "converted")),
    "cart_value": st.one_of(st.none(), amounts), "time": times})
ticket = st.fixed_dictionaries({
    "customer_id": customers, "response_time_hours": st.one_of(st.none(), small_amounts),
    "escalated": st.booleans(), "time": times})

KOLKATA = timezone(timedelta(hours=5, minutes=30))
MINUS_7 = timezone(timedelta(hours=-7))


def present(dt, how):
    """The same instant as the store is offered it."""
    if how == "utc":
        return dt
    if how == "zone":
        return dt.astimezone(MINUS_7)
    if how == "iso_z":
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    return dt.astimezone(KOLKATA).isoformat()  # "iso_offset"


@st.composite
def histories(draw, max_size=12):
    h = {
        "purchases": draw(st.lists(purchase, max_size=max_size)),
        "sessions": draw(st.lists(session, max_size=max_size)),
        "carts": draw(st.lists(cart, max_size=max_size)),
        "tickets": draw(st.lists(ticket, max_size=max_size)),
        "how": draw(st.sampled_from(("utc", "zone", "iso_z", "iso_offset"))),
        "bulk": draw(st.booleans()),
    }
    for i, t in enumerate(h["tickets"]):
        t["ticket_id"] = f"t{i}"
    return h


def load(history, metadata=None):
    """(store, oracle) holding the same events."""
    store, orc = CustomerActivityFeatures(), oracle.Oracle()
    how, bulk = history["how"], history["bulk"]
    for p in history["purchases"]:
        orc.add_purchase(p["customer_id"], p["order_value"], p["time"])
    for s in history["sessions"]:
        orc.add_session(s["customer_id"], s["duration_seconds"], s["device_type"], s["time"])
    for c in history["carts"]:
        orc.add_cart_event(c["customer_id"], c["event_type"], c["cart_value"], c["time"])
    for t in history["tickets"]:
        orc.add_support_interaction(t["customer_id"], t["ticket_id"], t["response_time_hours"], t["escalated"],
                                    t["time"])
    if bulk:
        results = [
            store.add_purchases([{"customer_id": p["customer_id"], "order_value": p["order_value"],
                                  "purchase_date": present(p["time"], how)} for p in history["purchases"]],
                                batch_size=5),
            store.add_sessions([{"customer_id": s["customer_id"], "duration_seconds": s["duration_seconds"],
                                 "device_type": s["device_type"], "session_date": present(s["time"], how)}
                                for s in history["sessions"]], batch_size=7),
            store.add_cart_events([{"customer_id": c["customer_id"], "event_type": c["event_type"],
                                    "cart_value": c["cart_value"], "event_date": present(c["time"], how)}
                                   for c in history["carts"]]),
            store.add_support_interactions([{"customer_id": t["customer_id"], "ticket_id": t["ticket_id"],
                                             "response_time_hours": t["response_time_hours"],
                                             "escalated": t["escalated"],
                                             "interaction_date": present(t["time"], how)}
                                            for t in history["tickets"]], batch_size=3),
        ]
        for result, kind in zip(results, ("purchases", "sessions", "carts", "tickets")):
            assert (result.accepted, result.rejected, result.duplicates) == (len(history[kind]), 0, 0)
    else:
        for p in history["purchases"]:
            assert store.add_purchase(p["customer_id"], p["order_value"], present(p["time"], how)) is True
        for s in history["sessions"]:
            assert store.add_session(s["customer_id"], s["duration_seconds"], s["device_type"],
                                     present(s["time"], how)) is True
        for c in history["carts"]:
            assert store.add_cart_event(c["customer_id"], c["event_type"], c["cart_value"],
                                        present(c["time"], how)) is True
        for t in history["tickets"]:
            assert store.add_support_interaction(t["customer_id"], t["ticket_id"], t["response_time_hours"],
                                                 t["escalated"], present(t["time"], how)) is True
    for cid, meta in (metadata or {}).items():
        assert store.set_customer_metadata(cid, meta) is True
        orc.set_customer_metadata(cid, meta)
    return store, orc


@SETTINGS
@given(histories(), st.sampled_from(DAYS))
def test_every_getter_matches_oracle(history, days):
    store, orc = load(history)
    with store:
        for cid in QUERIED:
            for name, takes_days in GETTERS:
                expected = getattr(orc, name)(cid, as_of=AS_OF)  # default days
                assert_same(getattr(store, name)(cid, as_of=AS_OF), expected, f"{name}({cid!r})", ordered=True)
                if takes_days:
                    expected = getattr(orc, name)(cid, days, as_of=AS_OF)
                    assert_same(getattr(store, name)(cid, days, as_of=AS_OF), expected,
                                f"{name}({cid!r}, days={days!r})", ordered=True)


metadata_maps = st.dictionaries(customers, st.dictionaries(st.sampled_from("abc"), st.integers(-5, 5), max_size=2),
                                max_size=3)


@SETTINGS
@given(histories(), st.sampled_from(DAYS), metadata_maps)
def test_all_features_matches_oracle(history, days, metadata):
    store, orc = load(history, metadata)
    with store:
        for cid in QUERIED:
            assert_same(store.get_all_features(cid, days, as_of=AS_OF), orc.get_all_features(cid, days, as_of=AS_OF),
                        f"get_all_features({cid!r}, days={days!r})")
            assert_same(store.get_all_features(cid, as_of=AS_OF), orc.get_all_features(cid, as_of=AS_OF),
                        f"get_all_features({cid!r})")


cohort_ids = st.lists(st.sampled_from(QUERIED + ("", None)), max_size=8)


@SETTINGS
@given(histories(), st.sampled_from(DAYS), cohort_ids, metadata_maps)
def test_cohort_features_and_summary_match_oracle(history, days, ids, metadata):
    store, orc = load(history, metadata)
    with store:
        assert_same(store.get_cohort_features(ids, days, as_of=AS_OF),
                    orc.get_cohort_features(ids, days, as_of=AS_OF), "get_cohort_features")
        assert list(store.get_cohort_features(ids, days, as_of=AS_OF)) == list(
            orc.get_cohort_features(ids, days, as_of=AS_OF))  # first occurrence order
        assert_same(store.get_cohort_summary(ids, days, as_of=AS_OF),
                    orc.get_cohort_summary(ids, days, as_of=AS_OF), "get_cohort_summary")
        # a generator is accepted as well as a list
        assert_same(store.get_cohort_summary(iter(ids), days, as_of=AS_OF),
                    orc.get_cohort_summary(ids, days, as_of=AS_OF), "get_cohort_summary(iter)")


@SETTINGS
@given(histories(max_size=6))
def test_cohort_of_each_customer_equals_single_queries(history):
    """Set-based cohort answers equal the one-customer answers."""
    store, _ = load(history)
    with store:
        cohort = store.get_cohort_features(list(QUERIED), as_of=AS_OF)
        for cid in QUERIED:
            assert_same(cohort[cid], store.get_all_features(cid, as_of=AS_OF), f"cohort[{cid!r}]")


def test_empty_store_matches_oracle():
    store, orc = load({"purchases": [], "sessions": [], "carts": [], "tickets": [], "how": "utc", "bulk": False})
    with store:
        for cid in QUERIED + ("", None, 0):
            for name, _ in GETTERS:
                assert_same(getattr(store, name)(cid, as_of=AS_OF), getattr(orc, name)(cid, as_of=AS_OF), name)
            assert_same(store.get_all_features(cid, as_of=AS_OF), orc.get_all_features(cid, as_of=AS_OF))
        assert store.get_cohort_summary([], as_of=AS_OF) == {"size": 0, "aggregates": {}}


@pytest.fixture
def kolkata_local_time():
    """Run with the process's local time zone set to Asia/Kolkata (UTC+05:30, no DST)."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is not available on this platform")
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    if time.localtime(0).tm_gmtoff != 19800:
        pytest.skip("the Asia/Kolkata zone is not available (no tz database)")
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_naive_datetimes_are_local_time(kolkata_local_time):
    """Naive datetimes (event times and as_of) are local time, as datetime.now() gives."""
    naive_as_of = datetime(2025, 6, 1, 5, 30)  # == AS_OF (00:00 UTC) in Kolkata
    assert naive_as_of.astimezone(timezone.utc) == AS_OF
    with CustomerActivityFeatures() as store:
        store.add_purchase("c1", 10.0, datetime(2025, 6, 1, 5, 30))  # exactly at as_of
        store.add_purchase("c1", 20.0, datetime(2025, 6, 1, 5, 30, 0, 1))  # 1 us after as_of
        store.add_purchase("c1", 40.0, datetime(2025, 5, 2, 5, 30))  # exactly 30 days before
        store.add_purchase("c1", 80.0, datetime(2025, 5, 2, 5, 29, 59, 999999))  # 1 us before the window
        store.add_session("c1", 60, "mobile", "2025-06-01T05:30:00")  # naive ISO string: local too
        store.add_session("c1", 60, "mobile", "2025-06-01T05:30:00.000001")
        for as_of in (AS_OF, naive_as_of, "2025-06-01T05:30:00", "2025-06-01T00:00:00Z",
                      "2025-06-01T05:30:00+05:30"):
            assert store.get_total_purchase_value("c1", as_of=as_of) == 130.0
            assert store.get_total_purchase_value("c1", 30, as_of=as_of) == 50.0
            assert store.get_purchase_frequency("c1", 30, as_of=as_of) == 2.0
            assert store.get_purchase_recency("c1", as_of=as_of) == 0
            assert store.get_device_usage_pattern("c1", as_of=as_of) == {"mobile": 1}
        # one microsecond earlier as_of: the purchase at 05:30 local no longer counts
        assert store.get_total_purchase_value("c1", as_of=datetime(2025, 6, 1, 5, 29, 59, 999999)) == 120.0
        # the same wall-clock time read as UTC would be 5.5 hours later: everything counts
        assert store.get_total_purchase_value("c1", as_of=datetime(2025, 6, 1, 5, 30, tzinfo=timezone.utc)) == 150.0
