"""Unit tests of every getter of issue 2, one edge case at a time, at a fixed as_of."""

from datetime import datetime, timedelta, timezone

import pytest

import customer_activity_features as caf
from customer_activity_features import CustomerActivityFeatures
from oracle import ALL_FEATURE_KEYS, AS_OF, GETTERS, NUMERIC_FEATURES, TRADEOFF_KEYS

US = timedelta(microseconds=1)
DAY = timedelta(days=1)

# (method, empty value) for a falsy or unknown id.
EMPTY = {
    "get_purchase_frequency": 0.0,
    "get_average_order_value": 0.0,
    "get_purchase_recency": None,
    "get_total_purchase_value": 0.0,
    "get_session_frequency": 0.0,
    "get_average_session_duration": 0.0,
    "get_device_usage_pattern": {},
    "get_primary_device": None,
    "get_abandoned_cart_count": 0,
    "get_cart_conversion_ratio": 0.0,
    "get_abandoned_cart_value": 0.0,
    "get_support_ticket_count": 0,
    "get_average_response_time": None,
    "get_escalation_count": 0,
    "get_escalation_ratio": 0.0,
}
UNKNOWN_TRADEOFF = {"high_short_term_activity": False, "declining_engagement": False, "support_risk": False,
                    "cart_abandonment_risk": False, "retention_concern": False, "activity_trend": "inactive"}


def ago(days=0, **kw):
    return AS_OF - timedelta(days=days, **kw)


@pytest.fixture
def store():
    with CustomerActivityFeatures() as s:
        yield s


@pytest.fixture
def busy(store):
    """A store with every kind of event for 'c1', and another customer 'c2'."""
    store.add_purchase("c1", 10, ago(1))
    store.add_purchase("c1", 20.5, ago(40))
    store.add_purchase("c2", 99.0, ago(2))
    store.add_session("c1", 100, "mobile", ago(1))
    store.add_session("c1", 300, "desktop", ago(50))
    store.add_cart_event("c1", "abandoned", 15.0, ago(3))
    store.add_cart_event("c1", "abandoned", None, ago(4))
    store.add_cart_event("c1", "converted", 40.0, ago(5))
    store.add_support_interaction("c1", "t1", 2.0, True, ago(6))
    store.add_support_interaction("c1", "t2", None, False, ago(7))
    store.add_support_interaction("c1", "t3", 4.0, False, ago(70))
    return store


def same_type_and_value(actual, expected):
    return type(actual) is type(expected) and actual == expected


# -- empty values ---------------------------------------------------------------------
@pytest.mark.parametrize("falsy", ["", None, 0])
def test_falsy_id_returns_the_empty_value(busy, falsy):
    busy.add_purchase("0", 5.0, ago(1))  # a customer whose id is the text '0' does not make 0 truthy
    for name, empty in EMPTY.items():
        assert same_type_and_value(getattr(busy, name)(falsy, as_of=AS_OF), empty), name
    assert busy.get_activity_retention_tradeoff(falsy, as_of=AS_OF) == {}
    assert busy.get_all_features(falsy, as_of=AS_OF) == {}
    assert busy.get_feature_summary(falsy, as_of=AS_OF) == {}


def test_unknown_customer_gets_zeros_none_and_empty_dicts(busy):
    for name, empty in EMPTY.items():
        assert same_type_and_value(getattr(busy, name)("nobody", as_of=AS_OF), empty), name
        if name not in ("get_purchase_recency",):
            assert same_type_and_value(getattr(busy, name)("nobody", 7, as_of=AS_OF), empty), name
    assert busy.get_activity_retention_tradeoff("nobody", as_of=AS_OF) == UNKNOWN_TRADEOFF
    features = busy.get_all_features("nobody", as_of=AS_OF)
    assert set(features) == set(ALL_FEATURE_KEYS)
    assert features["device_usage_pattern"] == {} and features["primary_device"] is None
    assert features["purchase_recency_days"] is None and features["average_response_time_hours"] is None
    assert features["activity_retention_tradeoff"] == UNKNOWN_TRADEOFF
    for key in ("abandoned_cart_count", "support_ticket_count", "escalation_count"):
        assert same_type_and_value(features[key], 0), key
    for key in ("purchase_frequency", "average_order_value", "total_purchase_value", "session_frequency",
                "average_session_duration", "cart_conversion_ratio", "abandoned_cart_value", "escalation_ratio"):
        assert same_type_and_value(features[key], 0.0), key


