"""The online-retail, rees46 and incidents presets on small generated files with the real-world mess."""

import gzip
import json

import pytest

from customer_activity_features import CustomerActivityFeatures
from store import loaders
from tests.test_loaders import check_sum, snapshot, table

US = 1_000_000
RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
T0 = 1291192200 * US  # 2010-12-01 08:30:00 UTC


def retail_lines():
    return [
        "536365,85123A,WHITE HEART,6,2010-12-01 08:30:00,2.55,17850.0,United Kingdom",
        "536365,71053,LANTERN,6,2010-12-01 08:30:00,3.39,17850.0,United Kingdom",
        "536366,22633,HAND WARMER,6,2010-12-01 08:31:00,1.85,17851,United Kingdom",
        "536365,84406B,\"COAT HANGER, CREAM\",8,2010-12-01 08:30:00,2.75,17850.0,United Kingdom",  # not contiguous
        "536365,71053,LANTERN,6,2010-12-01 08:30:00,3.39,17850.0,United Kingdom",  # exact duplicate line
        "536367,22000,FREE GIFT,1,2010-12-01 09:00:00,0,17852.0,United Kingdom",  # zero price
        "536368,22001,NO CUSTOMER,1,2010-12-01 09:00:00,1.0,,United Kingdom",
        "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom",
        "C536379,22002,RETURNED,-2,2010-12-01 09:41:00,1.25,14527.0,United Kingdom",
        "A563186,B,Adjust bad debt,1,2011-08-12 14:51:00,-11062.06,,United Kingdom",
        "536369,22003,BAD QTY,many,2010-12-01 09:00:00,1.0,17853.0,United Kingdom",
        "536370,22004,BAD DATE,1,2010-31-12 09:00,1.0,17853.0,United Kingdom",
        "536371,22005,SHORT ROW,1,2010-12-01 09:00:00,1.0",
        "536372,22006,NEGATIVE,-5,2010-12-01 10:00:00,1.0,17854.0,United Kingdom",  # non-C with negative total
        "C536373,22007,POSITIVE CANCEL,5,2010-12-01 10:00:00,1.0,17854.0,United Kingdom",
    ]


