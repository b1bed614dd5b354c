"""The module-level helpers over plain lists of dicts: calculate_purchase_features and
calculate_session_features."""

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oracle
from customer_activity_features import calculate_purchase_features, calculate_session_features
from oracle import AS_OF, assert_same

PURCHASE_KEYS = {"frequency", "average_order_value", "recency_days", "total_value"}
SESSION_KEYS = {"frequency", "average_duration", "device_pattern", "primary_device"}
GARBAGE = [None, "text", 5, [1, 2], ("value", 1), 3.5]
BAD_DATES = ["garbage", "2025-13-01T00:00:00Z", "", "2025-02-30", "12/31/2024"]


def ago(days, **kw):
    return AS_OF - timedelta(days=days, **kw)


def test_keys_and_values():
    purchases = [{"value": 10, "date": ago(1)}, {"value": 30.0, "date": ago(40).isoformat()},
                 {"value": 5.0, "date": AS_OF + timedelta(microseconds=1)}]
    f = calculate_purchase_features(purchases, as_of=AS_OF)
    assert set(f) == PURCHASE_KEYS
    assert_same(f, {"frequency": 1.0, "average_order_value": 20.0, "recency_days": 1, "total_value": 40.0})
    f = calculate_purchase_features(purchases, 30, as_of=AS_OF)
    assert_same(f, {"frequency": 1.0, "average_order_value": 10.0, "recency_days": 1, "total_value": 10.0})
    sessions = [{"duration": 60, "device": "mobile", "date": ago(1)},
                {"duration": 120, "device": "desktop", "date": "2025-05-20T00:00:00Z"},
                {"duration": 30, "device": "desktop", "date": ago(50)},
                {"duration": 90, "date": ago(2)}]
    s = calculate_session_features(sessions, as_of=AS_OF)
    assert set(s) == SESSION_KEYS
    assert_same(s, {"frequency": 3.0, "average_duration": 75.0,
                    "device_pattern": {"desktop": 2, "mobile": 1, "unknown": 1}, "primary_device": "desktop"},
                ordered=True)
    s = calculate_session_features(sessions, 30, as_of=AS_OF)
    # a three-way tie: ordered by first session in the window (desktop 2025-05-20, then 2 and 1 days ago)
    assert list(s["device_pattern"].items()) == [("desktop", 1), ("unknown", 1), ("mobile", 1)]
    assert s["primary_device"] == "desktop"
    assert s["average_duration"] == 90.0


@pytest.mark.parametrize("records", [[], None, ()])
def test_empty_input(records):
    assert_same(calculate_purchase_features(records, as_of=AS_OF),
                {"frequency": 0.0, "average_order_value": 0.0, "recency_days": None, "total_value": 0.0})
    assert_same(calculate_session_features(records, as_of=AS_OF),
                {"frequency": 0.0, "average_duration": 0.0, "device_pattern": {}, "primary_device": None})


def test_non_dicts_and_records_without_value_are_skipped():
    purchases = GARBAGE + [{"date": ago(1)}, {"value": None, "date": ago(1)}, {}, {"value": 4.0, "date": ago(2)}]
    assert_same(calculate_purchase_features(purchases, as_of=AS_OF),
                {"frequency": 1.0, "average_order_value": 4.0, "recency_days": 2, "total_value": 4.0})
    sessions = GARBAGE + [{"device": "tv", "date": ago(1)}, {"duration": None, "device": "tv"},
                          {"duration": 8, "device": "radio", "date": ago(2)}]
    assert_same(calculate_session_features(sessions, as_of=AS_OF),
                {"frequency": 1.0, "average_duration": 8.0, "device_pattern": {"radio": 1},
                 "primary_device": "radio"})


@pytest.mark.parametrize("bad", BAD_DATES + [12345, [2025, 1, 1], object()])
def test_unparseable_dates_skip_the_record_never_crash(bad):
    purchases = [{"value": 100.0, "date": bad}, {"value": 2.0, "date": ago(3)}]
    assert_same(calculate_purchase_features(purchases, as_of=AS_OF),
                {"frequency": 1.0, "average_order_value": 2.0, "recency_days": 3, "total_value": 2.0})
    sessions = [{"duration": 100, "device": "tv", "date": bad}, {"duration": 2, "device": "pc", "date": ago(3)}]
    assert_same(calculate_session_features(sessions, as_of=AS_OF),
                {"frequency": 1.0, "average_duration": 2.0, "device_pattern": {"pc": 1}, "primary_device": "pc"})


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "abc", True])
def test_invalid_values_never_crash(bad):
    f = calculate_purchase_features([{"value": bad, "date": ago(1)}, {"value": 1.0, "date": ago(1)}], as_of=AS_OF)
    assert f["total_value"] == 1.0
    s = calculate_session_features([{"duration": bad, "date": ago(1)}, {"duration": 1, "date": ago(1)}], as_of=AS_OF)
    assert s["average_duration"] == 1.0