def test_empty_store_getters_do_not_fail(store):
    for name, _ in GETTERS:
        getattr(store, name)("c1", as_of=AS_OF)
        getattr(store, name)("c1")  # default as_of: now


# -- types ------------------------------------------------------------------------------
def test_counts_are_int_and_money_durations_ratios_frequencies_float(busy):
    """Integer inputs still give float money and durations."""
    assert type(busy.get_total_purchase_value("c1", as_of=AS_OF)) is float
    assert type(busy.get_average_order_value("c1", as_of=AS_OF)) is float
    assert type(busy.get_average_session_duration("c1", as_of=AS_OF)) is float
    assert type(busy.get_purchase_frequency("c1", as_of=AS_OF)) is float
    assert type(busy.get_session_frequency("c1", as_of=AS_OF)) is float
    assert type(busy.get_cart_conversion_ratio("c1", as_of=AS_OF)) is float
    assert type(busy.get_abandoned_cart_value("c1", as_of=AS_OF)) is float
    assert type(busy.get_average_response_time("c1", as_of=AS_OF)) is float
    assert type(busy.get_escalation_ratio("c1", as_of=AS_OF)) is float
    assert type(busy.get_abandoned_cart_count("c1", as_of=AS_OF)) is int
    assert type(busy.get_support_ticket_count("c1", as_of=AS_OF)) is int
    assert type(busy.get_escalation_count("c1", as_of=AS_OF)) is int
    assert type(busy.get_purchase_recency("c1", as_of=AS_OF)) is int
    pattern = busy.get_device_usage_pattern("c1", as_of=AS_OF)
    assert all(type(k) is str and type(v) is int for k, v in pattern.items())
    tradeoff = busy.get_activity_retention_tradeoff("c1", as_of=AS_OF)
    assert all(type(tradeoff[k]) is bool for k in TRADEOFF_KEYS if k != "activity_trend")
    assert type(tradeoff["activity_trend"]) is str
    store = CustomerActivityFeatures()
    store.add_purchase("i", 3, ago(1))
    store.add_purchase("i", 4, ago(2))
    assert same_type_and_value(store.get_total_purchase_value("i", as_of=AS_OF), 7.0)
    assert same_type_and_value(store.get_average_order_value("i", as_of=AS_OF), 3.5)
    store.close()


# -- each getter ---------------------------------------------------------------------------
def test_purchase_getters(busy):
    assert busy.get_total_purchase_value("c1", as_of=AS_OF) == 30.5
    assert busy.get_total_purchase_value("c1", 30, as_of=AS_OF) == 10.0
    assert busy.get_average_order_value("c1", as_of=AS_OF) == 15.25
    assert busy.get_average_order_value("c1", 30, as_of=AS_OF) == 10.0
    assert busy.get_average_order_value("c1", 0.5, as_of=AS_OF) == 0.0
    assert busy.get_purchase_recency("c1", as_of=AS_OF) == 1
    assert busy.get_purchase_frequency("c1", as_of=AS_OF) == 1.0  # default 30 days
    assert busy.get_purchase_frequency("c1", 60, as_of=AS_OF) == 1.0  # 2 in 60 days = 1 per 30
    assert busy.get_purchase_frequency("c1", 15, as_of=AS_OF) == 2.0  # 1 in 15 days = 2 per 30
    assert busy.get_purchase_frequency("c1", None, as_of=AS_OF) == 1.0  # None = 30


def test_session_getters(busy):
    assert busy.get_session_frequency("c1", as_of=AS_OF) == 1.0
    assert busy.get_session_frequency("c1", 90, as_of=AS_OF) == pytest.approx(2 / 3)
    assert busy.get_average_session_duration("c1", as_of=AS_OF) == 200.0
    assert busy.get_average_session_duration("c1", 30, as_of=AS_OF) == 100.0
    assert busy.get_device_usage_pattern("c1", as_of=AS_OF) == {"desktop": 1, "mobile": 1}
    assert busy.get_device_usage_pattern("c1", 30, as_of=AS_OF) == {"mobile": 1}
    assert busy.get_primary_device("c1", 30, as_of=AS_OF) == "mobile"


