"""One customer-id rule at every entry point (issue 11, item 3).

``store.validate.customer_id`` is the rule: every way into the store applies it
(add_*, the bulk calls, load_history, the metadata calls, every generic loader
kind and the presets through ``store.formats.customer_text``). A NUL character,
a lone surrogate (not valid Unicode) and, where values are typed, bool,
fractional floats and containers are refused with a reason naming the id
field; nothing of such a row is stored, so ``materialize`` never includes the
customer and every getter works for every materialised customer. The event-id
rule (``store.validate.event_id``) is likewise applied to the presets' keys.
"""

import csv
import io
import json

import pytest

from customer_activity_features import CustomerActivityFeatures, InvalidEventError
from store import ingest, loaders

AS_OF = "2025-01-01T00:00:00Z"
WHEN = "2024-05-01T10:00:00Z"
GOOD = "good-1"
NUL_IDS = ["a\x00b", "\x00", "17850\x00", "\x0017850.0"]
SURROGATE_IDS = ["a\udfffb", "\ud800"]
TYPED_BAD_IDS = [True, False, 1.5, float("nan"), float("inf"), [], {}, ["c1"], b"c1", None, ""]
API_BAD_IDS = NUL_IDS + SURROGATE_IDS + TYPED_BAD_IDS


def reason_field(reason):
    return reason.split(":", 1)[0]


def starting(reasons, start):
    """How many rejections have a reason beginning with ``start`` (a reader may add detail after it)."""
    return sum(n for reason, n in reasons.items() if reason.startswith(start))


def stored_customers(store):
    store.flush()
    return sorted(cid for (cid,) in store.conn.execute(
        "SELECT customer_id FROM all_customers WHERE shop_id = ?", [store.shop_id]))


def check_materialized(store, expected):
    """materialize holds exactly the expected customers, and every getter works for each of them."""
    store.materialize(as_of=AS_OF)
    ids = sorted(cid for (cid,) in store.conn.execute("SELECT customer_id FROM customer_features"))
    assert ids == sorted(expected)
    for cid in ids:
        assert store.get_all_features(cid, as_of=AS_OF)
        assert cid in store.get_cohort_features([cid], as_of=AS_OF)
    assert [cid for cid, _ in store.iter_features(as_of=AS_OF)] == ids


def rejections(store):
    store.flush()
    return [reason for (reason,) in store.conn.execute("SELECT reason FROM rejected_events ORDER BY id")]


# -- the API: single calls, bulk calls, load_history, metadata ------------------------------------
# A valid record of every kind (the customer id is filled in by the test).
RECORD = {
    "purchase": {"order_value": 10.0, "purchase_date": WHEN},
    "session": {"duration_seconds": 60.0, "device_type": "mobile", "session_date": WHEN},
    "cart_event": {"event_type": "abandoned", "cart_value": 5.0, "event_date": WHEN},
    "support_interaction": {"ticket_id": "t", "response_time_hours": 1.0, "interaction_date": WHEN},
    "refund": {"refund_value": 3.0, "refund_date": WHEN},
    "interaction": {"event_type": "search", "event_date": WHEN, "search_query": "shoes"},
    "attribution": {"order_id": "o", "source": "email", "attribution_date": WHEN},
}
SINGLE = {"purchase": "add_purchase", "session": "add_session", "cart_event": "add_cart_event",
          "support_interaction": "add_support_interaction", "refund": "add_refund",
          "interaction": "add_interaction", "attribution": "add_attribution"}
BULK = {"purchase": "add_purchases", "session": "add_sessions", "cart_event": "add_cart_events",
        "support_interaction": "add_support_interactions", "refund": "add_refunds",
        "interaction": "add_interactions", "attribution": "add_attributions"}


def test_every_kind_is_covered():
    assert set(RECORD) == set(SINGLE) == set(BULK) == set(ingest.KINDS)
    assert set(loaders.KINDS) == set(FILE_RECORD) and set(loaders.PRESETS) == set(PRESET_RECORD)


def record(kind, cid, n):
    """The valid record of ``kind`` for customer ``cid``, its natural key made unique by ``n``."""
    rec = dict(RECORD[kind], customer_id=cid)
    key = {"purchase": "order_id", "session": "session_id", "cart_event": "cart_id",
           "support_interaction": "ticket_id", "refund": "refund_id", "interaction": "event_id",
           "attribution": "order_id"}[kind]
    rec[key] = f"k{n}"
    return rec


