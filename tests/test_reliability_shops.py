"""Shops: two shops sharing one database never see each other's rows.

Property test: random histories for shops A and B, with the same customer ids
and the same event ids in both, are written into one database; every read of
shop A (getters, all and behaviour features, cohorts, cohort summary,
iter_features, features_at, RFM summary, calibration/holdout,
materialisation, refresh and export) must equal the same read on a database
holding shop A's events alone, and likewise for B.
"""

import json
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures

AS_OF = "2025-01-01T00:00:00Z"
LATER = "2025-01-20T00:00:00Z"
CUSTOMERS = ["c1", "c2", "17850"]
IDS = ["e1", "e2", "e3"]  # shared across shops on purpose: (shop_id, event_id) is the key
STATS = {"examples": 0, "events": 0, "reads_compared": 0}

times = st.sampled_from(["2024-12-31T23:59:59Z", "2025-01-01T00:00:00Z", "2024-12-02T00:00:00Z",
                         "2024-10-03T00:00:00Z", "2024-01-01T00:00:00Z", "2025-01-10T00:00:00Z"])
customer = st.sampled_from(CUSTOMERS)
event_id = st.one_of(st.sampled_from(IDS), st.none())
money = st.sampled_from([0.0, 1.5, 10.0, 99.99])

EVENTS = {
    "add_purchases": st.fixed_dictionaries({"customer_id": customer, "order_value": money, "purchase_date": times,
                                            "order_id": event_id}),
    "add_sessions": st.fixed_dictionaries({"customer_id": customer, "duration_seconds": money,
                                           "device_type": st.sampled_from(["mobile", "desktop", None]),
                                           "session_date": times, "session_id": event_id}),
    "add_cart_events": st.fixed_dictionaries({"customer_id": customer,
                                              "event_type": st.sampled_from(["abandoned", "converted"]),
                                              "cart_value": st.one_of(st.none(), money), "event_date": times,
                                              "cart_id": event_id}),
    "add_support_interactions": st.fixed_dictionaries({"customer_id": customer, "ticket_id": st.sampled_from(IDS),
                                                       "response_time_hours": st.one_of(st.none(), money),
                                                       "escalated": st.booleans(), "interaction_date": times}),
    "add_refunds": st.fixed_dictionaries({"customer_id": customer, "refund_value": money, "refund_date": times,
                                          "refund_id": event_id}),
    "add_interactions": st.fixed_dictionaries({"customer_id": customer,
                                               "event_type": st.sampled_from(["page_view", "product_view", "search"]),
                                               "event_date": times, "session_id": st.sampled_from(["s1", "s2"]),
                                               "product_id": st.sampled_from(["p1", "p2", None]),
                                               "search_query": st.sampled_from(["shoes", None]),
                                               "event_id": event_id}),
    "add_attributions": st.fixed_dictionaries({"customer_id": customer, "order_id": st.sampled_from(IDS),
                                               "source": st.sampled_from(["google", "email"]),
                                               "medium": st.sampled_from(["cpc", None]), "attribution_date": times}),
    "set_customers_metadata": st.fixed_dictionaries({"customer_id": customer,
                                                     "metadata": st.dictionaries(st.sampled_from(["tier", "x"]),
                                                                                 st.integers(0, 3), max_size=2)}),
}
history = st.lists(st.tuples(st.sampled_from(["A", "B"]), st.sampled_from(sorted(EVENTS))).flatmap(
    lambda sk: st.tuples(st.just(sk[0]), st.just(sk[1]), EVENTS[sk[1]])), min_size=4, max_size=40)


def load(store, events):
    for method in sorted(EVENTS):
        records = [r for m, r in events if m == method]
        if records:
            getattr(store, method)(records)


