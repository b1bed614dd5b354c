"""A rejected offer is stored once (issue 11, item 4).

Re-running the same bulk call, the same ``load_history`` or the same single
``add_*`` call stores nothing twice, rejections included: ``rejected_events``
holds one row per distinct rejected offer, keyed by (shop, kind, reason,
payload) (migration 0005). The returned counts describe the call: a re-offered
bad record is counted as rejected again, so accepted + rejected + duplicates =
offered for every call. File loads keep their own key (load, input row).
"""

import sqlite3

import pytest
import sqlite_utils

from customer_activity_features import CustomerActivityFeatures
from store import db as store_db
from store import ingest, loaders

WHEN = "2024-05-01T10:00:00Z"
GOOD = {
    "purchase": {"customer_id": "c1", "order_value": 10.0, "purchase_date": WHEN, "order_id": "o1"},
    "session": {"customer_id": "c1", "duration_seconds": 60.0, "session_date": WHEN, "session_id": "s1"},
    "cart_event": {"customer_id": "c1", "event_type": "abandoned", "event_date": WHEN, "cart_id": "k1"},
    "support_interaction": {"customer_id": "c1", "ticket_id": "t1", "interaction_date": WHEN},
    "refund": {"customer_id": "c1", "refund_value": 1.0, "refund_date": WHEN, "refund_id": "r1"},
    "interaction": {"customer_id": "c1", "event_type": "search", "event_date": WHEN, "event_id": "i1"},
    "attribution": {"customer_id": "c1", "order_id": "o1", "source": "email", "attribution_date": WHEN},
}
# two different bad records per kind (the second offered twice in the same call)
BAD = {kind: [dict(rec, customer_id=""), dict(rec, customer_id="c\x00")] for kind, rec in GOOD.items()}
BULK = {"purchase": "add_purchases", "session": "add_sessions", "cart_event": "add_cart_events",
        "support_interaction": "add_support_interactions", "refund": "add_refunds",
        "interaction": "add_interactions", "attribution": "add_attributions"}
SINGLE = {"purchase": "add_purchase", "session": "add_session", "cart_event": "add_cart_event",
          "support_interaction": "add_support_interaction", "refund": "add_refund",
          "interaction": "add_interaction", "attribution": "add_attribution"}


def stored_rejections(store):
    store.flush()
    return store.conn.execute("SELECT kind, reason, payload FROM rejected_events ORDER BY id").fetchall()


def test_every_kind_is_covered():
    assert set(GOOD) == set(BULK) == set(SINGLE) == set(ingest.KINDS)


def offered(kind):
    return [GOOD[kind], BAD[kind][0], BAD[kind][1], BAD[kind][1]]


@pytest.mark.parametrize("kind", sorted(BULK))
@pytest.mark.parametrize("how", ["bulk", "load_history"])
def test_rerunning_a_bulk_call_stores_its_rejections_once(kind, how):
    with CustomerActivityFeatures() as store:
        def call():
            if how == "bulk":
                return getattr(store, BULK[kind])(offered(kind), batch_size=2)
            return store.load_history(kind, offered(kind))
        first = call()
        assert (first.accepted, first.rejected, first.duplicates) == (1, 3, 0)
        rows = stored_rejections(store)
        assert len(rows) == 2  # the two distinct bad records; the repeat within the call not again
        for _ in range(2):
            again = call()
            # the call's result describes what was offered: each bad record counted again
            assert (again.accepted, again.rejected, again.duplicates) == (0, 3, 1)
            assert again.rejected_by_reason == first.rejected_by_reason
            assert stored_rejections(store) == rows


@pytest.mark.parametrize("kind", sorted(SINGLE))
def test_repeating_a_single_call_stores_its_rejection_once(kind):
    with CustomerActivityFeatures() as store:
        for _ in range(3):
            for bad in BAD[kind]:
                assert getattr(store, SINGLE[kind])(**bad) is False
        rows = stored_rejections(store)
        assert [reason for _, reason, _ in rows] == ["customer_id: is empty", "customer_id: contains a NUL character"]


def test_metadata_rejections_are_stored_once():
    with CustomerActivityFeatures() as store:
        for _ in range(3):
            assert store.set_customer_metadata("", {"tier": "gold"}) is False
            result = store.set_customers_metadata([{"customer_id": "", "metadata": {"a": 1}}] * 2
                                                  + [{"customer_id": "c1", "metadata": {}}])
            assert (result.accepted, result.rejected) == (1, 2)
        assert len(stored_rejections(store)) == 2


