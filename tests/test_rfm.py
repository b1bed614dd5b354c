"""RFM/T summaries and calibration/holdout splits (issue 5): hand-worked histories and
a property test against tests/oracle_rfm.py (the lifetimes conventions in plain Python)."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from store import timeutil
from store.rfm import CalibrationHoldoutRow, RFMRow

import oracle_rfm


def store_with(purchases, timezone="UTC"):
    """An in-memory store holding purchases [(customer_id, time, value)]."""
    store = CustomerActivityFeatures(timezone=timezone)
    result = store.add_purchases(
        {"customer_id": cid, "order_value": value, "purchase_date": when, "order_id": f"o{i}"}
        for i, (cid, when, value) in enumerate(purchases))
    assert result.rejected == 0, result
    return store


def summary(store, *args, **kwargs):
    return {row.customer_id: tuple(row[1:]) for row in store.rfm_summary(*args, **kwargs)}


def close(a, b):
    return all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) for x, y in zip(a, b, strict=True))


# -- hand-worked histories ------------------------------------------------------------------
DAILY = [
    ("a", "2024-01-01T10:00:00Z", 10.0),
    ("a", "2024-01-01T18:00:00Z", 5.0),    # same day as the first: collapses, values summed
    ("a", "2024-01-04T09:00:00Z", 20.0),
    ("a", "2024-01-04T23:59:59Z", 30.0),   # same day again
    ("b", "2024-01-05T12:00:00Z", 7.0),    # a single purchase
    ("c", "2024-01-02T12:00:00Z", 10.0),
    ("c", "2024-01-11T12:00:00Z", 99.0),   # after the observation end: dropped
]


def test_same_day_collapse_single_purchase_and_purchase_after_the_end():
    with store_with(DAILY) as store:
        got = summary(store, "2024-01-10T12:00:00Z")
    assert got == {
        "a": (1.0, 3.0, 9.0, 50.0),   # periods Jan 1 (15), Jan 4 (50); T = Jan 10 - Jan 1
        "b": (0.0, 0.0, 5.0, 0.0),    # one period: monetary_value 0
        "c": (0.0, 0.0, 8.0, 0.0),    # the Jan 11 purchase is after the observation end
    }


def test_rows_are_named_tuples_streamed_in_customer_order():
    with store_with(DAILY) as store:
        rows = store.rfm_summary("2024-01-10T12:00:00Z")
        assert iter(rows) is rows  # an iterator, not a list
        first = next(rows)
        assert isinstance(first, RFMRow) and first.customer_id == "a"
        assert first._asdict() == {"customer_id": "a", "frequency": 1.0, "recency": 3.0, "T": 9.0,
                                   "monetary_value": 50.0}
        assert [r.customer_id for r in rows] == ["b", "c"]


def test_observation_end_defaults_to_the_last_purchase_truncated():
    with store_with(DAILY) as store:
        got = summary(store)
    # last purchase Jan 11 12:00 -> observation end period Jan 11
    assert got["a"] == (1.0, 3.0, 10.0, 50.0)
    assert got["c"] == (1.0, 9.0, 9.0, 99.0)


def test_a_later_purchase_in_the_observation_end_period_counts():
    # lifetimes compares periods: observation_end is truncated first
    with store_with([("a", "2024-01-01T10:00:00Z", 10.0), ("a", "2024-01-10T20:00:00Z", 4.0)]) as store:
        assert summary(store, "2024-01-10T09:00:00Z") == {"a": (1.0, 9.0, 9.0, 4.0)}
        assert summary(store, "2024-01-09T23:59:59Z") == {"a": (0.0, 0.0, 8.0, 0.0)}


def test_weekly_periods_run_monday_to_sunday():
    purchases = [
        ("a", "2024-01-01T00:00:00Z", 10.0),   # Monday, week of Jan 1
        ("a", "2024-01-07T23:59:59Z", 5.0),    # Sunday, same week
        ("a", "2024-01-08T00:00:00Z", 8.0),    # Monday, next week
        ("b", "2023-12-31T12:00:00Z", 3.0),    # Sunday: the week of Dec 25
    ]
    with store_with(purchases) as store:
        got = summary(store, "2024-01-24T12:00:00Z", freq="W")  # Wednesday, week of Jan 22
    assert got == {"a": (1.0, 1.0, 3.0, 8.0), "b": (0.0, 0.0, 4.0, 0.0)}


def test_hourly_periods():
    purchases = [
        ("a", "2024-01-01T10:05:00Z", 1.0),
        ("a", "2024-01-01T10:55:00Z", 2.0),    # same hour
        ("a", "2024-01-01T13:00:00Z", 4.0),
    ]
    with store_with(purchases) as store:
        assert summary(store, "2024-01-01T15:30:00Z", freq="h") == {"a": (1.0, 3.0, 5.0, 4.0)}


def test_freq_multiplier_divides_recency_and_t():
    with store_with(DAILY) as store:
        got = summary(store, "2024-01-10T12:00:00Z", freq_multiplier=7)
        assert close(got["a"], (1.0, 3 / 7, 9 / 7, 50.0))
        assert close(summary(store, "2024-01-10T12:00:00Z", freq="h", freq_multiplier=24)["b"],
                     (0.0, 0.0, 120 / 24, 0.0))  # Jan 5 12:00 to Jan 10 12:00


def test_include_first_counts_the_first_period_too():
    # lifetimes include_first_transaction=True: frequency = number of periods, and the
    # first period's sum is in the monetary mean
    with store_with(DAILY) as store:
        got = summary(store, "2024-01-10T12:00:00Z", include_first=True)
    assert got["a"] == (2.0, 3.0, 9.0, 32.5)
    assert got["b"] == (1.0, 0.0, 5.0, 7.0)


def test_zero_value_purchases_count_by_default_as_in_lifetimes():
    """lifetimes counts every transaction (issue 11, item 13): a zero-value purchase is a
    repeat period and brings its 0 into the monetary means; include_zero_values=False drops it."""
    purchases = [("a", "2024-01-01T10:00:00Z", 10.0), ("a", "2024-01-03T10:00:00Z", 0.0),
                 ("a", "2024-01-04T10:00:00Z", 6.0), ("z", "2024-01-02T10:00:00Z", 0.0),
                 ("y", "2024-01-01T10:00:00Z", 4.0), ("y", "2024-01-06T10:00:00Z", 0.0)]
    with store_with(purchases) as store:
        assert summary(store, "2024-01-05") == {
            "a": (2.0, 3.0, 4.0, 3.0), "y": (0.0, 0.0, 4.0, 0.0), "z": (0.0, 0.0, 3.0, 0.0)}
        assert summary(store, "2024-01-05", include_zero_values=True) == summary(store, "2024-01-05")
        assert summary(store, "2024-01-05", include_first=True)["a"] == (3.0, 3.0, 4.0, 16 / 3)
        # the default observation end is the last purchase, a zero-value one here (Jan 6)
        assert summary(store)["a"] == (2.0, 3.0, 5.0, 3.0)
        assert summary(store)["y"] == (1.0, 5.0, 5.0, 0.0)
        # dropping them: a has one repeat period (6.0), z is gone, the end is the last positive purchase
        assert summary(store, "2024-01-05", include_zero_values=False) == {
            "a": (1.0, 3.0, 4.0, 6.0), "y": (0.0, 0.0, 4.0, 0.0)}
        assert summary(store, include_zero_values=False) == {"a": (1.0, 3.0, 3.0, 6.0), "y": (0.0, 0.0, 3.0, 0.0)}
        assert summary(store) == {cid: oracle_rfm.rfm_summary(
            [(c, timeutil.to_us(t), v) for c, t, v in purchases])[cid] for cid in ("a", "y", "z")}
        # calibration/holdout: the holdout's zero-value purchase is a period and a value of 0
        got = {r.customer_id: tuple(r[1:]) for r in store.calibration_and_holdout("2024-01-02T23:59:59Z")}
        assert got["a"] == (0.0, 0.0, 1.0, 0.0, 2.0, 3.0, 4.0)
        assert got["y"] == (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 4.0)
        assert got["z"] == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0)
        dropped = {r.customer_id: tuple(r[1:]) for r in store.calibration_and_holdout(
            "2024-01-02T23:59:59Z", include_zero_values=False)}
        assert dropped == {"a": (0.0, 0.0, 1.0, 0.0, 1.0, 6.0, 2.0), "y": (0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0)}


def test_empty_store_and_an_end_before_every_purchase():
    with CustomerActivityFeatures() as store:
        assert list(store.rfm_summary()) == []
        assert list(store.rfm_summary("2024-01-01")) == []
    with store_with(DAILY) as store:
        assert list(store.rfm_summary("2023-12-31T23:00:00Z")) == []


def test_periods_are_local_to_the_store_timezone():
    purchases = [("a", "2024-01-01T15:00:00Z", 1.0), ("a", "2024-01-02T03:00:00Z", 2.0)]
    with store_with(purchases) as store:  # UTC: two days
        assert summary(store, "2024-01-03T12:00:00Z") == {"a": (1.0, 1.0, 2.0, 2.0)}
    with store_with(purchases, "America/New_York") as store:  # 10:00 and 22:00 on Jan 1 local
        assert summary(store, "2024-01-03T12:00:00Z") == {"a": (0.0, 0.0, 2.0, 0.0)}


def test_dst_transitions_in_hourly_and_daily_periods():
    # Europe/London springs forward 2024-03-31 01:00 UTC (01:00 GMT -> 02:00 BST):
    # 00:30 UTC is 00:30 local, 01:30 UTC is 02:30 local: two wall-clock hours apart
    spring = [("a", "2024-03-31T00:30:00Z", 1.0), ("a", "2024-03-31T01:30:00Z", 2.0)]
    with store_with(spring, "Europe/London") as store:
        assert summary(store, freq="h") == {"a": (1.0, 2.0, 2.0, 2.0)}
    # and falls back 2024-10-27 01:00 UTC (02:00 BST -> 01:00 GMT): 00:30 UTC and 01:30 UTC
    # are both 01:30 local, so they share an hourly period
    autumn = [("a", "2024-10-27T00:30:00Z", 1.0), ("a", "2024-10-27T01:30:00Z", 2.0)]
    with store_with(autumn, "Europe/London") as store:
        assert summary(store, freq="h") == {"a": (0.0, 0.0, 0.0, 0.0)}
    # America/New_York falls back 2024-11-03 06:00 UTC: 04:30 UTC Nov 3 is 00:30 EDT and
    # 04:30 UTC Nov 4 is 23:30 EST on Nov 3: one day
    ny = [("a", "2024-11-03T04:30:00Z", 1.0), ("a", "2024-11-04T04:30:00Z", 2.0)]
    with store_with(ny, "America/New_York") as store:
        assert summary(store) == {"a": (0.0, 0.0, 0.0, 0.0)}
    with store_with(ny) as store:
        assert summary(store) == {"a": (1.0, 1.0, 1.0, 2.0)}


def test_times_before_1970_floor_to_their_period():
    purchases = [("a", "1969-12-31T23:00:00Z", 1.0), ("a", "1970-01-01T01:00:00Z", 2.0)]
    with store_with(purchases) as store:
        assert summary(store) == {"a": (1.0, 1.0, 1.0, 2.0)}
        assert summary(store, freq="W") == {"a": (0.0, 0.0, 0.0, 0.0)}  # Wed and Thu: one week


@pytest.mark.parametrize("kwargs, message", [
    ({"freq": "M"}, "freq must be"),
    ({"freq": None}, "freq must be"),
    ({"freq_multiplier": 0}, "freq_multiplier"),
    ({"freq_multiplier": float("nan")}, "freq_multiplier"),
    ({"freq_multiplier": True}, "freq_multiplier"),
])
def test_bad_arguments_raise_at_call_time(kwargs, message):
    with store_with(DAILY) as store:
        with pytest.raises(ValueError, match=message):
            store.rfm_summary(**kwargs)
        with pytest.raises(ValueError, match=message):
            store.calibration_and_holdout("2024-01-03", "2024-01-10", **kwargs)
    with store_with(DAILY) as store:
        with pytest.raises(ValueError, match="not an ISO-8601"):
            store.rfm_summary("yesterday")


def test_freq_aliases():
    with store_with(DAILY) as store:
        assert summary(store, freq="H") == summary(store, freq="h")


# -- calibration and holdout ------------------------------------------------------------------
SPLIT = [
    ("x", "2024-01-01T10:00:00Z", 10.0),
    ("x", "2024-01-03T10:00:00Z", 20.0),
    ("x", "2024-01-03T11:00:00Z", 5.0),
    ("x", "2024-01-12T10:00:00Z", 40.0),   # holdout
    ("x", "2024-01-15T10:00:00Z", 60.0),   # holdout
    ("x", "2024-01-15T12:00:00Z", 20.0),   # holdout, same day: one period, but a raw value
    ("x", "2024-01-25T10:00:00Z", 500.0),  # after the observation end
    ("y", "2024-01-13T10:00:00Z", 9.0),    # only in the holdout: left out
    ("z", "2024-01-05T10:00:00Z", 8.0),
]


def test_calibration_and_holdout_hand_worked():
    with store_with(SPLIT) as store:
        rows = store.calibration_and_holdout("2024-01-10T00:00:00Z", "2024-01-20T00:00:00Z")
        assert iter(rows) is rows
        rows = list(rows)
    assert all(isinstance(r, CalibrationHoldoutRow) for r in rows)
    assert [tuple(r) for r in rows] == [
        ("x", 1.0, 2.0, 9.0, 25.0, 2.0, 40.0, 10.0),
        ("z", 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 10.0),
    ]


def test_calibration_and_holdout_weekly_with_multiplier():
    with store_with(SPLIT) as store:
        rows = [tuple(r) for r in store.calibration_and_holdout(
            "2024-01-10T00:00:00Z", "2024-01-20T00:00:00Z", freq="W", freq_multiplier=2)]
    # weeks: Jan 1-7 (10+20+5), Jan 8-14 (cal end Jan 10; holdout Jan 12), Jan 15-21 (holdout)
    assert rows == [("x", 0.0, 0.0, 0.5, 0.0, 2.0, 40.0, 0.5), ("z", 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.5)]


def test_calibration_observation_end_defaults_to_the_last_purchase():
    with store_with(SPLIT) as store:
        rows = {r.customer_id: r for r in store.calibration_and_holdout("2024-01-10T00:00:00Z")}
    assert rows["x"].frequency_holdout == 3.0 and rows["x"].duration_holdout == 15.0
    assert rows["x"].monetary_value_holdout == pytest.approx(155.0)


def test_an_empty_holdout_is_a_clear_error():
    with store_with(SPLIT) as store:
        with pytest.raises(ValueError, match="empty holdout period"):
            store.calibration_and_holdout("2024-01-20T00:00:00Z", "2024-01-20T00:00:00Z")
        with pytest.raises(ValueError, match="empty holdout period"):
            store.calibration_and_holdout("2024-01-21T00:00:00Z", "2024-01-20T00:00:00Z")
        with pytest.raises(ValueError, match="no counted purchase after"):
            store.calibration_and_holdout("2024-01-16T00:00:00Z", "2024-01-20T00:00:00Z")
        with pytest.raises(ValueError, match="calibration_end is required"):
            store.calibration_and_holdout(None, "2024-01-20T00:00:00Z")
    with CustomerActivityFeatures() as store:
        with pytest.raises(ValueError, match="no counted purchase"):
            store.calibration_and_holdout("2024-01-16T00:00:00Z")


# -- property tests against the oracle ------------------------------------------------------
DAY_US = 86_400_000_000
# anchors near DST transitions of the zones tested, and a plain winter day
ANCHORS = [timeutil.to_us(t) for t in (
    "2024-03-10T07:00:00Z", "2024-11-03T06:00:00Z",    # America/New_York
    "2024-03-31T01:00:00Z", "2024-10-27T01:00:00Z",    # Europe/London
    "2024-04-06T15:00:00Z",                            # Australia/Lord_Howe (30-minute DST)
    "2024-01-17T12:00:00Z")]
ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]

instants = st.builds(lambda a, d: a + d, st.sampled_from(ANCHORS),
                     st.integers(-12 * DAY_US, 12 * DAY_US)
                     | st.integers(-3 * 3600 * 10**6, 3 * 3600 * 10**6).map(lambda x: x - x % 60_000_000))
values = st.sampled_from([0.0, 1.0, 2.5, 10.0, 99.99]) | st.floats(0, 1000).map(lambda v: round(v, 2))
histories = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), instants, values), max_size=25)
options = st.fixed_dictionaries({
    "freq": st.sampled_from(["D", "W", "h"]),
    "freq_multiplier": st.sampled_from([1, 7, 2.5]),
    "include_first": st.booleans(),
    "include_zero": st.booleans(),
})


def load(history, tz):
    return store_with([(cid, timeutil.iso(t), v) for cid, t, v in history], tz)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories, tz=st.sampled_from(ZONES), end=st.none() | instants, opts=options)
def test_rfm_summary_matches_the_oracle(history, tz, end, opts):
    with load(history, tz) as store:
        got = {r.customer_id: tuple(r[1:]) for r in store.rfm_summary(
            None if end is None else timeutil.iso(end), freq=opts["freq"],
            freq_multiplier=opts["freq_multiplier"], include_first=opts["include_first"],
            include_zero_values=opts["include_zero"])}
    want = oracle_rfm.rfm_summary(history, end, tz=tz, **opts)
    assert got.keys() == want.keys()
    for cid in want:
        assert close(got[cid], want[cid]), (cid, got[cid], want[cid])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories, tz=st.sampled_from(ZONES), cal=instants, end=st.none() | instants, opts=options)
def test_calibration_and_holdout_matches_the_oracle(history, tz, cal, end, opts):
    try:
        want = oracle_rfm.calibration_and_holdout(history, cal, end, tz=tz, **opts)
    except ValueError:
        want = ValueError
    with load(history, tz) as store:
        call = lambda: {r.customer_id: tuple(r[1:]) for r in store.calibration_and_holdout(  # noqa: E731
            timeutil.iso(cal), None if end is None else timeutil.iso(end), freq=opts["freq"],
            freq_multiplier=opts["freq_multiplier"], include_first=opts["include_first"],
            include_zero_values=opts["include_zero"])}
        if want is ValueError:
            with pytest.raises(ValueError):
                call()
            return
        got = call()
    assert got.keys() == want.keys()
    for cid in want:
        assert close(got[cid], want[cid]), (cid, got[cid], want[cid])


def test_naive_times_are_wall_clock_times_in_the_store_timezone():
    from datetime import date, datetime

    purchases = [("a", "2024-01-01T15:00:00Z", 1.0)]
    with store_with(purchases, "America/New_York") as store:
        # '2024-01-03' is midnight Jan 3 in New York (05:00 UTC): period Jan 3 local, T = 2
        for end in ("2024-01-03", "2024-01-03T00:00:00", date(2024, 1, 3), datetime(2024, 1, 3)):
            assert summary(store, end) == {"a": (0.0, 0.0, 2.0, 0.0)}, end
        # with an offset it is that instant: 2024-01-03T00:00Z is Jan 2, 19:00 in New York
        assert summary(store, "2024-01-03T00:00:00Z") == {"a": (0.0, 0.0, 1.0, 0.0)}
    purchases = [("a", "2024-01-01T15:00:00Z", 1.0), ("a", "2024-01-03T04:30:00Z", 2.0)]
    with store_with(purchases, "America/New_York") as store:
        # the second purchase is Jan 2 23:30 local: before a naive calibration end of Jan 3
        with pytest.raises(ValueError, match="no counted purchase after"):
            store.calibration_and_holdout("2024-01-03", "2024-01-05")
