"""Issue 11, item 1: one poison row never blocks a dump load.

A value that used to crash a load at the same row on every retry (an Online
Retail quantity of 1 followed by 400 zeros, an incident reassignment count
above 2**63, a lone surrogate written as a JSON escape) is now a rejected row
with its reason, and the rest of the file loads. The property test loads
random files of valid rows with one hostile cell, in any column (read or not),
of any kind and preset, as CSV, JSON or NDJSON: every load completes, with
read = accepted + rejected + duplicates and its ``loads`` row 'completed'.
Also: whatever stops a load, its ``loads`` row and staged rows stay consistent
and resumable, and a load stopped before its first commit leaves no record.
"""

import csv
import dataclasses
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from store import formats, loaders
from tests.test_load_resume import retail_file
from tests.test_loaders import snapshot

EXAMPLES = 60        # default run
LONG_EXAMPLES = 1500  # pytest -m long
STATS = {"files": 0, "rows": 0, "accepted": 0, "rejected": 0, "duplicates": 0}


def valid_row(kind, i):
    """A valid input row of ``kind`` (column -> text); every row is its own event / group."""
    day = f"2024-01-{1 + i % 28:02d}"
    iso = f"{day}T10:{i % 60:02d}:00Z"
    customer = f"c{i % 3}"
    rows = {
        "purchases": {"customer_id": customer, "order_value": f"{i + 1}.5", "purchase_date": iso,
                      "order_id": f"o{i}"},
        "sessions": {"customer_id": customer, "duration_seconds": "30", "device_type": "mobile",
                     "session_date": iso, "session_id": f"s{i}", "session_start": iso,
                     "session_end": f"{day}T11:00:00Z", "page_views": "3", "browser": "firefox",
                     "referrer": "news", "channel": "seo"},
        "carts": {"customer_id": customer, "event_type": "abandoned", "cart_value": "5", "event_date": iso,
                  "cart_id": f"k{i}"},
        "support": {"customer_id": customer, "ticket_id": f"t{i}", "response_time_hours": "2",
                    "escalated": "true", "interaction_date": iso},
        "customers": {"customer_id": f"c{i}", "metadata": '{"tier": "gold"}', "created_at": iso},
        "refunds": {"customer_id": customer, "refund_value": "3", "refund_date": iso, "refund_id": f"r{i}",
                    "order_id": f"o{i}"},
        "interactions": {"customer_id": customer, "event_type": "page_view", "event_date": iso,
                         "session_id": f"s{i}", "page_type": "home", "product_id": f"p{i}", "category": "shoes",
                         "search_query": "red", "view_duration_seconds": "12", "device_type": "mobile",
                         "event_id": f"e{i}"},
        "attributions": {"customer_id": customer, "order_id": f"o{i}", "source": "google", "medium": "cpc",
                         "attribution_date": iso},
        "online-retail": {"InvoiceNo": f"5{i:05d}", "StockCode": "85123A", "Description": "WHITE HEART",
                          "Quantity": "6", "InvoiceDate": f"{day} 08:26:00", "UnitPrice": "2.55",
                          "CustomerID": f"1785{i % 3}.0", "Country": "United Kingdom"},
        "rees46": {"event_time": f"2019-10-01 00:00:{i % 60:02d} UTC", "event_type": "purchase",
                   "product_id": f"{1000 + i}", "category_id": "2053013555631882655",
                   "category_code": "electronics.smartphone", "brand": "xiaomi", "price": "489.07",
                   "user_id": f"{541312140 + i}", "user_session": f"72d76fde-{i}"},
        "incidents": {"number": f"INC{i:07d}", "incident_state": "New", "active": "true",
                      "reassignment_count": "0", "caller_id": f"Caller {2403 + i}", "opened_at": "29-02-2016 01:16",
                      "sys_updated_at": "29-02-2016 01:23", "priority": "3 - Moderate", "resolved_at": "?"},
    }
    row = rows[kind]
    if kind in loaders.GENERIC:
        row["note"] = "an unread column"
    return row