def test_the_same_bad_record_is_stored_once_per_shop_and_kind(tmp_path):
    path = tmp_path / "s.db"
    bad = {"customer_id": "c1", "order_value": -1.0}
    for shop in ("north", "south", "north"):
        with CustomerActivityFeatures(path, shop_id=shop) as store:
            assert store.add_purchases([bad]).rejected == 1
            assert store.add_refunds([{"customer_id": "c1", "refund_value": -1.0}]).rejected == 1
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT shop_id, kind, count(*) FROM rejected_events GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    conn.close()
    assert rows == [("north", "purchase", 1), ("north", "refund", 1), ("south", "purchase", 1), ("south", "refund", 1)]


def test_file_loads_keep_one_row_per_rejected_input_row(tmp_path):
    """Dump loads key their rejections by (load, row): two equal bad rows are two rejections, recorded
    once however often the load is run; the same record offered through the API is its own offer."""
    source = tmp_path / "p.csv"
    source.write_text("customer_id,order_value,purchase_date\nc1,-1,2024-05-01\nc1,-1,2024-05-01\nc2,1,2024-05-01\n")
    with CustomerActivityFeatures() as store:
        report = loaders.load(store, "purchases", source)
        assert (report.read, report.accepted, report.rejected) == (3, 1, 2)
        assert loaders.load(store, "purchases", source).status == "already_loaded"
        assert store.add_purchases([{"customer_id": "c1", "order_value": -1}] * 2).rejected == 2
        assert store.add_purchases([{"customer_id": "c1", "order_value": -1}]).rejected == 1
        store.flush()
        counts = store.conn.execute("SELECT load_id IS NULL, count(*) FROM rejected_events GROUP BY 1 ORDER BY 1")
        assert counts.fetchall() == [(0, 2), (1, 1)]


# -- migration 0005 on a database that already holds repeated rejections -----------------------------
def test_upgrade_removes_repeated_rejections_and_keeps_the_first(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.isolation_level = None
    steps = store_db.known_steps()
    step = steps.index("0005_rejections_once")
    store_db.migrations().apply(sqlite_utils.Database(conn), stop_before=steps[step:])
    assert store_db.applied_steps(conn) == steps[:step]
    P1 = '{"customer_id": "c1", "order_value": -1}'  # as add_purchases records {"customer_id": "c1", ...}
    P2 = '{"customer_id": "c1", "order_value": -2}'
    rows = [  # id, shop, kind, payload, reason, received_at, load_id, source_row
        (1, "", "purchase", P1, "order_value: is negative", "2024-01-01T00:00:00Z", None, None),
        (2, "", "purchase", P1, "order_value: is negative", "2024-01-02T00:00:00Z", None, None),
        (3, "", "purchase", P2, "order_value: is negative", "2024-01-02T00:00:00Z", None, None),
        (4, "x", "purchase", P1, "order_value: is negative", "2024-01-03T00:00:00Z", None, None),
        (5, "", "session", P1, "order_value: is negative", "2024-01-03T00:00:00Z", None, None),
        (6, "", "purchase", P1, "order_value: is negative", "2024-01-04T00:00:00Z", None, None),
        (7, "", "purchase", P1, "order_value: is negative", "2024-01-04T00:00:00Z", 1, 1),
        (8, "", "purchase", P1, "order_value: is negative", "2024-01-04T00:00:00Z", 1, 2),
    ]
    conn.executemany("INSERT INTO rejected_events (id, shop_id, kind, payload, reason, received_at, load_id, "
                     "source_row) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()
    with CustomerActivityFeatures(path) as store:
        assert store_db.pending_steps(store.conn) == []
        kept = [r[0] for r in store.conn.execute("SELECT id FROM rejected_events ORDER BY id")]
        assert kept == [1, 3, 4, 5, 7, 8]  # 2 and 6 repeated 1; load rejections untouched
        assert store.conn.execute("SELECT received_at FROM rejected_events WHERE id = 1").fetchone()[0] == \
            "2024-01-01T00:00:00Z"
        # the same record offered again after the upgrade: counted, already stored
        assert store.add_purchases([{"customer_id": "c1", "order_value": -1}]).rejected == 1
        assert store.add_purchases([{"customer_id": "c1", "order_value": -3}]).rejected == 1  # a new one
        assert store.add_purchases([{"customer_id": "c1", "order_value": -3}]).rejected == 1
        assert store.conn.execute("SELECT count(*) FROM rejected_events").fetchone()[0] == 7
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
