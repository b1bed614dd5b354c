"""Injection: SQL-injection strings in every text field, id, shop id, metadata key and value,
window, export format, load kind and file column mapping.

Values are stored and returned verbatim (through the API and the ``*_readable``
views), the schema (``sqlite_master``) is unchanged, and names that are not in
an allowlist are refused with a clear error (``UnknownNameError``, or
``LoadError`` for the loader's kinds and fields; both are ``StoreError`` and
``ValueError``).
"""

import csv
import json

import pytest

from customer_activity_features import CustomerActivityFeatures, StoreError, UnknownNameError
from store import db

INJECTIONS = [
    "'; DROP TABLE purchases; --",
    "Robert'); DROP TABLE customers;--",
    "\" OR \"1\"=\"1",
    "' OR '1'='1' --",
    "x' UNION SELECT sql, name, 1, 1, 1 FROM sqlite_master --",
    "1; ATTACH DATABASE '/tmp/pwn.db' AS pwn; --",
    "a\x00b'; DELETE FROM sessions; --",
    "\x00",
    "/* comment */ customer",
    "-- comment",
    "`backtick` [bracket] \"double\" 'single'",
    "%_\\?:name$1@p",
    "NULL",
    "\uff07\uff1b DROP TABLE purchases\uff1b\uff0d\uff0d",  # full-width look-alikes
    "\u02bc OR 1=1 \u2019\u201c\u201d",  # apostrophe look-alikes
    "\u202edesrever\u202c",
    "é\u0301\u200b\ufeff",
    "'" * 50,
    "x" * 900 + "'; DROP TABLE purchases; --",  # text extras are capped at 1000 characters
]
AS_OF = "2025-01-01T00:00:00Z"


def cid_of(i, text):
    """The customer id used for a corpus string: itself, except NUL, which customer ids refuse."""
    return text if "\x00" not in text else f"nul-{i}"


CUSTOMERS = [cid_of(i, t) for i, t in enumerate(INJECTIONS)]
WHEN = "2024-12-01T00:00:00Z"


def schema(store):
    return store.conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()


def readable(store, view, id_column, key):
    return store.conn.execute(
        f"SELECT * FROM {view} WHERE {id_column} = ?", [key]).fetchone()  # noqa: S608 fixed names


@pytest.fixture
def store(tmp_path):
    with CustomerActivityFeatures(tmp_path / "inj.db") as s:
        yield s


@pytest.mark.parametrize("shop", ["", INJECTIONS[0], INJECTIONS[6]])
def test_values_round_trip_verbatim(tmp_path, shop):
    path = tmp_path / "inj.db"
    with CustomerActivityFeatures(path, shop_id=shop) as store:
        before = schema(store)
        for i, text in enumerate(INJECTIONS):
            cid = cid_of(i, text)
            assert store.add_purchase(cid, 10.0, WHEN, order_id=text + f"#o{i}")
            assert store.add_session(cid, 60.0, text, WHEN, session_id=text + f"#s{i}",
                                     browser=text, referrer=text, channel=text)
            assert store.add_cart_event(cid, "abandoned", 5.0, WHEN, cart_id=text + f"#c{i}")
            assert store.add_support_interaction(cid, text + f"#t{i}", 2.0, True, WHEN)
            assert store.add_refund(cid, 1.0, WHEN, refund_id=text + f"#r{i}", order_id=text)
            assert store.add_interaction(cid, "search", WHEN, session_id=text, page_type=text, product_id=text,
                                         category=text, search_query=text, device_type=text,
                                         event_id=text + f"#i{i}")
            assert store.add_attribution(cid, text + f"#o{i}", text, text, WHEN)
            metadata = {text: text, "nested": {text: [text, 1]}}
            assert store.set_customer_metadata(cid, metadata)
            # an invalid event carrying the string: its payload is recorded verbatim
            assert not store.add_purchase(cid, -1.0, WHEN, order_id=text)
        store.flush()

        for i, text in enumerate(INJECTIONS):
            cid = cid_of(i, text)
            assert store.get_total_purchase_value(cid, as_of=AS_OF) == 10.0
            assert store.get_device_usage_pattern(cid, as_of=AS_OF) == {text: 1}
            assert store.get_support_ticket_count(cid, as_of=AS_OF) == 1
            features = store.get_all_features(cid, as_of=AS_OF)
            assert features["metadata"] == {text: text, "nested": {text: [text, 1]}}
            assert features["primary_device"] == text
            row = readable(store, "purchases_readable", "order_id", text + f"#o{i}")
            assert row[:2] == (shop, cid) and row[-1] == 10.0
            row = readable(store, "sessions_readable", "session_id", text + f"#s{i}")
            assert row[1] == cid and text in row
            assert readable(store, "cart_events_readable", "cart_id", text + f"#c{i}")[1] == cid
            assert readable(store, "support_interactions_readable", "ticket_id", text + f"#t{i}")[1] == cid
        cohort = store.get_cohort_features(CUSTOMERS, as_of=AS_OF)
        assert set(cohort) == set(CUSTOMERS)
        assert all(cohort[t]["total_purchase_value"] == 10.0 for t in CUSTOMERS)
        summary = store.get_cohort_summary(CUSTOMERS, as_of=AS_OF)
        assert summary["size"] == len(CUSTOMERS) and summary["aggregates"]["total_purchase_value"] == 10.0
        payloads = [json.loads(p) for (p,) in store.conn.execute(
            "SELECT payload FROM rejected_events WHERE shop_id = ? ORDER BY id", [shop])]
        assert [p["order_id"] for p in payloads] == INJECTIONS
        assert [p["customer_id"] for p in payloads] == CUSTOMERS
        for table in ("purchases", "sessions", "cart_events", "support_interactions", "customers"):
            assert store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == len(INJECTIONS)  # noqa: S608
        assert schema(store) == before
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with CustomerActivityFeatures(path, shop_id=shop) as store:
        for text in (t for t in INJECTIONS if "\x00" in t):  # NUL in a customer id: rejected with a reason
            assert not store.add_purchase(text, 1.0, WHEN)
            reason = store.conn.execute("SELECT reason FROM rejected_events ORDER BY id DESC LIMIT 1").fetchone()[0]
            assert reason == "customer_id: contains a NUL character"
    # reopened: still there, still verbatim, other shops see nothing
    with CustomerActivityFeatures(path, shop_id=shop) as store:
        assert store.get_total_purchase_value(INJECTIONS[0], as_of=AS_OF) == 10.0
    with CustomerActivityFeatures(path, shop_id=shop + "'") as other:
        assert other.get_total_purchase_value(INJECTIONS[0], as_of=AS_OF) == 0.0