ALL_KINDS = list(loaders.KINDS) + list(loaders.PRESETS)
HOSTILE_TEXT = [
    "1" + "0" * 400, "-1" + "0" * 400, str(2 ** 63), str(2 ** 64), str(-(2 ** 63) - 1), "9" * 5000,
    "1e400", "-1e400", "1.7976931348623157e308", "1e300", "1e-400", "NaN", "inf", "-inf", "-0", "0x10",
    "1_000", "\u0661\u0662", "\x00", "a\x00b", "", " ", "?", "\udfff", "x\ud800y", "\udc80", "x" * 5000,
    "2024-02-30", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "29-02-2016 25:99",
    "'; DROP TABLE purchases; --", '"', "a,b;c\td|e", "line\nbreak", "\u202e", "{}", "[1]", "true",
    '{"a": "\\udfff"}', "C536379",
]
DEEP = [1]
for _ in range(40):
    DEEP = [DEEP]
HOSTILE_JSON = [10 ** 400, -(10 ** 400), 2 ** 64, float("inf"), float("nan"), -0.0, 1.7976931348623157e308,
                True, None, [1, "\udfff"], {"a": {"b": ["\ud800"]}}, {"\udfff": 1}, DEEP]
RAW_JSON = ["1e400", "9" * 5000, "-" + "9" * 400]  # number literals written as they are


@st.composite
def poisoned_file(draw, kinds=tuple(ALL_KINDS)):
    kind = draw(st.sampled_from(kinds))
    fmt = draw(st.sampled_from(["csv", "ndjson", "json"]))
    n = draw(st.integers(1, 6))
    rows = [valid_row(kind, i) for i in range(n)]
    victim = draw(st.integers(0, n - 1))
    column = draw(st.sampled_from(sorted(rows[victim])))
    choices = [st.sampled_from(HOSTILE_TEXT)]
    if fmt != "csv":
        choices += [st.sampled_from(HOSTILE_JSON), st.sampled_from(RAW_JSON).map(lambda t: ("raw", t))]
    value = draw(st.one_of(*choices))
    raw = None
    if isinstance(value, tuple):
        raw, value = value[1], "\x1ePLACEHOLDER\x1e"
    rows[victim][column] = value
    header = list(rows[0])
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([row[h] for h in header])
        text = out.getvalue()
    else:
        ascii_only = draw(st.booleans())  # True: lone surrogates as JSON escapes; False: as invalid bytes
        if fmt == "ndjson":
            text = "\n".join(json.dumps(row, ensure_ascii=ascii_only) for row in rows) + "\n"
        else:
            text = json.dumps(rows, ensure_ascii=ascii_only, indent=draw(st.sampled_from([None, 1])))
    if raw is not None:
        text = text.replace(json.dumps("\x1ePLACEHOLDER\x1e"), raw)
    return kind, fmt, n, text.encode("utf-8", "surrogatepass")


def staged_rows(store):
    return sum(store.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in sorted(loaders.STAGING_TABLES))


def check_completed(store, report, n):
    assert report.status == "completed"
    assert report.read == n, report.as_dict()
    assert report.read == report.accepted + report.rejected + report.duplicates, report.as_dict()
    assert sum(report.rejected_by_reason.values()) == report.rejected
    assert all(reason and ": " in reason for reason in report.rejected_by_reason)
    (row,) = store.conn.execute("SELECT status, rows_read, rows_accepted + rows_rejected + rows_duplicate, "
                                "rows_pending FROM loads WHERE id = ?", [report.load_id])
    assert row == ("completed", n, n, 0)
    stored = store.conn.execute("SELECT COUNT(*) FROM rejected_events WHERE load_id = ?",
                                [report.load_id]).fetchone()[0]
    assert stored == report.rejected
    assert staged_rows(store) == 0


def loads_poisoned_files(examples, tmp_path_factory):
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(spec=poisoned_file())
    def run(spec):
        kind, fmt, n, data = spec
        path = tmp_path_factory.mktemp("poison") / f"in.{fmt}"
        path.write_bytes(data)
        with CustomerActivityFeatures() as store:
            report = store.load(kind, path)  # never raises: the hostile cell costs at most its row
            check_completed(store, report, n)
            # each row is its own event or group: one cell can cost one row, never another
            assert report.rejected <= 1 and report.duplicates == 0, report.as_dict()
            assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        STATS["files"] += 1
        STATS["rows"] += report.read
        for key in ("accepted", "rejected", "duplicates"):
            STATS[key] += getattr(report, key)

    run()


def test_one_hostile_cell_never_blocks_a_load(tmp_path_factory):
    loads_poisoned_files(EXAMPLES, tmp_path_factory)


