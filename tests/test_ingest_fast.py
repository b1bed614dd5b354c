"""The bulk fast paths (store.validate.FAST_ROWS): a record they accept becomes exactly the row the
general path (validate.*_row, used by the single add_* calls) makes; anything else goes the general
way, so rejections and their reasons do not change."""

import json
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures, InvalidEventError
from store import timeutil, validate
from store.ingest import KINDS, _record_values

FAST_KINDS = sorted(validate.FAST_ROWS)
BASE = datetime(2025, 5, 1, 12, 0, 0)

texts = st.one_of(
    st.sampled_from(["c1", "C0000001", "", "x\x00y", "caf\u00e9", "\ud800", " 17 ", "O-1"]),
    st.text(max_size=6),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-5, max_value=2 ** 64),
    st.sampled_from([0.0, -0.0, 1.5, 10, True, False, float("nan"), 2 ** 53, 2 ** 53 + 1]),
)
iso_strings = st.builds(
    lambda delta, fmt, suffix: (BASE + timedelta(microseconds=delta)).strftime(fmt) + suffix,
    st.integers(min_value=-10 ** 15, max_value=10 ** 15),
    st.sampled_from(["%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S",
                     "%Y-%m-%dT%H", "%Y%m%dT%H%M%S"]),
    st.sampled_from(["Z", "z", "", "+00:00", "+02:00Z", "ZZ", " Z", "Z ", "-05:00"]),
)
times = st.one_of(
    iso_strings,
    st.sampled_from(["", "Z", "2025-13-01T00:00:00Z", "2025-02-30T00:00:00Z", "not a dateZ", "2025-05-01TZ",
                     " 2025-05-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z"]),
    st.datetimes(timezones=st.sampled_from([None, timezone.utc])),
    st.dates(),
    st.none(),
    st.integers(),
)
values = st.one_of(texts, numbers, times, st.none(), st.booleans(),
                   st.sampled_from(["abandoned", "converted", "mobile", "desktop"]))


COMMON = {
    "purchase": {"customer_id": "c1", "order_value": 12.5, "purchase_date": "2025-05-01T12:00:00.250000Z",
                 "order_id": "o1"},
    "session": {"customer_id": "c1", "duration_seconds": 30.0, "device_type": "mobile",
                "session_date": "2025-05-01T12:00:00Z", "session_id": "s1"},
    "cart_event": {"customer_id": "c1", "event_type": "abandoned", "cart_value": None,
                   "event_date": "2025-05-01T12:00:00Z", "cart_id": "k1"},
    "support_interaction": {"customer_id": "c1", "ticket_id": "t1", "response_time_hours": 2.0,
                            "escalated": True, "interaction_date": "2025-05-01T12:00:00Z"},
}
TYPICAL = {
    "customer_id": texts, "order_value": numbers, "duration_seconds": numbers, "cart_value": numbers,
    "response_time_hours": numbers, "event_type": st.sampled_from(["abandoned", "converted", "other", 1]),
    "escalated": st.sampled_from([True, False, None, 0, 1, 2, "yes"]),
    "device_type": st.sampled_from(["mobile", "", None, 3, "t\u00e9l\u00e9", "\ud800"]),
}


def record_strategy(kind):
    """The common shape with some fields replaced, removed or added (so both paths are exercised)."""
    fields = KINDS[kind].fields

    def field_value(name):
        strategy = times if name.endswith("_date") or name.startswith("session_") else TYPICAL.get(name, values)
        return st.one_of(strategy, values)

    changes = st.dictionaries(st.sampled_from(fields), st.none(), max_size=3).flatmap(
        lambda keys: st.fixed_dictionaries({name: field_value(name) for name in keys}))
    dropped = st.sets(st.sampled_from(fields), max_size=2)
    extra = st.dictionaries(st.sampled_from(["bogus", "order_vale"]), values, max_size=1)
    return st.builds(lambda over, drop, more: {k: v for k, v in (COMMON[kind] | over).items() if k not in drop}
                     | (more if len(more) and not drop else {}),
                     changes, dropped, extra)


def general(kind, record, now):
    k = KINDS[kind]
    try:
        return k.row("shop", now, *_record_values(k, record))
    except validate.Rejection as rejection:
        return rejection.reason


def as_stored(row):
    """A row with the fast path's NULL (a NaN, which SQLite binds as NULL) as None."""
    return tuple(None if isinstance(v, float) and v != v else v for v in row)