def snapshot(store, tmp_path, tag):
    """Every shop-scoped read, as plain data."""
    out = {}
    for cid in CUSTOMERS:
        out[f"all {cid}"] = store.get_all_features(cid, as_of=AS_OF)
        out[f"all30 {cid}"] = store.get_all_features(cid, 30, as_of=AS_OF)
        out[f"behavior {cid}"] = store.get_behavior_features(cid, as_of=AS_OF)
        out[f"total {cid}"] = store.get_total_purchase_value(cid, as_of=LATER)
    out["cohort"] = store.get_cohort_features(CUSTOMERS + ["nobody"], as_of=AS_OF)
    out["cohort behavior"] = store.get_cohort_behavior_features(CUSTOMERS, as_of=AS_OF)
    out["summary"] = store.get_cohort_summary(CUSTOMERS, as_of=AS_OF)
    out["iter"] = list(store.iter_features(as_of=AS_OF))
    out["at"] = list(store.features_at([(c, AS_OF) for c in CUSTOMERS] + [("c1", LATER)]))
    out["at exclusive"] = list(store.features_at([(c, LATER) for c in CUSTOMERS], exclusive=True))
    out["rfm"] = [tuple(r) for r in store.rfm_summary(observation_end=AS_OF)]
    try:
        out["holdout"] = [tuple(r) for r in store.calibration_and_holdout("2024-11-01T00:00:00Z", AS_OF)]
    except ValueError as exc:  # an empty holdout is refused: the same in both databases
        out["holdout"] = str(exc)
    store.materialize(as_of=AS_OF)
    out["materialized"] = sorted(store.conn.execute(
        "SELECT * FROM customer_features WHERE shop_id = ?", [store.shop_id]), key=repr)
    path = tmp_path / f"{tag}.ndjson"
    store.export(path, format="ndjson")
    out["export"] = sorted(json.loads(line)["customer_id"] for line in path.read_text().splitlines())
    out["export rows"] = path.read_text().count("\n")
    store.refresh(as_of=LATER)
    out["refreshed"] = sorted(store.conn.execute(
        "SELECT * FROM customer_features WHERE shop_id = ?", [store.shop_id]), key=repr)
    path = tmp_path / f"{tag}-later.csv"
    store.export(path, format="csv", as_of=LATER)
    out["export later"] = path.read_text()
    return out


def canon(value):
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


def test_two_shops_never_see_each_other(tmp_path_factory):
    settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))(
        given(events=history)(check_two_shops))(tmp_path_factory)


@pytest.mark.long
def test_two_shops_never_see_each_other_long(tmp_path_factory):
    settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))(
        given(events=history)(check_two_shops))(tmp_path_factory)


def check_two_shops(tmp_path_factory, events):
    tmp_path = tmp_path_factory.mktemp("shops")
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    shared = {shop: CustomerActivityFeatures(conn, shop_id=shop) for shop in ("A", "B")}
    for shop in ("A", "B"):
        load(shared[shop], [(m, r) for s, m, r in events if s == shop])
    # the reads of each shop interleaved with the other's materialisation
    got = {shop: canon(snapshot(shared[shop], tmp_path, f"shared-{shop}")) for shop in ("A", "B")}
    for shop in ("A", "B"):
        alone = CustomerActivityFeatures(shop_id=shop)
        load(alone, [(m, r) for s, m, r in events if s == shop])
        expected = canon(snapshot(alone, tmp_path, f"alone-{shop}"))
        for key in expected:
            assert got[shop][key] == expected[key], f"shop {shop}: {key} differs"
            STATS["reads_compared"] += 1
        alone.close()
    # materialising B after A left A's rows in place (and the reverse)
    for shop in ("A", "B"):
        rows = conn.execute("SELECT count(*) FROM customer_features WHERE shop_id = ?", [shop]).fetchone()[0]
        assert rows == len(got[shop]["refreshed"])
    STATS["examples"] += 1
    STATS["events"] += len(events)
    conn.close()


def test_report_figures(capsys):
    with capsys.disabled():
        print(f"\nRELIABILITY shops: {STATS}")


@pytest.mark.long
def test_report_figures_long(capsys):
    """The same figures after the long variants (collected last: run with -n 0 -m long -s)."""
    with capsys.disabled():
        print(f"\nRELIABILITY shops (long): {STATS}")