@pytest.mark.long
def test_one_hostile_cell_never_blocks_a_load_long(tmp_path_factory, capsys):
    loads_poisoned_files(LONG_EXAMPLES, tmp_path_factory)
    with capsys.disabled():
        print(f"\nPOISON (long): {STATS}")


# -- the rows of the issue, one by one ---------------------------------------------------
def csv_file(path, kind, rows):
    header = list(rows[0])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([row[h] for h in header] for row in rows)
    path.write_text(out.getvalue())
    return path


@pytest.mark.parametrize("kind,column,value,reason", [
    ("online-retail", "Quantity", "1" + "0" * 400, "Quantity: is too large"),
    ("online-retail", "Quantity", "-1" + "0" * 400, "Quantity: is too large"),
    ("incidents", "reassignment_count", str(2 ** 63), "reassignment_count: is too large"),
    ("incidents", "reassignment_count", str(2 ** 64), "reassignment_count: is too large"),
    ("rees46", "price", "1.7976931348623157e308", "price: is too large"),
])
def test_huge_numbers_are_rejected_rows(tmp_path, kind, column, value, reason):
    rows = [valid_row(kind, i) for i in range(5)]
    rows[2][column] = value
    path = csv_file(tmp_path / "in.csv", kind, rows)
    for attempt in range(2):  # once, then again: the second run finds the completed load
        with CustomerActivityFeatures(tmp_path / "s.db") as store:
            report = store.load(kind, path)
            if attempt == 0:
                check_completed(store, report, 5)
                assert report.rejected_by_reason == {reason: 1}
                assert report.accepted == 4
            else:
                assert report.status == "already_loaded"


PRESET_TEXT_COLUMNS = [(kind, column) for kind in loaders.PRESETS for column in loaders.PRESET[kind].columns]


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
@pytest.mark.parametrize("kind,column", PRESET_TEXT_COLUMNS)
def test_lone_surrogate_escape_in_a_preset_column(tmp_path, fmt, kind, column):
    rows = [valid_row(kind, i) for i in range(4)]
    rows[1][column] = "x\udfffy"
    text = ("\n".join(json.dumps(r) for r in rows) if fmt == "ndjson" else json.dumps(rows))
    assert "\\udfff" in text  # written as a JSON escape, as the issue found it
    path = tmp_path / f"in.{fmt}"
    path.write_text(text)
    with CustomerActivityFeatures() as store:
        report = store.load(kind, path)
        check_completed(store, report, 4)
        assert report.rejected_by_reason == {f"{column}: is not valid Unicode text (a lone surrogate)": 1}
        assert report.accepted == 3
        payload = store.conn.execute("SELECT payload FROM rejected_events").fetchone()[0]
        assert "\\udfff" in payload  # shown escaped, storable


@pytest.mark.parametrize("kind", loaders.KINDS)
def test_lone_surrogate_escape_in_every_generic_field(tmp_path, kind):
    fields = [f for f in valid_row(kind, 0) if f != "note"]
    for field in fields:
        rows = [valid_row(kind, i) for i in range(3)]
        rows[1][field] = "\udfff"
        path = tmp_path / f"{field}.ndjson"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        with CustomerActivityFeatures() as store:
            report = store.load(kind, path)
            check_completed(store, report, 3)
            assert report.accepted >= 2 and report.rejected == 1, (field, report.as_dict())
        # in a column the load does not read, it costs nothing
        rows[1][field] = valid_row(kind, 1)[field]
        rows[1]["note"] = "\udfff"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        with CustomerActivityFeatures() as store:
            report = store.load(kind, path)
            check_completed(store, report, 3)
            assert report.accepted == 3, (field, report.as_dict())
    if kind == "customers":  # without a metadata column the other columns are the metadata: read
        for row in rows:
            del row["metadata"]
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        with CustomerActivityFeatures() as store:
            report = store.load(kind, path)
            check_completed(store, report, 3)
            assert report.rejected_by_reason == {"metadata: is not valid Unicode text (a lone surrogate)": 1}