@pytest.mark.parametrize("kind", sorted(SINGLE))
def test_single_calls_refuse_bad_ids(kind):
    with CustomerActivityFeatures() as store, CustomerActivityFeatures(strict=True) as strict:
        method = SINGLE[kind]
        assert getattr(store, method)(**record(kind, GOOD, 0)) is True
        for n, bad in enumerate(API_BAD_IDS, 1):
            assert getattr(store, method)(**record(kind, bad, n)) is False, bad
            with pytest.raises(InvalidEventError) as info:
                getattr(strict, method)(**record(kind, bad, n))
            assert info.value.field == "customer_id"
        reasons = rejections(store)
        assert len(reasons) == len(API_BAD_IDS)
        assert {reason_field(r) for r in reasons} == {"customer_id"}
        assert reasons.count("customer_id: contains a NUL character") == len(NUL_IDS)
        assert reasons.count("customer_id: is not valid Unicode text (a lone surrogate)") == len(SURROGATE_IDS)
        assert stored_customers(store) == [GOOD]
        check_materialized(store, [GOOD])


@pytest.mark.parametrize("kind", sorted(BULK))
@pytest.mark.parametrize("how", ["bulk", "load_history"])
def test_bulk_calls_and_load_history_refuse_bad_ids(kind, how):
    records = [record(kind, GOOD, 0)] + [record(kind, bad, n) for n, bad in enumerate(API_BAD_IDS, 1)]
    with CustomerActivityFeatures() as store:
        if how == "bulk":
            result = getattr(store, BULK[kind])(records, batch_size=4)
        else:
            result = store.load_history(kind, records)
        assert (result.accepted, result.rejected, result.duplicates) == (1, len(API_BAD_IDS), 0)
        assert {reason_field(r) for r in result.rejected_by_reason} == {"customer_id"}
        assert result.rejected_by_reason["customer_id: contains a NUL character"] == len(NUL_IDS)
        assert stored_customers(store) == [GOOD]
        check_materialized(store, [GOOD])


def test_metadata_calls_refuse_bad_ids():
    with CustomerActivityFeatures() as store:
        assert store.set_customer_metadata(GOOD, {"tier": "gold"}) is True
        for bad in API_BAD_IDS:
            assert store.set_customer_metadata(bad, {"tier": "x"}) is False, bad
        result = store.set_customers_metadata([{"customer_id": bad, "metadata": {"n": i}}
                                               for i, bad in enumerate(API_BAD_IDS)])
        assert (result.accepted, result.rejected) == (0, len(API_BAD_IDS))
        assert {reason_field(r) for r in rejections(store)} == {"customer_id"}
        assert stored_customers(store) == [GOOD]
        check_materialized(store, [GOOD])


# -- files: every generic kind and every preset, CSV and NDJSON --------------------------------------
FILE_RECORD = {  # a valid row of each generic kind, as file columns (the customer id filled in)
    "purchases": {"order_value": "10.0", "purchase_date": WHEN},
    "sessions": {"duration_seconds": "60", "session_date": WHEN, "page_views": "3"},
    "carts": {"event_type": "abandoned", "event_date": WHEN, "cart_value": "5"},
    "support": {"interaction_date": WHEN, "response_time_hours": "1"},
    "refunds": {"refund_value": "3", "refund_date": WHEN},
    "customers": {"metadata": '{"tier": "gold"}'},
    "interactions": {"event_type": "search", "event_date": WHEN},
    "attributions": {"order_id": "o", "source": "email", "attribution_date": WHEN},
}
FILE_KEY = {"purchases": "order_id", "sessions": "session_id", "carts": "cart_id", "support": "ticket_id",
            "refunds": "refund_id", "customers": None, "interactions": "event_id", "attributions": "order_id"}