def test_cart_getters(busy):
    assert busy.get_abandoned_cart_count("c1", as_of=AS_OF) == 2
    assert busy.get_abandoned_cart_count("c1", 3, as_of=AS_OF) == 1
    assert busy.get_cart_conversion_ratio("c1", as_of=AS_OF) == pytest.approx(1 / 3)
    assert busy.get_cart_conversion_ratio("c1", 4, as_of=AS_OF) == 0.0
    assert busy.get_abandoned_cart_value("c1", as_of=AS_OF) == 15.0  # None skipped, converted excluded


def test_support_getters(busy):
    assert busy.get_support_ticket_count("c1", as_of=AS_OF) == 3
    assert busy.get_support_ticket_count("c1", 30, as_of=AS_OF) == 2
    assert busy.get_average_response_time("c1", as_of=AS_OF) == 3.0
    assert busy.get_average_response_time("c1", 30, as_of=AS_OF) == 2.0  # the None one is left out
    assert busy.get_escalation_count("c1", as_of=AS_OF) == 1
    assert busy.get_escalation_ratio("c1", as_of=AS_OF) == pytest.approx(1 / 3)
    assert busy.get_escalation_ratio("c1", 30, as_of=AS_OF) == 0.5


def test_average_response_time_is_none_when_no_ticket_has_one(store):
    store.add_support_interaction("c", "t1", None, True, ago(1))
    store.add_support_interaction("c", "t2", None, False, ago(2))
    assert store.get_average_response_time("c", as_of=AS_OF) is None
    assert store.get_support_ticket_count("c", as_of=AS_OF) == 2
    assert store.get_escalation_ratio("c", as_of=AS_OF) == 0.5


def test_abandoned_cart_value_of_only_none_values_is_zero(store):
    store.add_cart_event("c", "abandoned", None, ago(1))
    assert same_type_and_value(store.get_abandoned_cart_value("c", as_of=AS_OF), 0.0)
    assert store.get_abandoned_cart_count("c", as_of=AS_OF) == 1


def test_customers_do_not_leak_into_each_other(busy):
    assert busy.get_total_purchase_value("c2", as_of=AS_OF) == 99.0
    assert busy.get_support_ticket_count("c2", as_of=AS_OF) == 0


# -- as_of and windows ----------------------------------------------------------------------
def test_event_exactly_at_as_of_counts_and_one_microsecond_after_does_not(store):
    store.add_purchase("c", 1.0, AS_OF)
    store.add_purchase("c", 2.0, AS_OF + US)
    store.add_session("c", 5, "tv", AS_OF + US)
    assert store.get_total_purchase_value("c", as_of=AS_OF) == 1.0
    assert store.get_purchase_recency("c", as_of=AS_OF) == 0
    assert store.get_device_usage_pattern("c", as_of=AS_OF) == {}
    assert store.get_total_purchase_value("c", as_of=AS_OF + US) == 3.0
    assert store.get_total_purchase_value("c", as_of=AS_OF - US) == 0.0
    assert store.get_purchase_recency("c", as_of=AS_OF - US) is None


def test_window_start_is_inclusive(store):
    store.add_purchase("c", 1.0, ago(30))  # exactly on the edge: in
    store.add_purchase("c", 2.0, ago(30) - US)  # one microsecond before: out
    assert store.get_total_purchase_value("c", 30, as_of=AS_OF) == 1.0
    assert store.get_purchase_frequency("c", 30, as_of=AS_OF) == 1.0
    assert store.get_total_purchase_value("c", as_of=AS_OF) == 3.0


@pytest.mark.parametrize("days", [None, 0, -1, -30])
def test_days_none_or_not_positive_means_all_time(busy, days):
    assert busy.get_total_purchase_value("c1", days, as_of=AS_OF) == 30.5
    assert busy.get_average_order_value("c1", days, as_of=AS_OF) == 15.25
    assert busy.get_average_session_duration("c1", days, as_of=AS_OF) == 200.0
    assert busy.get_device_usage_pattern("c1", days, as_of=AS_OF) == {"desktop": 1, "mobile": 1}
    assert busy.get_abandoned_cart_count("c1", days, as_of=AS_OF) == 2
    assert busy.get_support_ticket_count("c1", days, as_of=AS_OF) == 3
    assert busy.get_escalation_count("c1", days, as_of=AS_OF) == 1
    assert busy.get_average_response_time("c1", days, as_of=AS_OF) == 3.0
    features = busy.get_all_features("c1", days, as_of=AS_OF)
    assert features["total_purchase_value"] == 30.5 and features["support_ticket_count"] == 3


