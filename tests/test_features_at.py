"""Point-in-time rows: features_at(pairs), each pair with its own cutoff."""

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from oracle_feature_store import AS_OF_US, CUSTOMERS, DAY_US, events, load, offsets
from store import timeutil

cutoffs = offsets().map(lambda off: timeutil.from_us(AS_OF_US - off))
pairs_strategy = st.lists(st.tuples(st.sampled_from(CUSTOMERS + ("nobody",)), cutoffs), max_size=8)


@settings(max_examples=15, deadline=None)
@given(history=events(), pairs=pairs_strategy, days=st.sampled_from((None, 7, 30)))
def test_features_at_equals_get_all_features_per_pair(history, pairs, days):
    with CustomerActivityFeatures() as store:
        load(store, history)
        got = list(store.features_at(pairs, days=days))
        assert len(got) == len(pairs)
        for (cid, cutoff), (got_cid, got_cutoff, features) in zip(pairs, got):
            assert got_cid == cid and got_cutoff == cutoff
            assert features == store.get_all_features(cid, days, as_of=cutoff)


@settings(max_examples=15, deadline=None)
@given(history=events(), later=events(min_size=1), pairs=pairs_strategy)
def test_no_event_after_a_cutoff_influences_a_row(history, later, pairs):
    """Rows from the full history equal rows from a store holding, for each pair, only the
    events at or before that pair's cutoff; adding events after every cutoff changes nothing."""
    with CustomerActivityFeatures() as store:
        load(store, history)
        got = list(store.features_at(pairs))
        for (cid, cutoff), (_, _, features) in zip(pairs, got):
            cutoff_us = timeutil.to_us(cutoff)
            past = [(k, r) for k, r in history
                    if timeutil.to_us(next(v for key, v in r.items() if key.endswith("_date"))) <= cutoff_us]
            with CustomerActivityFeatures() as truncated:
                load(truncated, past)
                assert features == truncated.get_all_features(cid, as_of=cutoff)
        # events strictly after the latest cutoff (shifted into the future) leave every row unchanged
        if pairs:
            latest = max(timeutil.to_us(c) for _, c in pairs)
            shift = latest + DAY_US - min(timeutil.to_us(next(v for k, v in r.items() if k.endswith("_date")))
                                          for _, r in later)
            future = []
            for kind, rec in later:
                rec = dict(rec)
                key = next(k for k in rec if k.endswith("_date"))
                rec[key] = timeutil.iso(timeutil.to_us(rec[key]) + shift)
                for id_key in ("order_id", "session_id", "cart_id", "ticket_id"):
                    if id_key in rec:
                        rec[id_key] = "future-" + rec[id_key]
                future.append((kind, rec))
            load(store, future)
            assert list(store.features_at(pairs)) == got


def test_pairs_keep_their_order_duplicates_and_falsy_ids():
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 10.0, "2025-01-01T00:00:00Z")
        store.add_purchase("a", 30.0, "2025-02-01T00:00:00Z")
        jan = datetime(2025, 1, 15, tzinfo=timezone.utc)
        feb = datetime(2025, 2, 15, tzinfo=timezone.utc)
        rows = list(store.features_at([("a", feb), ("a", jan), ("", jan), (None, feb), ("a", feb), (17850.0, jan)]))
        assert [r[0] for r in rows] == ["a", "a", None, None, "a", "17850"]
        assert [r[2].get("total_purchase_value") for r in rows] == [40.0, 10.0, None, None, 40.0, 0.0]
        assert rows[2][2] == {} and rows[3][2] == {}
        assert rows[1][1] == jan
        # ISO strings and naive datetimes are accepted as cutoffs, like as_of
        (row,) = store.features_at([("a", "2025-01-15T00:00:00Z")])
        assert row[2]["total_purchase_value"] == 10.0
        assert row[1] == jan


def test_features_at_is_lazy_and_accepts_generators():
    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 10.0, "2025-01-01T00:00:00Z")
        gen = (("a", "2025-01-02T00:00:00Z") for _ in range(3))
        rows = store.features_at(gen)
        assert [r[2]["total_purchase_value"] for r in rows] == [10.0, 10.0, 10.0]
        assert list(store.features_at([])) == []


@pytest.mark.parametrize("bad", [[("a",)], [("a", "not a date")], ["abc"], [5]])
def test_bad_pairs_raise_value_error(bad):
    with CustomerActivityFeatures() as store:
        with pytest.raises(ValueError):
            list(store.features_at(bad))