PRESET_RECORD = {  # (the id column, a valid row of the preset's columns)
    "online-retail": ("CustomerID", {"InvoiceNo": "536365", "Quantity": "2", "InvoiceDate": "2010-12-01 08:30:00",
                                     "UnitPrice": "2.5"}),
    "rees46": ("user_id", {"event_time": "2019-10-01 00:00:00 UTC", "event_type": "view", "product_id": "1",
                           "category_id": "10", "category_code": "", "brand": "", "price": "5.0",
                           "user_session": "s"}),
    "incidents": ("caller_id", {"number": "INC1", "incident_state": "New", "reassignment_count": "0",
                                "opened_at": "01-03-2016 10:00", "sys_updated_at": "01-03-2016 10:00",
                                "priority": "3 - Moderate", "resolved_at": "01-03-2016 16:00"}),
}
PRESET_KEY = {"online-retail": "InvoiceNo", "rees46": "user_session", "incidents": "number"}


def file_rows(kind, ids):
    """(id column, rows): one valid row per id, each with its own natural key."""
    if kind in PRESET_RECORD:
        column, base = PRESET_RECORD[kind]
        key = PRESET_KEY[kind]
    else:
        column, base, key = "customer_id", FILE_RECORD[kind], FILE_KEY[kind]
    rows = []
    for n, cid in enumerate(ids):
        row = dict(base, **{column: cid})
        if key is not None:
            row[key] = f"{base.get(key, 'k')}{n}"
        rows.append(row)
    return column, rows


def write_file(path, fmt, rows):
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        path.write_bytes(out.getvalue().encode("utf-8"))
    else:  # NDJSON, ASCII-escaped so that lone surrogates travel as JSON escapes (\udfff)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="ascii")
    return path


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
@pytest.mark.parametrize("kind", sorted(FILE_RECORD) + sorted(PRESET_RECORD))
def test_loader_kinds_and_presets_refuse_bad_ids(kind, fmt, tmp_path):
    bad = NUL_IDS + (SURROGATE_IDS if fmt == "ndjson" else [])  # (invalid bytes in a CSV: "encoding: ...")
    if fmt == "ndjson" and kind in FILE_RECORD:
        bad = bad + [True, 1.5, [], {"a": 1}]  # typed JSON values (a preset reads every value as text)
    column, rows = file_rows(kind, [GOOD] + bad)
    with CustomerActivityFeatures() as store:
        report = loaders.load(store, kind, write_file(tmp_path / f"in.{fmt}", fmt, rows))
        assert report.status == "completed"
        assert (report.read, report.accepted, report.rejected, report.duplicates) == (len(rows), 1, len(bad), 0), \
            report.as_dict()
        assert {reason_field(r) for r in report.rejected_by_reason} == {column}, report.rejected_by_reason
        assert report.rejected_by_reason[f"{column}: contains a NUL character"] == len(NUL_IDS)
        if fmt == "ndjson":
            assert starting(report.rejected_by_reason, f"{column}: is not valid Unicode text") == len(SURROGATE_IDS)
        assert stored_customers(store) == [GOOD]
        check_materialized(store, [GOOD])


@pytest.mark.parametrize("kind", sorted(PRESET_RECORD))
def test_presets_apply_the_event_id_rule(kind, tmp_path):
    """A preset's key (invoice, session, incident number) with a lone surrogate is refused as add_* refuses it."""
    column, rows = file_rows(kind, [GOOD, "other"])
    rows[1][PRESET_KEY[kind]] = "k\udfff"
    with CustomerActivityFeatures() as store:
        report = loaders.load(store, kind, write_file(tmp_path / "in.ndjson", "ndjson", rows))
        assert (report.accepted, report.rejected) == (1, 1), report.as_dict()
        assert starting(report.rejected_by_reason, f"{PRESET_KEY[kind]}: is not valid Unicode text") == 1
        assert store.add_purchase("c", 1.0, WHEN, order_id="k\udfff") is False
        assert rejections(store)[-1] == "order_id: is not valid Unicode text (a lone surrogate)"


def test_file_ids_are_read_as_text_then_checked_by_the_same_rule(tmp_path):
    """What a file reader does before the rule: strip, 17850.0 read as 17850; the rule does the rest."""
    column, rows = file_rows("purchases", [" 17850.0 ", "17851", "  "])
    with CustomerActivityFeatures() as store:
        report = loaders.load(store, "purchases", write_file(tmp_path / "in.csv", "csv", rows))
        assert (report.accepted, report.rejected) == (2, 1)
        assert report.rejected_by_reason == {"customer_id: is missing": 1}
        assert stored_customers(store) == ["17850", "17851"]