@pytest.mark.parametrize("days", [0, -1, -30])
def test_frequencies_are_zero_when_days_not_positive(busy, days):
    assert same_type_and_value(busy.get_purchase_frequency("c1", days, as_of=AS_OF), 0.0)
    assert same_type_and_value(busy.get_session_frequency("c1", days, as_of=AS_OF), 0.0)


def test_all_features_frequencies_use_days_or_30(busy):
    f0 = busy.get_all_features("c1", 0, as_of=AS_OF)  # 0 or 30 -> 30
    assert f0["purchase_frequency"] == busy.get_purchase_frequency("c1", 30, as_of=AS_OF) == 1.0
    assert f0["session_frequency"] == 1.0
    f60 = busy.get_all_features("c1", 60, as_of=AS_OF)
    assert f60["purchase_frequency"] == 1.0 and f60["session_frequency"] == 1.0  # 2 in 60 days each
    fneg = busy.get_all_features("c1", -5, as_of=AS_OF)  # -5 or 30 -> -5 -> 0.0
    assert fneg["purchase_frequency"] == 0.0 and fneg["session_frequency"] == 0.0


def test_recency_is_floor_of_whole_days_and_ignores_days(store):
    store.add_purchase("c", 1.0, ago(100, hours=23, minutes=59))
    assert store.get_purchase_recency("c", as_of=AS_OF) == 100
    assert store.get_all_features("c", 7, as_of=AS_OF)["purchase_recency_days"] == 100
    store.add_purchase("c", 1.0, ago(0, hours=23, minutes=59, seconds=59, microseconds=999999))
    assert store.get_purchase_recency("c", as_of=AS_OF) == 0


def test_missing_date_means_now_and_default_as_of_is_now(store):
    store.add_purchase("c", 5.0)
    store.add_session("c", 10)
    store.add_purchase("c", 7.0, datetime.now(timezone.utc) + timedelta(days=1))  # in the future
    assert store.get_total_purchase_value("c") == 5.0
    assert store.get_purchase_recency("c") == 0
    assert store.get_primary_device("c") == "unknown"
    assert store.get_total_purchase_value("c", as_of=datetime.now(timezone.utc) - timedelta(hours=1)) == 0.0


def test_iso_strings_with_z_and_offsets(store):
    store.add_purchase("c", 1.0, "2025-05-31T23:00:00Z")
    store.add_purchase("c", 2.0, "2025-06-01T01:00:00+02:00")  # 23:00Z
    store.add_purchase("c", 4.0, "2025-05-31T20:00:00-04:00")  # 2025-06-01T00:00:00Z, exactly as_of
    store.add_purchase("c", 8.0, "2025-06-01T00:00:00.000001Z")  # after as_of
    store.add_purchase("c", 16.0, "2025-06-01T00:00:00.000001z")
    for as_of in (AS_OF, "2025-06-01T00:00:00Z", "2025-06-01T02:00:00+02:00", "2025-05-31T17:00:00-07:00",
                  datetime(2025, 6, 1, 9, tzinfo=timezone(timedelta(hours=9)))):
        assert store.get_total_purchase_value("c", as_of=as_of) == 7.0
    assert store.get_total_purchase_value("c", as_of="2025-05-31T23:00:00Z") == 3.0
    assert store.get_purchase_recency("c", as_of="2025-06-02T00:00:00Z") == 0


# -- devices ---------------------------------------------------------------------------------
def test_device_pattern_is_ordered_most_used_first(store):
    for device, n in (("tablet", 1), ("mobile", 3), ("desktop", 2)):
        for i in range(n):
            store.add_session("c", 10, device, ago(i + 1))
    assert list(store.get_device_usage_pattern("c", as_of=AS_OF).items()) == [
        ("mobile", 3), ("desktop", 2), ("tablet", 1)]
    assert store.get_primary_device("c", as_of=AS_OF) == "mobile"


