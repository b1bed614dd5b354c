"""Behaviour features in the catalog and in materialize/refresh (docs/behavior.md)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from oracle_behavior import ALL_KEYS, AS_OF, DAY, histories, iso, load
from store import catalog, registry

# the behaviour columns of customer_features that get_behavior_features returns (not the
# `-- table only:` input of the derived account age, account_created_us)
NAMES = [f.name for f in catalog.features() if f.query in ("behavior_family", "behavior_segments")
         and f.name not in {n for b in registry.blocks() for n in b.table_only}]
RENAMED = {"behavior_purchase_frequency": "purchase_frequency"}
SEED_FLAGS = ("declining_engagement", "support_risk", "cart_abandonment_risk", "retention_concern")


def test_every_behaviour_feature_has_a_catalog_record():
    records = catalog.by_name()
    keys = {RENAMED.get(n, n) for n in NAMES} | set(SEED_FLAGS)
    assert keys == set(ALL_KEYS)
    with CustomerActivityFeatures() as store:
        assert list(store.get_behavior_features("x", as_of=iso(AS_OF))) == list(ALL_KEYS)
    for name in NAMES:
        record = records[name]
        assert record.materialize == catalog.FIXED and record.query in ("behavior_family", "behavior_segments")
    assert "churn_probability" not in records and "lifetime_value_prediction" not in records
    assert "NOT a probability" in records["risk_score"].meaning
    assert "lifetime_value_prediction" in records["historical_value"].meaning


def _rows(store, as_of):
    cols = ", ".join(["customer_id"] + NAMES)
    return store.conn.execute(f"SELECT {cols} FROM customer_features ORDER BY customer_id").fetchall()


@settings(max_examples=12, deadline=None)
@given(histories(max_events=8), histories(max_events=6), st.sampled_from((0, 1, DAY, 61 * DAY)))
def test_materialize_equals_getter_and_refresh_equals_materialize(h1, h2, step):
    with CustomerActivityFeatures() as store:
        load(store, h1)
        start = AS_OF - 2 * DAY
        store.materialize(as_of=iso(start))
        for kind, events in h2.items():
            if isinstance(events, list):
                for e in events:
                    e["event_id"] = "new-" + e["event_id"]
        h2["created_at"] = {}
        load(store, h2)
        as_of = start + step
        store.refresh(as_of=iso(as_of))
        refreshed = _rows(store, as_of)
        store.materialize(as_of=iso(as_of))
        full = _rows(store, as_of)
        assert refreshed == full
        for row in full:
            f = store.get_behavior_features(row[0], as_of=iso(as_of))
            for name, value in zip(NAMES, row[1:]):
                expected = f[RENAMED.get(name, name)]
                if isinstance(expected, bool):
                    expected = int(expected)
                if isinstance(expected, float) and value is not None:
                    assert abs(value - expected) <= 1e-9 * max(1.0, abs(expected)), (name, value, expected)
                else:
                    assert value == expected, (row[0], name, value, expected)


def test_the_segments_update_sets_exactly_the_family_columns_and_the_snapshot_reads_its_reads_line():
    """refresh_segments makes its temporary table from the behavior_segments family's columns
    (no list of them in Python): the UPDATE must set exactly those; behavior.snapshot_current
    checks the columns the snapshot query's -- reads: line names, which must be those it reads."""
    import sqlite3

    from authorized import customer_features_columns
    from store import features, registry
    from store.resources import query

    with CustomerActivityFeatures() as store:
        store.add_purchase("a", 10.0, iso(AS_OF - DAY))
        store.materialize(as_of=iso(AS_OF))
        store.conn.execute("CREATE TEMP TABLE behavior_segments_computed (customer_id TEXT PRIMARY KEY, "
                           + ", ".join(f.name for f in registry.stored_columns("behavior_segments")) + ")")
        update = customer_features_columns(store.conn, query("behavior_segments_update"), {"shop_id": ""})
        params = dict(features.parameters(""), customer_id="a", as_of_us=AS_OF)
        snapshot = customer_features_columns(store.conn, features.compose("behavior_rfm_scores_snapshot"), params)
    assert update[sqlite3.SQLITE_UPDATE] == {f.name for f in registry.stored_columns("behavior_segments")}
    assert {f.name for f in registry.columns("behavior_segments")} - update[sqlite3.SQLITE_UPDATE] == {
        "account_age_days"}  # derived: computed by the view from account_created_us
    assert snapshot[sqlite3.SQLITE_READ] - {"shop_id", "customer_id", "as_of_us"} == set(
        registry.reads("behavior_rfm_scores_snapshot"))
