"""Behaviour features, segmentation family: customer_segment, RFM scores,
risk_score, historical_value, account_age_days and the retention flags (docs/behavior.md)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from oracle_behavior import ALL_KEYS, AS_OF, DAY, LONG, check_family, histories, iso
from store import behavior

AS_OFS = st.sampled_from((AS_OF, AS_OF - LONG))


@settings(max_examples=20, deadline=None)
@given(histories(), AS_OFS)
def test_segmentation_family_matches_oracle(h, as_of):
    check_family("segmentation", h, as_ofs=(as_of,))


def test_rfm_scores_and_segments_over_five_customers():
    with CustomerActivityFeatures() as store:
        # customer k: k+1 purchases of 10 each, 10 days apart, the last one (100 - 20 k) days before as_of
        for k in range(5):
            for j in range(k + 1):
                store.add_purchase(f"c{k}", 10.0, iso(AS_OF - (100 - 20 * k) * DAY - 10 * j * DAY),
                                   order_id=f"o{k}.{j}")
        rows = store.get_cohort_behavior_features([f"c{k}" for k in range(5)], as_of=iso(AS_OF))
        for k in range(5):
            f = rows[f"c{k}"]
            assert (f["recency_score"], f["frequency_score"], f["monetary_score"]) == (k + 1,) * 3
            assert f["historical_value"] == 10.0 * (k + 1)
        assert [rows[f"c{k}"]["customer_segment"] for k in range(5)] == [
            "hibernating", "hibernating", "needs_attention", "champions", "champions"]
        # risk: c0 and c1 last bought more than 60 days ago (c2: exactly 60, not more)
        assert [rows[f"c{k}"]["risk_score"] for k in range(5)] == [25, 25, 0, 0, 0]
        assert rows["c0"]["recency_risk"] is True and rows["c0"]["retention_concern"] is True


def test_ties_share_a_score_and_new_and_no_purchases():
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 5.0, iso(AS_OF - 40 * DAY), order_id="1")
        store.add_purchase("b", 5.0, iso(AS_OF - 40 * DAY), order_id="2")
        store.add_purchase("n", 5.0, iso(AS_OF - 30 * DAY), order_id="3")  # exactly 30 days: new
        store.set_customer_metadata("a", {}, created_at=iso(AS_OF - 10 * DAY - 1))
        store.set_customer_metadata("b", {}, created_at=iso(AS_OF + 1))
        a = store.get_behavior_features("a", as_of=iso(AS_OF))
        b = store.get_behavior_features("b", as_of=iso(AS_OF))
        assert (a["recency_score"], a["frequency_score"], a["monetary_score"]) == (1, 1, 1)
        assert (b["recency_score"], b["frequency_score"], b["monetary_score"]) == (1, 1, 1)
        assert a["account_age_days"] == 10 and b["account_age_days"] is None
        assert store.get_behavior_features("n", as_of=iso(AS_OF))["customer_segment"] == "new"
        z = store.get_behavior_features("z", as_of=iso(AS_OF))
        assert z["customer_segment"] == "no_purchases" and z["recency_score"] is None
        assert z["risk_score"] == 0 and z["historical_value"] == 0.0


def test_risk_score_is_bounded_rule_based():
    with CustomerActivityFeatures() as store:
        # declining: 1 purchase in 30 days vs 5 in 90 (1 / (5 / 3) < 0.7); tickets; abandoned carts
        for k, day in enumerate((80, 75, 70, 65, 10)):
            store.add_purchase("c", 1.0, iso(AS_OF - day * DAY), order_id=f"o{k}")
        for k in range(4):
            store.add_support_interaction("c", f"t{k}", 1.0, True, iso(AS_OF - k * DAY))
            store.add_cart_event("c", "abandoned", 1.0, iso(AS_OF - k * DAY), cart_id=f"k{k}")
        f = store.get_behavior_features("c", as_of=iso(AS_OF))
        assert (f["declining_engagement"], f["support_risk"], f["cart_abandonment_risk"]) == (True, True, True)
        assert f["recency_risk"] is False and f["risk_score"] == 75
        store.add_purchase("old", 1.0, iso(AS_OF - 61 * DAY), order_id="x")
        f = store.get_behavior_features("old", as_of=iso(AS_OF))
        assert f["recency_risk"] is True and f["risk_score"] == 25
        assert store.get_behavior_features("old", as_of=iso(AS_OF - 1))["risk_score"] == 0  # 60.99 days


def test_predictive_fields_are_not_built():
    with CustomerActivityFeatures() as store:
        f = store.get_behavior_features("c", as_of=iso(AS_OF))
        assert "churn_probability" not in f and "lifetime_value_prediction" not in f
        assert set(behavior.NOT_BUILT) == {"churn_probability", "lifetime_value_prediction"}
        assert list(f) == list(ALL_KEYS)  # the oracle's frozen copy: keys and order
        assert all(v is None or type(v) is behavior.KEY_TYPES[k] for k, v in f.items())


# The refresh's boundary form of the RFM scores (store.behavior.refresh_segments) against the
# rank form (behavior_rfm_scores, the rule): both SQL texts as the store runs them, over one
# population of stored measures with ties, every number of classes.
_MEASURES = st.tuples(st.integers(0, 6), st.integers(1, 4), st.sampled_from((0.0, 9.5, 10.0, 10.0, 250.25)))


@settings(max_examples=150, deadline=None)
@given(st.lists(_MEASURES, max_size=40), st.integers(1, 7), st.integers(0, 3))
def test_the_boundary_form_of_the_scores_equals_the_rank_rule(members, bins, others):
    import sqlite3

    from store.resources import query

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE customer_features_stored (shop_id TEXT, customer_id TEXT, rfm_last_us INTEGER, "
                 "rfm_frequency INTEGER, rfm_monetary REAL, rfm_first_us INTEGER, PRIMARY KEY (shop_id, customer_id))")
    rows = [("s", f"c{i:03}", last, freq, value, 0) for i, (last, freq, value) in enumerate(members)]
    rows += [("s", f"n{i}", None, None, None, None) for i in range(others)]  # customers without a purchase
    rows += [("other", f"c{i:03}", 99, 9, 999.0, 0) for i in range(others)]  # another shop's members
    conn.executemany("INSERT INTO customer_features_stored VALUES (?, ?, ?, ?, ?, ?)", rows)
    behavior.index_stored(conn)
    params = dict(behavior.parameters("s"), rfm_bins=bins, as_of_us=1)
    population = ("behavior_rfm_population AS (SELECT :as_of_us AS as_of_us, customer_id, rfm_last_us AS last_us, "
                  "rfm_frequency AS frequency, rfm_monetary AS monetary, rfm_first_us AS first_us "
                  "FROM customer_features_stored WHERE shop_id = :shop_id AND rfm_frequency > 0)")
    ranked = conn.execute(f"WITH {population},\nbehavior_rfm_ranks AS (\n{query('behavior_rfm_ranks')}\n)\n"
                          f"SELECT customer_id, recency_score, frequency_score, monetary_score FROM (\n"
                          f"{query('behavior_rfm_scores')}\n) ORDER BY customer_id", params).fetchall()
    behavior.stage_boundaries(conn, "behavior_rfm_boundaries_new", params)
    target = ("target AS (SELECT rowid AS target_id, customer_id, :as_of_us AS as_of_us "
              "FROM customer_features_stored WHERE shop_id = :shop_id)")
    bounded = conn.execute(f"WITH {target}\nSELECT customer_id, recency_score, frequency_score, monetary_score "
                           f"FROM (\n{query('behavior_rfm_scores_bounded')}\n) ORDER BY customer_id", params).fetchall()
    assert bounded == ranked
    assert len(ranked) == len(members)