def test_primary_device_tie_goes_to_the_device_seen_first(store):
    store.add_session("c", 10, "zeta", ago(5))  # seen first
    store.add_session("c", 10, "alpha", ago(4))
    store.add_session("c", 10, "alpha", ago(3))
    store.add_session("c", 10, "zeta", ago(2))
    assert store.get_primary_device("c", as_of=AS_OF) == "zeta"
    assert list(store.get_device_usage_pattern("c", as_of=AS_OF)) == ["zeta", "alpha"]
    # within 4.5 days 'zeta' was first seen 2 days ago and 'alpha' 4 days ago: alpha wins
    assert store.get_device_usage_pattern("c", 4.5, as_of=AS_OF) == {"alpha": 2, "zeta": 1}
    store.add_session("c", 10, "zeta", ago(1))
    assert store.get_primary_device("c", 4.5, as_of=AS_OF) == "alpha"  # tie 2-2, alpha seen first


def test_primary_device_same_first_time_tie_goes_to_name(store):
    store.add_session("c", 10, "tablet", ago(1))
    store.add_session("c", 10, "desktop", ago(1))
    assert store.get_primary_device("c", as_of=AS_OF) == "desktop"
    assert list(store.get_device_usage_pattern("c", as_of=AS_OF)) == ["desktop", "tablet"]


def test_missing_device_is_unknown(store):
    store.add_session("c", 10, None, ago(1))
    store.add_session("c", 10, session_date=ago(2))
    store.add_session("c", 10, "", ago(3))
    assert store.get_device_usage_pattern("c", as_of=AS_OF) == {"unknown": 3}
    assert store.get_primary_device("c", as_of=AS_OF) == "unknown"


# -- the retention trade-off -------------------------------------------------------------
def test_thresholds_are_named_constants():
    assert caf.DECLINING_RATIO == 0.7
    assert caf.SUPPORT_ESCALATION_RATIO == 0.5
    assert caf.SUPPORT_MAX_TICKETS == 3
    assert caf.CART_MIN_CONVERSION_RATIO == 0.3
    assert caf.CART_MAX_ABANDONED == 2
    assert caf.RECENCY_CONCERN_DAYS == 60
    assert (caf.SHORT_WINDOW_DAYS, caf.LONG_WINDOW_DAYS) == (30, 90)


def test_tradeoff_keys_and_stable_activity(store):
    store.add_purchase("c", 1.0, ago(30))  # on the 30-day edge: counts
    store.add_session("c", 1.0, "m", ago(29))
    t = store.get_activity_retention_tradeoff("c", as_of=AS_OF)
    assert list(t) == list(TRADEOFF_KEYS)
    assert t == {"high_short_term_activity": True, "declining_engagement": False, "support_risk": False,
                 "cart_abandonment_risk": False, "retention_concern": False, "activity_trend": "stable"}


def test_high_short_term_activity_needs_both_in_30_days(store):
    store.add_purchase("c", 1.0, ago(30) - US)  # just outside
    store.add_session("c", 1.0, "m", ago(1))
    t = store.get_activity_retention_tradeoff("c", as_of=AS_OF)
    assert t["high_short_term_activity"] is False and t["activity_trend"] == "inactive"


@pytest.mark.parametrize("short,long_extra,declining", [
    (1, 4, True),     # 30-day freq 1, 90-day freq 5/3: ratio 0.6
    (1, 3, False),    # ratio 0.75
    (7, 23, False),   # ratio 7 / (30/3) = 0.7 exactly: not below
    (7, 24, True),    # ratio 7 / (31/3) < 0.7
    (0, 5, False),    # no 30-day purchase: not declining
])
def test_declining_engagement_threshold(store, short, long_extra, declining):
    for i in range(short):
        store.add_purchase("c", 1.0, ago(1 + i * 0.1))
    for i in range(long_extra):
        store.add_purchase("c", 1.0, ago(31 + i))
    store.add_session("c", 1.0, "m", ago(1))
    t = store.get_activity_retention_tradeoff("c", as_of=AS_OF)
    assert t["declining_engagement"] is declining
    assert t["retention_concern"] is declining
    assert t["activity_trend"] == ("declining" if declining else ("stable" if short else "inactive"))