def write(path, lines, header=RETAIL_HEADER, gz=False):
    data = (header + "\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_online_retail(tmp_path):
    store = CustomerActivityFeatures()
    report = loaders.load(store, "online-retail", write(tmp_path / "retail.csv.gz", retail_lines(), gz=True))
    check_sum(report)
    assert report.read == 15
    assert report.duplicates == 1
    assert report.rejected_by_reason == {
        "CustomerID: is missing": 2,
        "Quantity: not a number": 1,
        "InvoiceDate: unparseable date": 1,
        "row: expected 8 columns, got 6": 1,
        "invoice: negative total on a non-cancellation invoice": 1,
        "invoice: cancellation (C) invoice with a positive total": 1,
    }
    assert report.accepted == 7  # 3 distinct lines of 536365, 536366, 536367, 2 lines of C536379
    assert report.tables == {"purchases": 3, "refunds": 1}
    purchases = {r[3]: r for r in table(store, "purchases")}
    assert purchases["536365"] == ("", "17850", T0, "536365", pytest.approx(6 * 2.55 + 6 * 3.39 + 8 * 2.75))
    assert purchases["536366"][1:3] == ("17851", T0 + 60 * US)
    assert purchases["536367"][4] == 0.0
    assert table(store, "refunds") == [("", "14527", T0 + 71 * 60 * US, "C536379", 30.0, None)]
    rejected = dict(store.conn.execute(
        "SELECT source_row, reason FROM rejected_events WHERE load_id = ?", [report.load_id]))
    assert rejected[14] == "invoice: negative total on a non-cancellation invoice"
    assert json.loads(store.conn.execute(
        "SELECT payload FROM rejected_events WHERE source_row = 7").fetchone()[0])["Description"] == "NO CUSTOMER"
    assert store.conn.execute("SELECT COUNT(*) FROM load_staging_online_retail").fetchone()[0] == 0
    before = snapshot(store)
    assert loaders.load(store, "online-retail", tmp_path / "retail.csv.gz").status == "already_loaded"
    assert snapshot(store) == before


def test_online_retail_line_order_does_not_matter(tmp_path):
    lines = retail_lines()
    a, b = CustomerActivityFeatures(), CustomerActivityFeatures()
    ra = loaders.load(a, "online-retail", write(tmp_path / "a.csv", lines))
    rb = loaders.load(b, "online-retail", write(tmp_path / "b.csv", list(reversed(lines))))
    assert (ra.accepted, ra.rejected, ra.duplicates) == (rb.accepted, rb.rejected, rb.duplicates)
    assert ra.rejected_by_reason == rb.rejected_by_reason
    assert table(a, "purchases") == table(b, "purchases")
    assert table(a, "refunds") == table(b, "refunds")


def test_online_retail_split_across_files_and_timezone(tmp_path):
    store = CustomerActivityFeatures()
    lines = retail_lines()[:3]
    loaders.load(store, "online-retail", write(tmp_path / "one.csv", lines[:1]))
    report = loaders.load(store, "online-retail", write(tmp_path / "two.csv", lines[1:]))
    # invoice 536365 was stored by the first file: its lines in the second are duplicates
    assert (report.accepted, report.duplicates) == (1, 1)
    london = CustomerActivityFeatures()
    loaders.load(london, "online-retail", tmp_path / "one.csv", timezone="Europe/London")
    assert table(london, "purchases")[0][2] == T0  # December: London = UTC
    (tmp_path / "json.ndjson").write_text("\n".join(json.dumps(dict(zip(RETAIL_HEADER.strip().split(","), v)))
                                                    for v in [["536365", "x", "d", 2, "2010-12-01 08:30:00", 1.5,
                                                               17850.0, "UK"]]))
    js = CustomerActivityFeatures()
    report = loaders.load(js, "online-retail", tmp_path / "json.ndjson")
    assert report.accepted == 1 and table(js, "purchases") == [("", "17850", T0, "536365", 3.0)]


REES_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"


def rees_lines():
    return [
        "2019-10-01 00:00:00 UTC,view,1,10,electronics.phone,apple,100.00,501,s-a",
        "2019-10-01 00:01:00 UTC,cart,1,10,electronics.phone,apple,100.00,501,s-a",
        "2019-10-01 00:02:00 UTC,cart,2,10,,samsung,50.00,501,s-a",
        "2019-10-01 00:05:00 UTC,purchase,1,10,,apple,100.00,501,s-a",
        "2019-10-01 00:00:30 UTC,view,3,11,,,5.00,502,s-b",
        "2019-10-01 00:03:00 UTC,cart,3,11,,,5.00,502,s-b",
        "2019-10-01 00:04:00 UTC,remove_from_cart,3,11,,,5.00,502,s-b",
        "2019-10-01 00:00:10 UTC,view,4,12,,,7.00,503,s-shared",
        "2019-10-01 00:00:20 UTC,view,4,12,,,7.00,504.0,s-shared",
        "2019-10-01 00:00:40 UTC,view,4,12,,,7.00,504,s-shared",
        "2019-10-01 00:00:40 UTC,view,4,12,,,7.00,504,s-shared",  # exact duplicate
        "2019-10-01 00:10:00+00:00,purchase,5,12,,,9.00,505,s-c",
        "2019-10-01 00:10:00 UTC,click,5,12,,,9.00,505,s-c",
        "2019-10-01 00:10:00 UTC,cart,5,12,,,,505,s-c",
        "not a date,view,5,12,,,9.00,505,s-c",
        "2019-10-01 00:10:00 UTC,view,5,12,,,9.00,,s-c",
        "2019-10-01 00:10:00 UTC,view,5,12,,,9.00,506,",
    ]


def test_rees46(tmp_path):
    store = CustomerActivityFeatures()
    report = loaders.load(store, "rees46", write(tmp_path / "rees.csv", rees_lines(), REES_HEADER))
    check_sum(report)
    assert (report.read, report.accepted, report.rejected, report.duplicates) == (17, 11, 5, 1)
    assert report.rejected_by_reason == {
        "event_type: must be view, cart, remove_from_cart or purchase": 1, "price: is missing": 1,
        "event_time: unparseable date": 1, "user_id: is missing": 1, "user_session: is missing": 1}
    t = 1569888000 * US  # 2019-10-01 00:00:00 UTC
    sessions = {r[3]: r for r in table(store, "sessions")}
    assert set(sessions) == {"s-a", "s-b", "s-shared/503", "s-shared/504", "s-c"}
    assert sessions["s-a"][:6] == ("", "501", t, "s-a", 300.0, "unknown")
    assert sessions["s-shared/504"][1:5] == ("504", t + 20 * US, "s-shared/504", 20.0)
    carts = {r[3]: r for r in table(store, "cart_events")}
    assert carts["s-a"] == ("", "501", t + 120 * US, "s-a", "converted", 150.0)
    assert carts["s-b"] == ("", "502", t + 180 * US, "s-b", "abandoned", 5.0)
    assert set(carts) == {"s-a", "s-b"}
    purchases = {r[3]: r for r in table(store, "purchases")}
    assert purchases == {"s-a": ("", "501", t + 300 * US, "s-a", 100.0),
                         "s-c": ("", "505", t + 600 * US, "s-c", 9.0)}
    before = snapshot(store)
    assert loaders.load(store, "rees46", tmp_path / "rees.csv").status == "already_loaded"
    assert snapshot(store) == before


def test_rees46_purchase_before_cart_is_not_a_conversion(tmp_path):
    store = CustomerActivityFeatures()
    loaders.load(store, "rees46", write(tmp_path / "r.csv", [
        "2019-10-01 00:00:00 UTC,purchase,1,10,,,10.00,1,s",
        "2019-10-01 00:01:00 UTC,cart,2,10,,,4.00,1,s",
    ], REES_HEADER))
    assert [r[4:] for r in table(store, "cart_events")] == [("abandoned", 4.0)]


INC_HEADER = ("number,incident_state,active,reassignment_count,reopen_count,sys_mod_count,made_sla,caller_id,"
              "opened_by,opened_at,sys_created_by,sys_created_at,sys_updated_by,sys_updated_at,contact_type,"
              "location,category,subcategory,u_symptom,cmdb_ci,impact,urgency,priority,assignment_group,"
              "assigned_to,knowledge,u_priority_confirmation,notify,problem_id,rfc,vendor,caused_by,closed_code,"
              "resolved_by,resolved_at,closed_at\n")


def inc(number, state, reassign, caller, opened, updated, priority, resolved):
    return (f"{number},{state},TRUE,{reassign},0,0,TRUE,{caller},Opened by 8,{opened},Created by 6,{opened},"
            f"Updated by 1,{updated},Phone,Location 1,Category 1,Subcategory 1,Symptom 1,?,2 - Medium,"
            f"2 - Medium,{priority},Group 1,?,TRUE,FALSE,Do Not Notify,?,?,?,?,code 5,Resolved by 1,"
            f"{resolved},05-03-2016 12:00")


def test_incidents(tmp_path):
    lines = [
        inc("INC1", "New", 0, "Caller 1", "29-02-2016 01:16", "29-02-2016 01:23", "3 - Moderate", "29-02-2016 11:29"),
        inc("INC1", "Active", 0, "Caller 1", "29-02-2016 01:16", "29-02-2016 03:16", "3 - Moderate",
            "29-02-2016 11:29"),
        inc("INC1", "Resolved", 0, "Caller 1", "29-02-2016 01:16", "29-02-2016 11:29", "3 - Moderate",
            "29-02-2016 11:29"),
        inc("INC2", "New", 1, "Caller 2", "01-03-2016 10:00", "01-03-2016 10:00", "3 - Moderate", "01-03-2016 16:00"),
        inc("INC2", "New", 1, "Caller 2", "01-03-2016 10:00", "01-03-2016 10:00", "3 - Moderate", "01-03-2016 16:00"),
        inc("INC3", "New", 0, "Caller 3", "01-03-2016 10:00", "01-03-2016 10:00", "1 - Critical", "?"),
        inc("INC4", "New", 0, "?", "01-03-2016 10:00", "01-03-2016 10:00", "3 - Moderate", "?"),
        inc("INC5", "New", 0, "Caller 5", "2016-03-01 10:00", "01-03-2016 10:00", "3 - Moderate", "?"),
        inc("INC6", "New", "x", "Caller 5", "01-03-2016 10:00", "01-03-2016 10:00", "3 - Moderate", "?"),
    ]
    store = CustomerActivityFeatures()
    report = loaders.load(store, "incidents", write(tmp_path / "inc.csv", lines, INC_HEADER))
    check_sum(report)
    assert (report.read, report.accepted, report.rejected, report.duplicates) == (9, 5, 3, 1)
    assert report.rejected_by_reason == {"caller_id: is missing": 1,
                                         "opened_at: unparseable date (expected format %d-%m-%Y %H:%M)": 1,
                                         "reassignment_count: not a whole number": 1}
    rows = {r[3]: r for r in table(store, "support_interactions")}
    opened1 = 1456708560 * US  # 2016-02-29 01:16 UTC
    assert rows["INC1"] == ("", "Caller 1", opened1, "INC1", 2.0, 0)  # first non-New state at 03:16
    assert rows["INC2"][4:] == (6.0, 1)  # never left New: resolved_at; reassigned: escalated
    assert rows["INC3"][4:] == (None, 1)  # no response yet; critical priority: escalated
    assert store.get_support_ticket_count("Caller 1", as_of="2016-03-31T00:00:00Z") == 1
    before = snapshot(store)
    assert loaders.load(store, "incidents", tmp_path / "inc.csv").status == "already_loaded"
    assert snapshot(store) == before


def test_preset_missing_columns(tmp_path):
    from store.errors import LoadError
    with pytest.raises(LoadError, match="no column"):
        loaders.load(CustomerActivityFeatures(), "online-retail", write(tmp_path / "x.csv", ["1,2"], "a,b\n"))
    with pytest.raises(LoadError, match="cannot map"):
        loaders.load(CustomerActivityFeatures(), "rees46", tmp_path / "x.csv", mapping={"nope": "a"})
    store = CustomerActivityFeatures()
    renamed = RETAIL_HEADER.replace("CustomerID", "Customer ID")
    report = loaders.load(store, "online-retail", write(tmp_path / "r.csv", retail_lines()[:1], renamed),
                          mapping={"CustomerID": "Customer ID"})
    assert report.accepted == 1
