"""get_behavior_features reads the RFM scores from a current materialized snapshot
(store.behavior.snapshot_current): same values as ranking the shop's population, and
the population path (checked against the oracle in test_behavior_segmentation.py)
whenever the snapshot is not current."""

from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from oracle_behavior import AS_OF, CUSTOMERS, DAY, FAMILIES, assert_family, behavior_features, histories, iso, load, \
    stored
from store import behavior, timeutil

KEYS = FAMILIES["segmentation"]


def _current(store, customer_id, as_of_us):
    return behavior.snapshot_current(store.conn, store.shop_id, customer_id, as_of_us)


@settings(max_examples=15, deadline=None)
@given(histories(max_events=8), st.sampled_from((0, 1, DAY, 61 * DAY)))
def test_snapshot_scores_equal_population_scores_and_the_oracle(h, step):
    with CustomerActivityFeatures() as store:
        load(store, h)
        h = stored(h)
        start = AS_OF - 2 * DAY
        store.materialize(as_of=iso(start))
        for as_of in (start, start + step):
            if as_of != start:
                store.refresh(as_of=iso(as_of))
            for c in CUSTOMERS + ("zz",):
                has_row = store.conn.execute("SELECT 1 FROM customer_features WHERE customer_id = ?",
                                             [c]).fetchone() is not None
                assert _current(store, c, as_of) == has_row  # a customer without events has no row
                actual = store.get_behavior_features(c, as_of=iso(as_of))
                assert_family(actual, behavior_features(h, c, as_of), KEYS, f"(snapshot, {c!r}, {iso(as_of)})")


def test_snapshot_not_used_when_stale():
    with CustomerActivityFeatures() as store:
        for k, (c, days, value) in enumerate((("a", 40, 10.0), ("b", 3, 50.0), ("c", 100, 5.0), ("a", 2, 7.0))):
            store.add_purchase(c, value, iso(AS_OF - days * DAY), order_id=f"o{k}")
        store.materialize(as_of=iso(AS_OF))
        as_of_us = timeutil.to_us(iso(AS_OF))
        assert _current(store, "a", as_of_us)
        assert not _current(store, "a", as_of_us + 1)           # another as_of
        before = store.get_behavior_features("c", as_of=iso(AS_OF))
        # c becomes the best customer: the snapshot is stale until the next run
        store.add_purchase("c", 500.0, iso(AS_OF - DAY), order_id="o9")
        store.add_purchase("c", 500.0, iso(AS_OF - DAY // 2), order_id="o10")
        after = store.get_behavior_features("c", as_of=iso(AS_OF))
        assert not _current(store, "c", as_of_us)
        assert (after["recency_score"], after["frequency_score"], after["monetary_score"]) != (
            before["recency_score"], before["frequency_score"], before["monetary_score"])
        store.refresh(as_of=iso(AS_OF))
        assert _current(store, "c", as_of_us)
        assert store.get_behavior_features("c", as_of=iso(AS_OF)) == after
