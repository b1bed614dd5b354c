"""store.loaders on small generated files: every format, the generic kinds, bad rows, bad files."""

import gzip
import io
import json
import sys

import pytest

from customer_activity_features import CustomerActivityFeatures
from store import loaders
from store.errors import LoadError

HEADER = "customer_id,order_value,purchase_date,order_id\n"
GOOD = [
    ("c1", "10.5", "2024-01-01T10:00:00Z", "o1"),
    ("c2", "20", "2024-01-02 11:00:00", "o2"),
    ("17850.0", "5", "2024-01-03T12:00:00+01:00", "o3"),
]


def csv_text(rows, sep=","):
    return sep.join(HEADER.strip().split(",")) + "\n" + "".join(sep.join(r) + "\n" for r in rows)


def records(rows):
    return [dict(zip(("customer_id", "order_value", "purchase_date", "order_id"), r)) for r in rows]


def table(store, name, order="event_id"):
    return list(store.conn.execute(f"SELECT * FROM {name} ORDER BY {order}"))


SNAPSHOT_SKIP = {"customers", "rejected_events", "loads", "_sqlite_migrations", "materializations",
                 "feature_catalog", "customer_features"}


def snapshot(store):
    """Every table a load writes (bookkeeping times left out)."""
    others = {}
    for (name,) in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                      "AND name NOT LIKE 'sqlite_%' ORDER BY name"):
        if name not in SNAPSHOT_SKIP:
            others[name] = sorted(store.conn.execute(f'SELECT * FROM "{name}"'), key=repr)
    return {
        "all_tables": others,
        "purchases": table(store, "purchases"),
        "sessions": table(store, "sessions"),
        "cart_events": table(store, "cart_events"),
        "support_interactions": table(store, "support_interactions"),
        "refunds": table(store, "refunds"),
        "customers": list(store.conn.execute("SELECT shop_id, customer_id, metadata FROM customers ORDER BY 2")),
        "rejected_events": list(store.conn.execute(
            "SELECT id, kind, payload, reason, load_id, source_row FROM rejected_events ORDER BY id")),
        "loads": list(store.conn.execute(
            "SELECT id, kind, source_sha256, status, rows_read, rows_accepted, rows_rejected, rows_duplicate, "
            "rows_pending, tables FROM loads ORDER BY id")),
    }


def check_sum(report):
    assert report.read == report.accepted + report.rejected + report.duplicates
    assert sum(report.rejected_by_reason.values()) == report.rejected


@pytest.fixture
def store():
    with CustomerActivityFeatures() as s:
        yield s


def expected_purchases():
    return [
        ("", "c1", 1704103200000000, "o1", 10.5),
        ("", "c2", 1704193200000000, "o2", 20.0),
        ("", "17850", 1704279600000000, "o3", 5.0),
    ]


def sorted_purchases(store):
    return sorted(table(store, "purchases"), key=lambda r: r[3])


@pytest.mark.parametrize("name,content", [
    ("p.csv", lambda: csv_text(GOOD).encode()),
    ("p.tsv", lambda: csv_text(GOOD, "\t").encode()),
    ("p.json", lambda: json.dumps(records(GOOD), indent=1).encode()),
    ("p.ndjson", lambda: "\n".join(json.dumps(r) for r in records(GOOD)).encode()),
    ("p.jsonl", lambda: ("\n" + "\n\n".join(json.dumps(r) for r in records(GOOD)) + "\n").encode()),
    ("p.csv.gz", lambda: gzip.compress(csv_text(GOOD).encode())),
    ("p.json.gz", lambda: gzip.compress(json.dumps(records(GOOD)).encode())),
    ("p.dat", lambda: csv_text(GOOD).encode()),  # sniffed
    ("q.data", lambda: "\n".join(json.dumps(r) for r in records(GOOD)).encode()),  # sniffed ndjson
])
def test_every_format(store, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content())
    report = loaders.load(store, "purchases", path)
    check_sum(report)
    assert (report.read, report.accepted, report.rejected, report.duplicates) == (3, 3, 0, 0)
    assert report.status == "completed"
    assert report.tables == {"purchases": 3}
    assert sorted_purchases(store) == expected_purchases()


