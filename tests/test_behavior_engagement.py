"""Behaviour features, engagement family: total_sessions, avg_session_duration,
page_views_per_session, bounce_rate, engagement_score (docs/behavior.md)."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from oracle_behavior import AS_OF, LONG, MINUTE, check_family, histories, iso

AS_OFS = st.sampled_from((AS_OF, AS_OF - LONG))


@settings(max_examples=20, deadline=None)
@given(histories(), AS_OFS)
def test_engagement_family_matches_oracle(h, as_of):
    check_family("engagement", h, as_ofs=(as_of,))


def test_page_views_from_the_column_or_from_interactions():
    with CustomerActivityFeatures() as store:
        t = AS_OF - 60 * MINUTE
        store.add_session("c", 300.0, "mobile", iso(t), session_id="s1", page_views=4)
        store.add_session("c", None, "mobile", session_id="s2", session_start=iso(t), session_end=iso(t + 10 * MINUTE))
        store.add_interaction("c", "page_view", iso(t + MINUTE), session_id="s2", event_id="i1")
        store.add_interaction("c", "search", iso(t + 2 * MINUTE), session_id="s2", event_id="i2")
        store.add_session("c", 60.0, "mobile", iso(t), session_id="s3")  # no page-view information
        f = store.get_behavior_features("c", as_of=iso(AS_OF))
        assert f["total_sessions"] == 3
        assert f["avg_session_duration"] == (300.0 + 600.0 + 60.0) / 3
        assert f["page_views_per_session"] == (4 + 1) / 2  # s3 unknown: left out
        assert f["bounce_rate"] == 0.5                    # s2 has one page view
        expected = 0.4 * 3 / 20 + 0.3 * (320.0 / 600) + 0.3 * (2.5 / 10)
        assert math.isclose(f["engagement_score"], expected, rel_tol=1e-12)


def test_score_is_bounded_and_zero_without_sessions():
    with CustomerActivityFeatures() as store:
        assert store.get_behavior_features("c", as_of=iso(AS_OF))["engagement_score"] == 0.0
        for k in range(30):
            store.add_session("c", 5000.0, "desktop", iso(AS_OF - k * MINUTE), session_id=f"s{k}", page_views=50)
        f = store.get_behavior_features("c", as_of=iso(AS_OF))
        assert f["engagement_score"] == 1.0 and f["bounce_rate"] == 0.0