# -- the safety nets -----------------------------------------------------------------------
def test_a_value_sqlite_refuses_costs_only_its_row(tmp_path, monkeypatch):
    """A row the parsers let through but SQLite cannot bind: the batch is inserted again row by
    row and only that row is rejected (preset: staged rows; generic kind: event rows)."""
    monkeypatch.setattr(loaders, "BATCH_ROWS", 4)
    monkeypatch.setattr(loaders, "MAX_INTEGER", 2 ** 80)  # the parse check lets 2**64 through
    rows = [valid_row("incidents", i) for i in range(10)]
    rows[5]["reassignment_count"] = str(2 ** 64)
    with CustomerActivityFeatures() as store:
        report = store.load("incidents", csv_file(tmp_path / "i.csv", "incidents", rows))
        check_completed(store, report, 10)
        assert report.accepted == 9
        (reason, row_no), = store.conn.execute("SELECT reason, source_row FROM rejected_events")
        assert reason == "row: cannot be stored (a number is too large)" and row_no == 6

    real = formats.whole_number
    monkeypatch.setattr(formats, "whole_number", lambda v, f: 2 ** 64 if v == "66" else real(v, f))
    rows = [valid_row("sessions", i) for i in range(10)]
    rows[6]["page_views"] = "66"
    with CustomerActivityFeatures() as store:
        report = store.load("sessions", csv_file(tmp_path / "s.csv", "sessions", rows))
        check_completed(store, report, 10)
        assert report.accepted == 9
        assert list(store.conn.execute("SELECT reason, source_row FROM rejected_events")) == [
            ("row: cannot be stored (a number is too large)", 7)]


def test_an_exception_while_parsing_costs_only_its_row(tmp_path, monkeypatch):
    preset = loaders.PRESET["online-retail"]

    def parser(parse_time):
        parse = preset.parser(parse_time)

        def wrapped(f):
            if f[0] == "500003":
                raise ZeroDivisionError("a parser bug met by one row")
            return parse(f)
        return wrapped
    monkeypatch.setitem(loaders.PRESET, "online-retail", dataclasses.replace(preset, parser=parser))
    rows = [valid_row("online-retail", i) for i in range(6)]
    with CustomerActivityFeatures() as store:
        report = store.load("online-retail", csv_file(tmp_path / "r.csv", "online-retail", rows))
        check_completed(store, report, 6)
        assert report.rejected_by_reason == {"row: cannot be read (ZeroDivisionError: a parser bug met by one row)": 1}


class Boom(Exception):
    pass


def failing_parser(fail_at_row):
    preset = loaders.PRESET["online-retail"]
    seen = {"rows": 0}

    def parser(parse_time):
        parse = preset.parser(parse_time)

        def wrapped(f):
            seen["rows"] += 1
            if seen["rows"] == fail_at_row:
                raise Boom("not a data problem: the load must stop")
            return parse(f)
        return wrapped
    return dataclasses.replace(preset, parser=parser)


def test_a_load_stopped_by_an_error_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    source = retail_file(tmp_path / "r.csv", 3_000)
    with CustomerActivityFeatures(tmp_path / "ref.db") as reference:
        expected_report = reference.load("online-retail", source)
        expected = snapshot(reference)
    monkeypatch.setattr(loaders, "BATCH_ROWS", 500)
    real = loaders.PRESET["online-retail"]
    db = tmp_path / "s.db"
    # stopped before its first commit: no loads row is left behind
    monkeypatch.setitem(loaders.PRESET, "online-retail", failing_parser(10))
    with CustomerActivityFeatures(db) as store:
        with pytest.raises(Boom):
            store.load("online-retail", source)
        assert loaders.list_loads(store) == []
        assert staged_rows(store) == 0
    # stopped after some batches: they stay, with their staged rows, and the loads row says so
    monkeypatch.setitem(loaders.PRESET, "online-retail", failing_parser(1_700))
    with CustomerActivityFeatures(db) as store:
        with pytest.raises(Boom):
            store.load("online-retail", source)
        (load,) = loaders.list_loads(store)
        assert load["status"] == "running" and load["rows_read"] > 0 and load["rows_read"] % 500 == 0
        assert load["rows_pending"] == staged_rows(store) > 0
    monkeypatch.setitem(loaders.PRESET, "online-retail", real)
    with CustomerActivityFeatures(db) as store:
        report = store.load("online-retail", source)
        assert report.resumed and report.status == "completed"
        assert (report.read, report.accepted, report.rejected, report.duplicates) == (
            expected_report.read, expected_report.accepted, expected_report.rejected, expected_report.duplicates)
        assert snapshot(store) == expected
        assert staged_rows(store) == 0