def test_stdin_and_file_objects(store, monkeypatch):
    data = csv_text(GOOD).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(data))))
    report = loaders.load(store, "purchases", "-")
    assert report.source == "-" and report.accepted == 3
    other = CustomerActivityFeatures()
    report = loaders.load(other, "purchases", io.BytesIO(data), fmt="csv")
    assert report.accepted == 3
    third = CustomerActivityFeatures()
    report = loaders.load(third, "purchases", io.StringIO(json.dumps(records(GOOD))), fmt="json")
    assert report.accepted == 3 and sorted_purchases(third) == expected_purchases()


def test_second_load_changes_nothing(store, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(csv_text(GOOD + [("", "1", "2024-01-01", "x"), ("c9", "abc", "2024-01-01", "y")]))
    first = loaders.load(store, "purchases", path)
    check_sum(first)
    before = snapshot(store)
    again = loaders.load(store, "purchases", path)
    assert again.status == "already_loaded"
    assert (again.read, again.accepted, again.rejected, again.duplicates) == (0, 0, 0, 0)
    assert again.previous["accepted"] == 3 and again.previous["rejected"] == 2
    assert snapshot(store) == before
    # the same rows in another file are duplicates, never stored twice
    copy = tmp_path / "copy.csv"
    copy.write_text(csv_text(GOOD) + "\n")
    dup = loaders.load(store, "purchases", copy)
    assert (dup.read, dup.accepted, dup.duplicates) == (3, 0, 3)
    assert table(store, "purchases") == before["purchases"]
    assert [load["status"] for load in loaders.list_loads(store)] == ["completed", "completed"]


def test_mapping_date_format_and_timezone(store, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("Kunde;x\n")  # replaced below
    path.write_text("Kunde,Betrag,Datum,Nr\nk1,3.5,31.01.2024 10:00,n1\nk2,4,15.07.2024 10:00,n2\n")
    report = loaders.load(store, "purchases", path,
                          mapping={"customer_id": "Kunde", "order_value": "Betrag", "purchase_date": "Datum",
                                   "order_id": "Nr"},
                          date_format="%d.%m.%Y %H:%M", timezone="Europe/Berlin")
    assert report.accepted == 2
    rows = {r[3]: r[2] for r in table(store, "purchases")}
    assert rows["n1"] == 1706691600000000  # 10:00 CET = 09:00 UTC
    assert rows["n2"] == 1721030400000000  # 10:00 CEST = 08:00 UTC
    # naive times in a file are UTC by default
    other = CustomerActivityFeatures()
    path2 = tmp_path / "naive.csv"
    path2.write_text(HEADER + "c,1,2024-01-01 00:00:00,z\n")
    loaders.load(other, "purchases", path2)
    assert table(other, "purchases")[0][2] == 1704067200000000


def test_malformed_rows_are_rejected_with_reasons(store, tmp_path):
    lines = [
        HEADER.encode(),
        b"c1,10,2024-01-01T00:00:00Z,ok1\n",
        b"c2,10,2024-01-01T00:00:00Z\n",                       # too few columns
        b"c3,10,2024-01-01T00:00:00Z,x,extra\n",               # too many
        b"c4,ten,2024-01-01T00:00:00Z,bad-number\n",
        b"c5,-3,2024-01-01T00:00:00Z,negative\n",
        b"c6,nan,2024-01-01T00:00:00Z,nan\n",
        b"c7,1,2024-13-45,bad-date\n",
        b"c8,1,,no-date\n",
        b",1,2024-01-01T00:00:00Z,no-customer\n",
        b"c\xff\xfe9,1,2024-01-01T00:00:00Z,bad-utf8\n",
        b"\n",                                                 # blank line: not a row
        b"c10,\"1\",2024-01-01T00:00:00Z,\"quoted, ok\"\n",
        b"c1,10,2024-01-01T00:00:00Z,ok1\n",                   # duplicate order id
    ]
    path = tmp_path / "messy.csv"
    path.write_bytes(b"".join(lines))
    report = loaders.load(store, "purchases", path)
    check_sum(report)
    assert (report.read, report.accepted, report.rejected, report.duplicates) == (12, 2, 9, 1)
    reasons = report.rejected_by_reason
    assert reasons["row: expected 4 columns, got 3"] == 1
    assert reasons["row: expected 4 columns, got 5"] == 1
    assert reasons["order_value: not a number"] == 1
    assert reasons["order_value: is negative"] == 1
    assert reasons["order_value: is NaN"] == 1
    assert reasons["purchase_date: unparseable date"] == 1
    assert reasons["purchase_date: is missing"] == 1
    assert reasons["customer_id: is missing"] == 1
    assert reasons["encoding: invalid UTF-8"] == 1
    stored = dict(store.conn.execute("SELECT source_row, payload FROM rejected_events WHERE load_id = ?",
                                     [report.load_id]))
    assert set(stored) == {2, 3, 4, 5, 6, 7, 8, 9, 10}
    assert json.loads(stored[4])["order_value"] == "ten"
    assert "\\xff" in json.loads(stored[10])["customer_id"]
    assert {r[3] for r in table(store, "purchases")} == {"ok1", "quoted, ok"}


def test_malformed_json(store, tmp_path):
    nd = tmp_path / "bad.ndjson"
    nd.write_bytes(b'{"customer_id": "a", "order_value": 1, "purchase_date": "2024-01-01T00:00:00Z"}\n'
                   b'{"customer_id": "b", "order_value": \n'
                   b'[1, 2]\n'
                   b'{"customer_id": "c", "order_value": true, "purchase_date": "2024-01-01T00:00:00Z"}\n'
                   b'{"customer_id": "d", "order_value": 2, "purchase_date": "2024-01-01T00:00:00Z", "zz": 1}\n')
    report = loaders.load(store, "purchases", nd)
    check_sum(report)
    assert (report.read, report.accepted, report.rejected) == (5, 2, 3)
    assert report.rejected_by_reason["record: must be a JSON object"] == 1
    assert any(r.startswith("json: malformed line") for r in report.rejected_by_reason)
    arr = tmp_path / "bad.json"
    arr.write_text('[{"customer_id": "a", "order_value": 1, "purchase_date": "2024-01-01T00:00:00Z"}, 7, '
                   '{"customer_id": "b", "order_value": 2, "purchase_date": "2024-01-01T00:00:00Z"}, {"broken": ')
    other = CustomerActivityFeatures()
    report = loaders.load(other, "purchases", arr)
    check_sum(report)
    assert (report.read, report.accepted, report.rejected) == (4, 2, 2)
    with pytest.raises(LoadError, match="not a JSON array"):
        p = tmp_path / "obj.json"
        p.write_text('{"a": 1}')
        loaders.load(CustomerActivityFeatures(), "purchases", p)


def test_other_generic_kinds(store, tmp_path):
    (tmp_path / "s.csv").write_text("customer_id,duration_seconds,device_type,session_date,session_id\n"
                                    "a,60,mobile,2024-01-01T00:00:00Z,s1\nb,-1,,2024-01-01T00:00:00Z,s2\n")
    (tmp_path / "c.csv").write_text("customer_id,event_type,cart_value,event_date,cart_id\n"
                                    "a,Abandoned,5,2024-01-01T00:00:00Z,k1\na,lost,5,2024-01-01T00:00:00Z,k2\n"
                                    "a,converted,,2024-01-02T00:00:00Z,k3\n")
    (tmp_path / "t.csv").write_text("customer_id,ticket_id,response_time_hours,escalated,interaction_date\n"
                                    "a,t1,2.5,yes,2024-01-01T00:00:00Z\na,t2,,0,2024-01-01T00:00:00Z\n"
                                    "a,t3,1,maybe,2024-01-01T00:00:00Z\n")
    (tmp_path / "r.csv").write_text("customer_id,refund_value,refund_date,refund_id,order_id\n"
                                    "a,5,2024-01-01T00:00:00Z,cn1,o1\na,3,2024-01-02T00:00:00Z,cn2,\n")
    (tmp_path / "m.csv").write_text("customer_id,segment,country\na,gold,UK\nb,silver,FR\n")
    files = {"sessions": "s.csv", "carts": "c.csv", "support": "t.csv", "refunds": "r.csv"}
    results = {kind: loaders.load(store, kind, tmp_path / name) for kind, name in files.items()}
    results["customers"] = loaders.load(store, "customers", tmp_path / "m.csv")
    for r in results.values():
        check_sum(r)
    assert (results["sessions"].accepted, results["sessions"].rejected) == (1, 1)
    assert (results["carts"].accepted, results["carts"].rejected) == (2, 1)
    assert (results["support"].accepted, results["support"].rejected) == (2, 1)
    assert results["support"].rejected_by_reason == {"escalated: must be true or false": 1}
    assert table(store, "refunds") == [("", "a", 1704067200000000, "cn1", 5.0, "o1"),
                                       ("", "a", 1704153600000000, "cn2", 3.0, None)]
    assert results["customers"].accepted == 2
    meta = dict(store.conn.execute("SELECT customer_id, metadata FROM customers"))
    assert json.loads(meta["a"]) == {"segment": "gold", "country": "UK"}
    assert store.get_support_ticket_count("a", as_of="2024-02-01T00:00:00Z") == 2
    # customers again with one change: unchanged metadata counts as a duplicate
    (tmp_path / "m2.csv").write_text("customer_id,segment,country\na,gold,UK\nb,gold,FR\n")
    r = loaders.load(store, "customers", tmp_path / "m2.csv")
    assert (r.accepted, r.duplicates) == (1, 1)


def test_missing_ids_get_stable_ids(tmp_path):
    path = tmp_path / "noid.csv"
    path.write_text("customer_id,order_value,purchase_date\na,1,2024-01-01T00:00:00Z\na,1,2024-01-01T00:00:00Z\n")
    ids = []
    for _ in range(2):
        s = CustomerActivityFeatures()
        report = loaders.load(s, "purchases", path)
        assert report.accepted == 2
        ids.append([r[3] for r in table(s, "purchases")])
    assert ids[0] == ids[1]


def test_bad_files_and_options(store, tmp_path):
    with pytest.raises(LoadError, match="no such file"):
        loaders.load(store, "purchases", tmp_path / "missing.csv")
    path = tmp_path / "p.csv"
    path.write_text(csv_text(GOOD))
    with pytest.raises(LoadError, match="unknown kind"):
        loaders.load(store, "orders", path)
    with pytest.raises(LoadError, match="unknown format"):
        loaders.load(store, "purchases", path, fmt="xml")
    with pytest.raises(LoadError, match="unknown time zone"):
        loaders.load(store, "purchases", path, timezone="Mars/Olympus")
    with pytest.raises(LoadError, match="unknown field"):
        loaders.load(store, "purchases", path, mapping={"price": "order_value"})
    with pytest.raises(LoadError, match="no column 'Amount'"):
        loaders.load(store, "purchases", path, mapping={"order_value": "Amount"})
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(LoadError, match="no column 'customer_id'"):
        loaders.load(store, "purchases", other)
    bad_gz = tmp_path / "bad.csv.gz"
    bad_gz.write_bytes(gzip.compress(csv_text(GOOD * 1).encode())[:30])
    with pytest.raises(LoadError):
        loaders.load(store, "purchases", bad_gz)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    report = loaders.load(store, "purchases", empty)
    assert report.read == 0 and report.status == "completed"
    assert table(store, "purchases") == []


def test_progress_and_list_loads(store, tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "BATCH_ROWS", 10)
    path = tmp_path / "many.csv"
    path.write_text(HEADER + "".join(f"c{i % 7},{i},2024-01-01T00:00:00Z,o{i}\n" for i in range(95)))
    seen = []
    report = loaders.load(store, "purchases", path, progress=lambda r: seen.append((r.read, r.bytes_read)))
    assert report.accepted == 95
    assert [s[0] for s in seen] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 95]
    assert all(0 < b <= report.size for _, b in seen)
    (load,) = loaders.list_loads(store)
    assert load["status"] == "completed" and load["rows_read"] == 95 and load["tables"] == {"purchases": 95}
    assert load["options"]["format"] == "csv" and load["finished_at"].endswith("Z")
    assert store.load("purchases", path).status == "already_loaded"


def test_add_refund_and_refund_features(store):
    assert store.add_refund("c1", 5.0, "2024-01-01T00:00:00Z", refund_id="cn1", order_id="o1") is True
    assert store.add_refund("c1", -1, "2024-01-01T00:00:00Z", refund_id="cn2") is False
    result = store.add_refunds([{"customer_id": "c1", "refund_value": 2, "refund_date": "2024-01-10T00:00:00Z",
                                 "refund_id": "cn3"}, {"customer_id": "c1", "refund_value": 2,
                                                       "refund_date": "2024-01-10T00:00:00Z", "refund_id": "cn3"}])
    assert (result.accepted, result.duplicates) == (1, 1)
    store.flush()
    from store.features import compose, parameters
    params = parameters("", days=5)
    params.update(customer_id="c1", as_of_us=1704844800000000)  # 2024-01-10T00:00:00Z
    row = store.conn.execute(compose("refund_features"), params).fetchone()
    assert row[1:] == (1, 2.0)
    params = parameters("")
    params.update(customer_id="c1", as_of_us=1704844800000000 - 1)
    assert store.conn.execute(compose("refund_features"), params).fetchone()[1:] == (1, 5.0)


# -- refund_features against its oracle ---------------------------------------------------
from hypothesis import given, settings, strategies as st  # noqa: E402

from tests.oracle_refunds import refund_features as oracle_refund_features  # noqa: E402

AS_OF = 1_717_200_000_000_000  # 2024-06-01T00:00:00Z
DAY = 86_400_000_000


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(st.tuples(st.sampled_from(["a", "b"]),
                              st.sampled_from([AS_OF - 40 * DAY, AS_OF - 30 * DAY - 1, AS_OF - 30 * DAY,
                                               AS_OF - 5 * DAY, AS_OF, AS_OF + 1]),
                              st.sampled_from([0.0, 0.5, 2.25, 100.0])), max_size=12),
    days=st.sampled_from([None, 0, 30, 365]),
)
def test_refund_features_match_the_oracle(events, days):
    from store.features import compose, parameters
    with CustomerActivityFeatures() as store:
        store.add_refunds([{"customer_id": c, "refund_value": v, "refund_date": None, "refund_id": f"r{i}"}
                           for i, (c, t, v) in enumerate(events)])
        store.flush()
        for i, (c, t, v) in enumerate(events):  # exact microsecond times
            store.conn.execute("UPDATE refunds SET event_time_us = ? WHERE event_id = ?", [t, f"r{i}"])
        params = parameters("", days=days)
        params.update(customer_id="a", as_of_us=AS_OF)
        row = store.conn.execute(compose("refund_features"), params).fetchone()
        window_us = days * DAY if days else None
        expected = oracle_refund_features(events, "a", AS_OF, window_us)
        assert row[1] == expected["refund_count"]
        assert row[2] == pytest.approx(expected["refund_value"])