@pytest.mark.parametrize("tickets,escalated,old,risk", [
    (2, 1, 0, False),   # ratio 0.5: not above
    (3, 2, 0, True),    # ratio 0.67
    (3, 0, 0, False),   # 3 tickets: not more than 3
    (4, 0, 0, True),    # 4 tickets
    (3, 0, 5, False),   # older tickets do not count in the 30-day rule
])
def test_support_risk_threshold(store, tickets, escalated, old, risk):
    for i in range(tickets):
        store.add_support_interaction("c", f"t{i}", 1.0, i < escalated, ago(1 + i))
    for i in range(old):
        store.add_support_interaction("c", f"old{i}", 1.0, True, ago(31 + i))
    t = store.get_activity_retention_tradeoff("c", as_of=AS_OF)
    assert t["support_risk"] is risk
    assert t["retention_concern"] is risk


@pytest.mark.parametrize("abandoned,converted,risk", [
    (3, 0, True),
    (2, 0, False),   # not more than 2 abandoned
    (7, 3, False),   # ratio 0.3: not below
    (7, 2, True),    # ratio 2/9
    (3, 2, False),   # ratio 0.4
])
def test_cart_abandonment_risk_threshold(store, abandoned, converted, risk):
    for i in range(abandoned):
        store.add_cart_event("c", "abandoned", 5.0, ago(1 + i))
    for i in range(converted):
        store.add_cart_event("c", "converted", 5.0, ago(1 + i))
    store.add_cart_event("c", "abandoned", 5.0, ago(31))  # outside the 30 days
    t = store.get_activity_retention_tradeoff("c", as_of=AS_OF)
    assert t["cart_abandonment_risk"] is risk
    assert t["retention_concern"] is risk


@pytest.mark.parametrize("age,concern", [
    (timedelta(days=60), False),
    (timedelta(days=61) - US, False),  # floor: 60 whole days
    (timedelta(days=61), True),
    (timedelta(days=400), True),
])
def test_retention_concern_on_recency(store, age, concern):
    store.add_purchase("c", 1.0, AS_OF - age)
    t = store.get_activity_retention_tradeoff("c", as_of=AS_OF)
    assert t["retention_concern"] is concern
    assert t["activity_trend"] == "inactive"


def test_recency_none_is_no_concern(store):
    store.add_session("c", 1.0, "m", ago(100))
    assert store.get_activity_retention_tradeoff("c", as_of=AS_OF)["retention_concern"] is False


def test_all_features_tradeoff_ignores_days(busy):
    for days in (None, 1, 7, 365, 0, -3):
        assert busy.get_all_features("c1", days, as_of=AS_OF)["activity_retention_tradeoff"] == \
            busy.get_activity_retention_tradeoff("c1", as_of=AS_OF)


# -- get_all_features and get_feature_summary ---------------------------------------------
def test_all_features_has_exactly_the_listed_keys(busy):
    features = busy.get_all_features("c1", as_of=AS_OF)
    assert set(features) == set(ALL_FEATURE_KEYS)
    assert features["device_usage_pattern"] == busy.get_device_usage_pattern("c1", as_of=AS_OF)
    assert features["primary_device"] == busy.get_primary_device("c1", as_of=AS_OF)


@pytest.mark.parametrize("days", [None, 7, 30, 0])
def test_all_features_equal_the_single_getters(busy, days):
    f = busy.get_all_features("c1", days, as_of=AS_OF)
    freq_days = days or 30
    assert f["purchase_frequency"] == busy.get_purchase_frequency("c1", freq_days, as_of=AS_OF)
    assert f["session_frequency"] == busy.get_session_frequency("c1", freq_days, as_of=AS_OF)
    assert f["purchase_recency_days"] == busy.get_purchase_recency("c1", as_of=AS_OF)
    pairs = {
        "average_order_value": "get_average_order_value", "total_purchase_value": "get_total_purchase_value",
        "average_session_duration": "get_average_session_duration",
        "device_usage_pattern": "get_device_usage_pattern", "primary_device": "get_primary_device",
        "abandoned_cart_count": "get_abandoned_cart_count", "cart_conversion_ratio": "get_cart_conversion_ratio",
        "abandoned_cart_value": "get_abandoned_cart_value", "support_ticket_count": "get_support_ticket_count",
        "average_response_time_hours": "get_average_response_time", "escalation_count": "get_escalation_count",
        "escalation_ratio": "get_escalation_ratio",
    }
    for key, method in pairs.items():
        assert f[key] == getattr(busy, method)("c1", days, as_of=AS_OF), key