def same(a, b):
    """Equal rows as SQLite stores them, with the same Python types."""
    a, b = as_stored(a), as_stored(b)
    return a == b and all(type(x) is type(y) for x, y in zip(a, b))


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_fast_row_is_the_general_row_or_declines(kind):
    fast = validate.FAST_ROWS[kind]("shop", KINDS[kind].fields)

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(record_strategy(kind))
    def check(record):
        row = fast(record)
        if row is None:
            return
        expected = general(kind, record, 0)
        assert not isinstance(expected, str), f"fast path accepted what the general path rejects: {expected}"
        assert same(row, expected)

    check()


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_fast_row_takes_the_common_shape(kind):
    record = COMMON[kind]
    row = validate.FAST_ROWS[kind]("shop", KINDS[kind].fields)(record)
    assert row is not None and same(row, general(kind, record, 0))


@given(iso_strings)
@settings(max_examples=300, deadline=None)
def test_iso_z_us_agrees_with_to_us(text):
    fast = validate.iso_z_us(text)
    if fast is None:
        return
    assert fast == timeutil.to_us(text)


def test_bulk_mixes_fast_and_general_records_in_order_with_reasons():
    records = [
        {"customer_id": "a", "order_value": 1.0, "purchase_date": "2025-05-01T00:00:00Z", "order_id": "o1"},
        {"customer_id": "a", "order_value": -1.0, "purchase_date": "2025-05-01T00:00:00Z", "order_id": "o2"},
        {"customer_id": 7, "order_value": 2, "purchase_date": date(2025, 5, 2), "order_id": 3},
        {"customer_id": "b", "order_value": 3.0, "purchase_date": "2025-05-03T00:00:00Z", "order_id": "o1"},
        {"customer_id": "b", "order_value": 3.0, "purchase_date": "bad", "order_id": "o4"},
        "not a dict",
        {"customer_id": "c", "order_value": 4.0, "purchase_date": "2025-05-04T00:00:00+00:00"},
    ]
    with CustomerActivityFeatures() as store:
        result = store.add_purchases(records, batch_size=3)
        assert (result.accepted, result.rejected, result.duplicates) == (3, 3, 1)
        assert result.offered == len(records)
        rows = store.conn.execute("SELECT customer_id, event_id, order_value FROM purchases "
                                  "ORDER BY customer_id").fetchall()
        assert rows[:2] == [("7", "3", 2.0), ("a", "o1", 1.0)]  # o1 of 'b' is a duplicate of the first
        assert rows[2][0] == "c" and len(rows[2][1]) == 16  # a generated event id
        reasons = [r for (r,) in store.conn.execute("SELECT reason FROM rejected_events ORDER BY id")]
        assert reasons[0] == "order_value: is negative"
        assert reasons[1].startswith("purchase_date: unparseable date")
        assert reasons[2] == "record: must be a dict, got str"
        payloads = [json.loads(p) for (p,) in store.conn.execute("SELECT payload FROM rejected_events ORDER BY id")]
        assert payloads[2] == {"record": "not a dict"}


def test_strict_bulk_names_the_record_after_fast_records():
    records = [{"customer_id": "a", "order_value": 1.0, "purchase_date": "2025-05-01T00:00:00Z",
                "order_id": f"o{i}"} for i in range(7)]
    records[5]["order_value"] = float("nan")
    with CustomerActivityFeatures(strict=True) as store:
        with pytest.raises(InvalidEventError, match=r"order_value: record 5: is NaN") as info:
            store.add_purchases(records, batch_size=3)
        assert isinstance(info.value, ValueError)
        # the first batch (records 0-2) was committed; the batch holding record 5 was not
        assert store.conn.execute("SELECT count(*) FROM purchases").fetchone()[0] == 3


def test_fast_null_is_stored_as_null():
    """The fast path's NULL is a NaN: SQLite must store it as NULL (in REAL, INTEGER and TEXT columns)."""
    record = {"customer_id": "c1", "duration_seconds": 30.0, "device_type": None,
              "session_date": "2025-05-01T12:00:00Z", "session_id": "s1"}
    with CustomerActivityFeatures() as store:
        store.add_sessions([record])
        store.add_cart_events([{"customer_id": "c1", "event_type": "converted", "cart_value": None,
                                "event_date": "2025-05-01T12:00:00Z", "cart_id": "k1"}])
        store.add_support_interactions([{"customer_id": "c1", "ticket_id": "t1", "interaction_date":
                                         "2025-05-01T12:00:00Z"}])
        row = store.conn.execute("SELECT typeof(session_start_us), typeof(session_end_us), typeof(page_views), "
                                 "typeof(browser), typeof(referrer), typeof(channel), device_type FROM sessions"
                                 ).fetchone()
        assert row == ("null",) * 6 + ("unknown",)
        assert store.conn.execute("SELECT typeof(cart_value) FROM cart_events").fetchone() == ("null",)
        assert store.conn.execute("SELECT typeof(response_time_hours), escalated FROM support_interactions"
                                  ).fetchone() == ("null", 0)