def test_missing_date_means_now():
    f = calculate_purchase_features([{"value": 3.0}])
    assert f["recency_days"] == 0 and f["total_value"] == 3.0 and f["frequency"] == 1.0
    s = calculate_session_features([{"duration": 3}])
    assert s["device_pattern"] == {"unknown": 1}
    # as of a fixed past instant, an event dated now is in the future: left out
    assert calculate_purchase_features([{"value": 3.0}], as_of=AS_OF)["total_value"] == 0.0


def test_naive_and_offset_dates():
    local_now = datetime.now()  # naive: local time
    purchases = [{"value": 1.0, "date": local_now - timedelta(hours=1)},
                 {"value": 2.0, "date": "2025-05-31T20:00:00-04:00"}]  # == AS_OF
    f = calculate_purchase_features(purchases, as_of=AS_OF)
    assert f["total_value"] == 2.0 and f["recency_days"] == 0


@pytest.mark.parametrize("days,freq,total", [
    (None, 1.0, 30.0),  # frequency over 30 days; the rest all time
    (0, 1.0, 30.0),     # days or 30 for the frequency; all time for the rest
    (-5, 0.0, 30.0),    # a negative window: frequency 0.0, the rest all time
    (15, 2.0, 10.0),
    (60, 1.0, 30.0),
])
def test_days_handling(days, freq, total):
    purchases = [{"value": 10.0, "date": ago(1)}, {"value": 20.0, "date": ago(45)}]
    f = calculate_purchase_features(purchases, days, as_of=AS_OF)
    assert f["frequency"] == freq and f["total_value"] == total and f["recency_days"] == 1
    sessions = [{"duration": 10, "device": "a", "date": ago(1)}, {"duration": 20, "device": "b", "date": ago(45)}]
    s = calculate_session_features(sessions, days, as_of=AS_OF)
    assert s["frequency"] == freq
    assert sum(s["device_pattern"].values()) == (1 if total == 10.0 else 2)


# -- property: the helpers equal the oracle ----------------------------------------------------
times = st.one_of(
    st.builds(lambda d, us: AS_OF - timedelta(days=d, microseconds=us), st.sampled_from((0, 1, 7, 30, 45, 90)),
              st.sampled_from((-1, 0, 1))),
    st.builds(lambda us: AS_OF + timedelta(microseconds=us), st.integers(-100 * 86_400_000_000, 86_400_000_000)),
)
amounts = st.one_of(st.integers(0, 1000), st.floats(0, 1e5, allow_nan=False, allow_infinity=False))
dates = st.one_of(times, times.map(lambda t: t.isoformat()), times.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")))
junk = st.one_of(st.sampled_from(GARBAGE), st.sampled_from(BAD_DATES).map(lambda d: {"value": 1.0, "duration": 1.0,
                                                                                        "date": d}),
                 st.just({"date": AS_OF}))
DAYS = (None, 0, -1, 1, 7, 30, 45, 90)
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _when(date):
    return datetime.fromisoformat(date.replace("Z", "+00:00")) if isinstance(date, str) else date


@SETTINGS
@given(st.lists(st.one_of(st.fixed_dictionaries({"value": amounts, "date": dates}), junk), max_size=15),
       st.sampled_from(DAYS))
def test_purchase_helper_matches_oracle(records, days):
    valid = [{"customer_id": "x", "order_value": r["value"], "time": _when(r["date"])} for r in records
             if isinstance(r, dict) and r.get("value") is not None and "duration" not in r]
    expected = {
        "frequency": oracle.purchase_frequency(valid, "x", days or 30, AS_OF),
        "average_order_value": oracle.average_order_value(valid, "x", days, AS_OF),
        "recency_days": oracle.purchase_recency(valid, "x", AS_OF),
        "total_value": oracle.total_purchase_value(valid, "x", days, AS_OF),
    }
    assert_same(calculate_purchase_features(records, days, as_of=AS_OF), expected)


@SETTINGS
@given(st.lists(st.one_of(st.fixed_dictionaries({"duration": amounts, "date": dates},
                                                optional={"device": st.sampled_from(["a", "b", "c", None])}),
                          junk), max_size=15),
       st.sampled_from(DAYS))
def test_session_helper_matches_oracle(records, days):
    valid = [{"customer_id": "x", "duration_seconds": r["duration"], "device_type": r.get("device"),
              "time": _when(r["date"])} for r in records
             if isinstance(r, dict) and r.get("duration") is not None and "value" not in r]
    expected = {
        "frequency": oracle.session_frequency(valid, "x", days or 30, AS_OF),
        "average_duration": oracle.average_session_duration(valid, "x", days, AS_OF),
        "device_pattern": oracle.device_usage_pattern(valid, "x", days, AS_OF),
        "primary_device": oracle.primary_device(valid, "x", days, AS_OF),
    }
    assert_same(calculate_session_features(records, days, as_of=AS_OF), expected, ordered=True)