def test_metadata_key_only_when_set(busy):
    assert "metadata" not in busy.get_all_features("c1", as_of=AS_OF)
    busy.set_customer_metadata("c1", {"tier": "gold", "tags": ["a", "b"], "nested": {"x": 1}})
    features = busy.get_all_features("c1", as_of=AS_OF)
    assert set(features) == set(ALL_FEATURE_KEYS) | {"metadata"}
    assert features["metadata"] == {"tier": "gold", "tags": ["a", "b"], "nested": {"x": 1}}
    assert "metadata" not in busy.get_all_features("c2", as_of=AS_OF)
    # a customer with only metadata is known, with zero features
    busy.set_customer_metadata("m", {"a": 1})
    only = busy.get_all_features("m", as_of=AS_OF)
    assert only["metadata"] == {"a": 1} and only["support_ticket_count"] == 0


def test_feature_summary_sections(busy):
    f = busy.get_all_features("c1", as_of=AS_OF)
    s = busy.get_feature_summary("c1", as_of=AS_OF)
    assert set(s) == {"customer_id", "purchase_metrics", "engagement_metrics", "cart_metrics", "support_metrics",
                      "retention_indicators"}
    assert s["customer_id"] == "c1"
    assert s["purchase_metrics"] == {"frequency_per_month": f["purchase_frequency"],
                                     "average_order_value": f["average_order_value"],
                                     "days_since_last_purchase": f["purchase_recency_days"],
                                     "total_value": f["total_purchase_value"]}
    assert s["engagement_metrics"] == {"session_frequency_per_month": f["session_frequency"],
                                       "average_duration_seconds": f["average_session_duration"],
                                       "primary_device": f["primary_device"]}
    assert s["cart_metrics"] == {"conversion_ratio": f["cart_conversion_ratio"],
                                 "abandoned_count": f["abandoned_cart_count"],
                                 "abandoned_value": f["abandoned_cart_value"]}
    assert s["support_metrics"] == {"ticket_count": f["support_ticket_count"],
                                    "average_response_hours": f["average_response_time_hours"],
                                    "escalation_ratio": f["escalation_ratio"]}
    t = f["activity_retention_tradeoff"]
    assert s["retention_indicators"] == {"retention_concern": t["retention_concern"],
                                         "activity_trend": t["activity_trend"],
                                         "declining_engagement": t["declining_engagement"]}


def test_feature_summary_of_unknown_customer(store):
    s = store.get_feature_summary("nobody", as_of=AS_OF)
    assert s["customer_id"] == "nobody"
    assert s["purchase_metrics"]["days_since_last_purchase"] is None
    assert s["engagement_metrics"]["primary_device"] is None
    assert s["support_metrics"]["average_response_hours"] is None
    assert s["retention_indicators"] == {"retention_concern": False, "activity_trend": "inactive",
                                         "declining_engagement": False}


# -- cohorts ------------------------------------------------------------------------------------
def test_cohort_features_skip_falsy_and_collapse_duplicates(busy):
    cohort = busy.get_cohort_features(["c1", "", None, "c2", "c1", "nobody", "c2"], as_of=AS_OF)
    assert list(cohort) == ["c1", "c2", "nobody"]
    for cid in cohort:
        assert cohort[cid] == busy.get_all_features(cid, as_of=AS_OF)
    cohort7 = busy.get_cohort_features(["c1"], 7, as_of=AS_OF)
    assert cohort7 == {"c1": busy.get_all_features("c1", 7, as_of=AS_OF)}


def test_cohort_features_of_nothing_is_empty(busy):
    assert busy.get_cohort_features([], as_of=AS_OF) == {}
    assert busy.get_cohort_features(["", None], as_of=AS_OF) == {}
    assert busy.get_cohort_features(iter(()), as_of=AS_OF) == {}


def test_cohort_collapses_spellings_of_the_same_id(store):
    store.add_purchase(17850, 5.0, ago(1))
    cohort = store.get_cohort_features([17850, "17850"], as_of=AS_OF)
    assert len(cohort) == 1
    assert store.get_cohort_summary([17850, "17850", 17850.0], as_of=AS_OF)["size"] == 1
    assert store.get_total_purchase_value("17850", as_of=AS_OF) == 5.0


