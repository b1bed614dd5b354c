"""Behaviour features, search and discovery family: search_frequency,
search_query_diversity, product_discovery_method, category_exploration (docs/behavior.md)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from oracle_behavior import AS_OF, DAY, LONG, MINUTE, check_family, histories, iso

AS_OFS = st.sampled_from((AS_OF, AS_OF - LONG))


@settings(max_examples=20, deadline=None)
@given(histories(), AS_OFS)
def test_search_family_matches_oracle(h, as_of):
    check_family("search", h, as_ofs=(as_of,))


def _add(store, customer, kind, t, **kw):
    store.add_interaction(customer, kind, iso(t), **kw)


def test_discovery_paths_and_gap_edge():
    with CustomerActivityFeatures() as store:
        t = AS_OF - DAY
        # p1 found by a search exactly 30 minutes before its first view -> 'search'
        _add(store, "c", "search", t, search_query="Shoes", event_id="e1")
        _add(store, "c", "product_view", t + 30 * MINUTE, product_id="p1", event_id="e2")
        _add(store, "c", "purchase", t + 40 * MINUTE, product_id="p1", event_id="e3")
        # p2 viewed 30 minutes + 1 us after a category view -> 'direct'
        _add(store, "c", "category_view", t + 60 * MINUTE, category="shoes", event_id="e4")
        _add(store, "c", "product_view", t + 90 * MINUTE + 1, product_id="p2", event_id="e5")
        _add(store, "c", "purchase", t + 95 * MINUTE, product_id="p2", event_id="e6")
        # p3 after a category view -> 'category_browse'; p4 the same
        _add(store, "c", "category_view", t + 200 * MINUTE, category="boots", event_id="e7")
        _add(store, "c", "purchase", t + 201 * MINUTE, product_id="p3", event_id="e8")
        f = store.get_behavior_features("c", as_of=iso(AS_OF))
        # one vote each: search, direct, category_browse -> tie: the earliest purchase wins
        assert f["product_discovery_method"] == "search"
        _add(store, "c", "category_view", t + 300 * MINUTE, event_id="e9")
        _add(store, "c", "purchase", t + 301 * MINUTE, product_id="p4", event_id="e10")
        f = store.get_behavior_features("c", as_of=iso(AS_OF))
        assert f["product_discovery_method"] == "category_browse"
        assert f["category_exploration"] == 2
        assert f["search_query_diversity"] == 1.0
        # 1 search over the span first .. last interaction (301 minutes, floored to 1 day) -> 30 per 30 days
        assert f["search_frequency"] == 30.0


def test_attribution_fallback_and_query_normalisation():
    with CustomerActivityFeatures() as store:
        store.add_attribution("c", "o1", "email", "newsletter", iso(AS_OF - DAY))
        store.add_attribution("c", "o2", "google", "cpc", iso(AS_OF - 2 * DAY))
        store.add_attribution("c", "o3", "google", "cpc", iso(AS_OF + 1))  # after as_of
        for k, q in enumerate((" Shoes", "shoes", "SHOES ", "boots", " ")):
            _add(store, "c", "search", AS_OF - k * MINUTE, search_query=q, event_id=f"s{k}")
        f = store.get_behavior_features("c", as_of=iso(AS_OF))
        assert f["product_discovery_method"] == "attribution:google"  # tie 1-1: google came first
        assert f["search_query_diversity"] == 2 / 4
        empty = store.get_behavior_features("x", as_of=iso(AS_OF))
        assert (empty["search_frequency"], empty["search_query_diversity"], empty["product_discovery_method"],
                empty["category_exploration"]) == (0.0, None, None, 0)
