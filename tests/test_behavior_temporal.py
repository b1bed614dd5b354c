"""Behaviour features, temporal family: preferred_shopping_time,
shopping_day_preference, seasonal_behavior, loyalty_trend (docs/behavior.md),
in the store's timezone."""

from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from oracle_behavior import AS_OF, DAY, LONG, check_family, histories, iso

ZONES = st.sampled_from(("UTC", "Europe/London", "America/New_York", "Asia/Kolkata"))


@settings(max_examples=20, deadline=None)
@given(histories(), ZONES, st.sampled_from((AS_OF, AS_OF - LONG)))
def test_temporal_family_matches_oracle(h, tz, as_of):
    check_family("temporal", h, tz=tz, as_ofs=(as_of,))


def test_local_hour_and_weekday():
    # 2025-03-03 (a Monday) 23:30 UTC: Tuesday 05:00 in Kolkata, Monday 18:30 in New York
    for tz, hour, weekday in (("UTC", 23, 0), ("Asia/Kolkata", 5, 1), ("America/New_York", 18, 0)):
        with CustomerActivityFeatures(timezone=tz) as store:
            store.add_purchase("c", 1.0, "2025-03-03T23:30:00Z", order_id="o1")
            f = store.get_behavior_features("c", as_of=iso(AS_OF))
            assert (f["preferred_shopping_time"], f["shopping_day_preference"]) == (hour, weekday), tz
    # before 1970 (negative seconds: the hour and weekday are floored remainders): 1969-12-31
    # (a Wednesday) 23:30:00.5 UTC is Thursday 1970-01-01 05:00:00.5 in Kolkata
    for tz, hour, weekday in (("UTC", 23, 2), ("Asia/Kolkata", 5, 3), ("America/New_York", 18, 2)):
        with CustomerActivityFeatures(timezone=tz) as store:
            store.add_purchase("c", 1.0, "1969-12-31T23:30:00.500000Z", order_id="o1")
            f = store.get_behavior_features("c", as_of=iso(AS_OF))
            assert (f["preferred_shopping_time"], f["shopping_day_preference"]) == (hour, weekday), tz


def test_loyalty_trend_window_edges():
    with CustomerActivityFeatures() as store:
        times = {"recent_edge": AS_OF - 90 * DAY, "earlier": AS_OF - 90 * DAY - 1,
                 "earlier_edge": AS_OF - 180 * DAY, "outside": AS_OF - 180 * DAY - 1, "at": AS_OF}
        for k, t in times.items():
            store.add_purchase("c", 1.0, iso(t), order_id=k)
        f = store.get_behavior_features("c", as_of=iso(AS_OF))
        assert f["loyalty_trend"] == (2 - 2) / 3
        # one microsecond later: recent_edge moves to the earlier half, earlier_edge leaves the window
        assert store.get_behavior_features("c", as_of=iso(AS_OF + 1))["loyalty_trend"] == (1 - 2) / 3
        assert store.get_behavior_features("x", as_of=iso(AS_OF))["loyalty_trend"] == 0.0


def test_seasonal_behavior():
    with CustomerActivityFeatures() as store:
        for k, month in enumerate((1, 2, 7, 12)):
            store.add_purchase("c", 1.0, f"2024-{month:02d}-10T12:00:00Z", order_id=f"o{k}")
        f = store.get_behavior_features("c", as_of="2025-01-01T00:00:00Z")
        assert f["seasonal_behavior"] == (3 / 4 - 0.25) / 0.75
        assert store.get_behavior_features("x", as_of=iso(AS_OF))["seasonal_behavior"] is None
