"""Behaviour features, shopping patterns family: cart_abandonment_rate,
checkout_completion_rate, product_comparison_behavior, impulse_purchase_tendency (docs/behavior.md)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from oracle_behavior import AS_OF, DAY, LONG, MINUTE, check_family, histories, iso

AS_OFS = st.sampled_from((AS_OF, AS_OF - LONG))


@settings(max_examples=20, deadline=None)
@given(histories(), AS_OFS)
def test_shopping_family_matches_oracle(h, as_of):
    check_family("shopping", h, as_ofs=(as_of,))


def test_hand_worked_sessions():
    t = AS_OF - DAY
    events = [
        # s1: views p1, p2, cart, checkout, purchase of p1 10 minutes after its first view (impulse)
        ("s1", "product_view", 0, "p1"), ("s1", "product_view", 1, "p2"), ("s1", "add_to_cart", 2, "p1"),
        ("s1", "checkout", 3, None), ("s1", "purchase", 10, "p1"),
        # s2: views p3, cart, checkout, no purchase
        ("s2", "product_view", 100, "p3"), ("s2", "add_to_cart", 101, "p3"), ("s2", "checkout", 102, None),
        # s3: buys p2, first seen 200 minutes earlier in s1 -> not an impulse purchase
        ("s3", "purchase", 201, "p2"),
    ]
    with CustomerActivityFeatures() as store:
        for k, (s, kind, minute, product) in enumerate(events):
            store.add_interaction("c", kind, iso(t + minute * MINUTE), session_id=s, product_id=product,
                                  event_id=f"e{k}")
        f = store.get_behavior_features("c", as_of=iso(AS_OF))
        assert f["cart_abandonment_rate"] == 0.5
        assert f["checkout_completion_rate"] == 0.5
        assert f["product_comparison_behavior"] == 0.5   # s1 viewed 2 products, s2 one
        assert f["impulse_purchase_tendency"] == 0.5


def test_cart_events_fallback_and_nulls():
    with CustomerActivityFeatures() as store:
        f = store.get_behavior_features("c", as_of=iso(AS_OF))
        assert [f[k] for k in ("cart_abandonment_rate", "checkout_completion_rate",
                               "product_comparison_behavior", "impulse_purchase_tendency")] == [None] * 4
        store.add_cart_event("c", "abandoned", 5.0, iso(AS_OF), cart_id="k1")
        store.add_cart_event("c", "converted", 5.0, iso(AS_OF - DAY), cart_id="k2")
        store.add_cart_event("c", "abandoned", 5.0, iso(AS_OF + 1), cart_id="k3")  # after as_of
        assert store.get_behavior_features("c", as_of=iso(AS_OF))["cart_abandonment_rate"] == 0.5
