"""Behaviour features, purchase family: total_purchases, avg_purchase_value,
purchase_frequency, purchase_consistency, seasonal_purchase_pattern (docs/behavior.md)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from oracle_behavior import AS_OF, DAY, LONG, check_family, histories, iso

AS_OFS = st.sampled_from((AS_OF, AS_OF - LONG))


@settings(max_examples=20, deadline=None)
@given(histories(), AS_OFS)
def test_purchase_family_matches_oracle(h, as_of):
    check_family("purchase", h, as_ofs=(as_of,))


def test_empty_history():
    with CustomerActivityFeatures() as store:
        f = store.get_behavior_features("nobody", as_of=iso(AS_OF))
        assert (f["total_purchases"], f["avg_purchase_value"], f["purchase_frequency"],
                f["purchase_consistency"], f["seasonal_purchase_pattern"]) == (0, None, 0.0, None, None)
        assert store.get_behavior_features("", as_of=iso(AS_OF)) == {}


def test_hand_worked():
    with CustomerActivityFeatures() as store:
        # gaps of 10 and 30 days: mean 20, variance 100 -> 400 / 500
        for k, day in enumerate((-100, -90, -60)):
            store.add_purchase("c", 10.0 * (k + 1), iso(AS_OF + day * DAY), order_id=f"o{k}")
        store.add_purchase("c", 1000.0, iso(AS_OF + 1), order_id="after")  # 1 us after as_of: ignored
        f = store.get_behavior_features("c", as_of=iso(AS_OF))
        assert f["total_purchases"] == 3
        assert f["avg_purchase_value"] == 20.0
        assert f["purchase_consistency"] == 0.8
        assert f["purchase_frequency"] == 3 * 30.0 / 40  # active span: first .. last purchase
        # 2025-02-21 (winter), 2025-03-03, 2025-04-02 (spring): spring has more
        assert f["seasonal_purchase_pattern"] == "spring"
        assert store.get_behavior_features("c", as_of=iso(AS_OF + 1))["total_purchases"] == 4


def test_season_tie_goes_to_the_earliest_first_purchase():
    with CustomerActivityFeatures() as store:
        store.add_purchase("c", 1.0, "2024-07-01T00:00:00Z", order_id="summer")
        store.add_purchase("c", 1.0, "2024-01-01T00:00:00Z", order_id="winter")
        assert store.get_behavior_features("c", as_of="2025-01-01T00:00:00Z")["seasonal_purchase_pattern"] == "winter"


def test_equal_times_are_perfectly_consistent():
    with CustomerActivityFeatures() as store:
        store.add_purchase("c", 1.0, iso(AS_OF), order_id="a")
        store.add_purchase("c", 1.0, iso(AS_OF), order_id="b")
        f = store.get_behavior_features("c", as_of=iso(AS_OF))
        assert f["purchase_consistency"] == 1.0
        assert f["purchase_frequency"] == 60.0  # span floored to 1 day