def test_cohort_summary_size_and_means(busy):
    summary = busy.get_cohort_summary(["c1", "c2", "c1", "", None, "nobody"], as_of=AS_OF)
    assert summary["size"] == 3
    agg = summary["aggregates"]
    assert set(agg) <= set(NUMERIC_FEATURES)
    assert agg["total_purchase_value"] == pytest.approx((30.5 + 99.0 + 0.0) / 3)
    assert agg["support_ticket_count"] == pytest.approx(1.0)
    # None left out of the mean: only c1 has response times; recency: c1 1 day, c2 2 days
    assert agg["average_response_time_hours"] == pytest.approx(3.0)
    assert agg["purchase_recency_days"] == pytest.approx(1.5)
    for key in ("device_usage_pattern", "primary_device", "activity_retention_tradeoff", "metadata"):
        assert key not in agg
    assert all(type(v) is float for v in agg.values())


def test_cohort_summary_leaves_out_features_without_values(busy):
    agg = busy.get_cohort_summary(["c2", "nobody"], as_of=AS_OF)["aggregates"]
    assert "average_response_time_hours" not in agg  # no numeric value in the cohort
    assert agg["purchase_recency_days"] == 2.0
    assert agg["escalation_count"] == 0.0
    agg = busy.get_cohort_summary(["nobody"], as_of=AS_OF)["aggregates"]
    assert "purchase_recency_days" not in agg and "average_response_time_hours" not in agg
    assert set(agg) == set(NUMERIC_FEATURES) - {"purchase_recency_days", "average_response_time_hours"}


def test_cohort_summary_days_and_empty(busy):
    assert busy.get_cohort_summary([], as_of=AS_OF) == {"size": 0, "aggregates": {}}
    assert busy.get_cohort_summary(["", None, 0], as_of=AS_OF) == {"size": 0, "aggregates": {}}
    agg = busy.get_cohort_summary(["c1"], 30, as_of=AS_OF)["aggregates"]
    assert agg["total_purchase_value"] == 10.0
    assert agg["support_ticket_count"] == 2.0


@pytest.mark.parametrize("days", [10 ** 6, 10 ** 9, 10 ** 12, 1e300])
def test_huge_windows_are_all_time(store, days):
    """A window longer than any representable span keeps every event (no OverflowError)."""
    store.add_purchase("c", 1.0, "0001-01-02T00:00:00Z")
    store.add_purchase("c", 2.0, ago(1))
    store.add_session("c", 5, "tv", "0001-01-02T00:00:00Z")
    assert store.get_total_purchase_value("c", days, as_of=AS_OF) == 3.0
    assert store.get_purchase_frequency("c", days, as_of=AS_OF) == pytest.approx(2 / (days / 30))
    assert store.get_device_usage_pattern("c", days, as_of=AS_OF) == {"tv": 1}
    assert store.get_all_features("c", days, as_of=AS_OF)["total_purchase_value"] == 3.0
    assert store.get_cohort_summary(["c"], days, as_of=AS_OF)["aggregates"]["total_purchase_value"] == 3.0


def test_naive_datetimes_are_local_time_in_any_zone(store):
    """Naive event times and as_of are local time, as datetime.now() gives (whatever the
    machine's zone; test_seed_properties also checks a fixed +05:30 zone)."""
    naive = datetime(2025, 5, 31, 12, 0)
    instant = naive.astimezone(timezone.utc)  # the local-time reading of the naive value
    store.add_purchase("c", 1.0, naive)
    store.add_purchase("c", 2.0, "2025-05-31T12:00:00")  # a naive ISO string: local too
    assert store.get_total_purchase_value("c", as_of=instant) == 3.0
    assert store.get_total_purchase_value("c", as_of=instant - US) == 0.0
    assert store.get_total_purchase_value("c", as_of=naive) == 3.0
    assert store.get_total_purchase_value("c", as_of=datetime(2025, 5, 31, 11, 59, 59, 999999)) == 0.0
    now = datetime.now()
    store.add_purchase("d", 1.0, now - timedelta(days=2, hours=2))  # 2 days even across a DST change
    assert store.get_purchase_recency("d") == 2


def test_days_true_is_refused_after_days_1_was_read(busy):
    # the shared parameters are built once per (shop, days, frequency days): True is not 1 there
    busy.get_all_features("c1", 1, as_of=AS_OF)
    with pytest.raises(ValueError, match="days"):
        busy.get_all_features("c1", True, as_of=AS_OF)
    assert busy.get_all_features("c1", 1, as_of=AS_OF) == busy.get_all_features("c1", 1.0, as_of=AS_OF)
