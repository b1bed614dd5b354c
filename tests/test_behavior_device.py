"""Behaviour features, device and channel family: preferred_device,
channel_preference, mobile_usage_pattern, desktop_usage_pattern (docs/behavior.md)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from oracle_behavior import AS_OF, LONG, MINUTE, check_family, histories, iso

AS_OFS = st.sampled_from((AS_OF, AS_OF - LONG))


@settings(max_examples=20, deadline=None)
@given(histories(), AS_OFS)
def test_device_family_matches_oracle(h, as_of):
    check_family("device", h, as_ofs=(as_of,))


def test_shares_ties_and_unknown():
    with CustomerActivityFeatures() as store:
        sessions = [("Mobile", None, "google"), ("desktop", "email", None), ("desktop", None, None),
                    (None, "email", "x"), ("tablet", None, "google"), ("Mobile", None, None)]
        for k, (device, channel, referrer) in enumerate(sessions):
            store.add_session("c", 10.0, device, iso(AS_OF - (10 - k) * MINUTE), session_id=f"s{k}",
                              channel=channel, referrer=referrer)
        f = store.get_behavior_features("c", as_of=iso(AS_OF))
        assert f["preferred_device"] == "Mobile"            # 2-2 with desktop: Mobile was seen first
        assert f["channel_preference"] == "google"          # channel, else referrer: google 2, email 2 -> first
        assert f["mobile_usage_pattern"] == 3 / 6           # Mobile x2, tablet
        assert f["desktop_usage_pattern"] == 2 / 6
        empty = store.get_behavior_features("x", as_of=iso(AS_OF))
        assert [empty[k] for k in ("preferred_device", "channel_preference", "mobile_usage_pattern",
                                   "desktop_usage_pattern")] == [None] * 4