def test_materialize_export_and_rfm_keep_ids_verbatim(store, tmp_path):
    before = schema(store)
    for i, text in enumerate(CUSTOMERS):
        assert store.add_purchase(text, 10.0 + i, WHEN, order_id=f"o{i}")
        assert store.add_purchase(text, 5.0, "2024-12-10T00:00:00Z", order_id=f"p{i}")
    store.materialize(as_of=AS_OF)
    ids = [r[0] for r in store.conn.execute("SELECT customer_id FROM customer_features")]
    assert sorted(ids) == sorted(CUSTOMERS)
    out = tmp_path / "features.ndjson"
    store.export(out, format="ndjson", as_of=AS_OF)
    with open(out, encoding="utf-8") as handle:
        exported = [json.loads(line)["customer_id"] for line in handle]
    assert sorted(exported) == sorted(CUSTOMERS)
    out_csv = tmp_path / "features.csv"
    store.export(out_csv, format="csv", as_of=AS_OF)
    with open(out_csv, newline="", encoding="utf-8") as handle:
        exported = [row["customer_id"] for row in csv.DictReader(handle)]
    assert sorted(exported) == sorted(CUSTOMERS)
    rfm = {row.customer_id: row for row in store.rfm_summary(observation_end=AS_OF)}
    assert set(rfm) == set(CUSTOMERS) and all(r.frequency == 1 for r in rfm.values())
    store.refresh(as_of="2025-01-02T00:00:00Z")
    assert schema(store)[0] is not None
    # materialisation may create its own tables; the event tables and views are unchanged
    after = {r[1]: r for r in schema(store)}
    for row in before:
        assert after[row[1]] == row


@pytest.mark.parametrize("name", INJECTIONS + ["sqlite_master", "Purchases", "purchases\x00", "csv "])
def test_names_outside_allowlists_are_refused(store, tmp_path, name):
    before = schema(store)
    with pytest.raises(UnknownNameError):
        db.quote_identifier(name, {"purchases_allowed"})
    with pytest.raises(UnknownNameError):
        store.export(tmp_path / "x.out", format=name)
    with pytest.raises(ValueError):
        store.materialize(as_of=AS_OF, windows=(name,))
    with pytest.raises(ValueError):
        store.rfm_summary(observation_end=AS_OF, freq=name)
    source = tmp_path / "p.csv"
    source.write_text("customer_id,order_value,purchase_date\nc1,1.0,2024-01-01\n")
    with pytest.raises((UnknownNameError, StoreError)) as info:
        store.load(name, source)
    assert isinstance(info.value, ValueError) and "kind" in str(info.value)
    with pytest.raises((UnknownNameError, StoreError)) as info:
        store.load("purchases", source, mapping={name: "customer_id"})
    assert isinstance(info.value, ValueError)
    assert schema(store) == before


def test_file_column_mapping_with_hostile_column_names(store, tmp_path):
    """A file whose column names (and values) are injection strings loads verbatim through --map."""
    before = schema(store)
    columns = [INJECTIONS[0], INJECTIONS[2], INJECTIONS[10]]
    source = tmp_path / "hostile.csv"
    with open(source, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns + ["order_id"])
        for i, text in enumerate(t for t in INJECTIONS if "\x00" not in t):
            writer.writerow([text, f"{i + 1}.5", "2024-06-01T00:00:00Z", f"{text}#{i}"])
    report = store.load("purchases", source, mapping={"customer_id": columns[0], "order_value": columns[1],
                                                      "purchase_date": columns[2]})
    expected = [t for t in INJECTIONS if "\x00" not in t]
    assert report.accepted == len(expected) and report.rejected == 0
    stored = dict(store.conn.execute("SELECT event_id, customer_id FROM purchases"))
    assert stored == {f"{t}#{i}": t for i, t in enumerate(expected)}
    assert schema(store) == before
