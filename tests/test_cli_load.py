"""`caf load`: the wiring to store.loaders.load (options, stdin, progress,
summary, errors), then end-to-end loads of small generated files and of the
real dumps in ../shared/data (skipped when absent)."""

import gzip
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

import store.loaders as loaders
from store.cli import Progress, cli
from store.errors import LoadError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def run(args, db=None, input=None):
    full = (["--db", str(db)] if db is not None else []) + list(args)
    return CliRunner().invoke(cli, full, input=input, prog_name="caf")


def ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def assert_error(result, code, *fragments):
    assert result.exit_code == code, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# -- wiring, with a fake loader ----------------------------------------------------------
class FakeLoader:
    def __init__(self, raises=None, status="completed", reasons=None):
        self.calls = []
        self.raises = raises
        self.status = status
        self.reasons = reasons if reasons is not None else {"customer_id: is empty": 2}

    def __call__(self, store, kind, source, *, fmt=None, mapping=None, date_format=None, timezone=None,
                 progress=None, encoding=None, delimiter=None, max_rejected_ratio=None, wait=True):
        stdin = source.read() if hasattr(source, "read") else None
        self.calls.append(dict(kind=kind, source=source, fmt=fmt, mapping=mapping, date_format=date_format,
                               timezone=timezone, progress=progress, stdin=stdin, encoding=encoding,
                               delimiter=delimiter, max_rejected_ratio=max_rejected_ratio, wait=wait))
        if self.raises:
            raise self.raises
        report = loaders.LoadReport(kind=kind, source=str(source), status="running")
        report.read, report.accepted, report.rejected, report.duplicates = 10, 7, 2, 1
        report.rejected_by_reason = dict(self.reasons)
        if progress is not None:
            progress(report)
        report.status = self.status
        report.seconds = 0.5
        report.tables = {"purchases": 7}
        if self.status == "already_loaded":
            report.read = report.accepted = report.rejected = report.duplicates = 0
            report.previous = {"load_id": 3, "finished_at": "2026-01-01T00:00:00Z"}
        return report


@pytest.fixture
def fake(monkeypatch):
    loader = FakeLoader()
    monkeypatch.setattr(loaders, "load", loader)
    return loader


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("CustomerID,Total,When,Invoice\nc1,1.0,01/02/2024 10:00,o1\n")
    return path


def test_load_passes_every_option(fake, data_file, tmp_path):
    result = ok(run(["load", "purchases", str(data_file), "--format", "csv",
                     "--map", "customer_id=CustomerID", "--map", "order_value=Total",
                     "--map", "purchase_date=When", "--date-format", "%d/%m/%Y %H:%M",
                     "--timezone", "Europe/London", "--encoding", "cp1252", "--delimiter", ";",
                     "--max-rejected-ratio", "0.25"], db=tmp_path / "s.db"))
    call = fake.calls[0]
    assert call["kind"] == "purchases"
    assert call["source"] == str(data_file)
    assert call["fmt"] == "csv"
    assert call["mapping"] == {"customer_id": "CustomerID", "order_value": "Total", "purchase_date": "When"}
    assert call["date_format"] == "%d/%m/%Y %H:%M"
    assert call["timezone"] == "Europe/London"
    assert call["encoding"] == "cp1252" and call["delimiter"] == ";" and call["max_rejected_ratio"] == 0.25
    assert call["wait"] is True
    out = result.stdout
    assert "Loaded" in out and "read" in out and "accepted" in out and "duplicates" in out
    assert "customer_id: is empty" in out
    assert "caf rejected" in out
    assert (tmp_path / "s.db").exists()  # load creates the database


def test_load_defaults(fake, data_file, tmp_path):
    ok(run(["load", "online-retail", str(data_file)], db=tmp_path / "s.db"))
    call = fake.calls[0]
    assert call["fmt"] is None and call["mapping"] is None
    assert call["date_format"] is None and call["timezone"] is None
    assert call["encoding"] is None and call["delimiter"] is None and call["max_rejected_ratio"] is None
    ok(run(["load", "online-retail", str(data_file), "--no-wait"], db=tmp_path / "s.db"))
    assert fake.calls[1]["wait"] is False


def test_map_value_may_contain_equals_signs(fake, data_file, tmp_path):
    ok(run(["load", "purchases", str(data_file), "--map", "order_id=a=b"], db=tmp_path / "s.db"))
    assert fake.calls[0]["mapping"] == {"order_id": "a=b"}


def test_load_from_stdin(fake, tmp_path):
    ok(run(["load", "purchases", "-", "--format", "ndjson"], db=tmp_path / "s.db", input='{"a": 1}\n'))
    assert fake.calls[0]["source"] == "-"


def test_load_json_report(fake, data_file, tmp_path):
    data = json.loads(ok(run(["load", "purchases", str(data_file), "--json"], db=tmp_path / "s.db")).stdout)
    assert data["read"] == data["accepted"] + data["rejected"] + data["duplicates"] == 10
    assert data["rejected_by_reason"] == {"customer_id: is empty": 2}
    assert data["status"] == "completed"


def test_already_loaded_is_reported(monkeypatch, data_file, tmp_path):
    monkeypatch.setattr(loaders, "load", FakeLoader(status="already_loaded"))
    out = ok(run(["load", "purchases", str(data_file)], db=tmp_path / "s.db")).stdout
    assert "already loaded" in out and "nothing written" in out


def test_no_progress_when_not_a_terminal(fake, data_file, tmp_path):
    result = ok(run(["load", "purchases", str(data_file)], db=tmp_path / "s.db"))
    assert result.stderr == ""
    assert "\r" not in result.stdout


def test_progress_forced_goes_to_stderr(fake, data_file, tmp_path):
    result = ok(run(["load", "purchases", str(data_file), "--progress"], db=tmp_path / "s.db"))
    assert "rows/s" in result.stderr and "\r" in result.stderr
    assert "rows/s" not in result.stdout.split("\n", 1)[1]  # the summary is on stdout, the bar is not


def test_progress_line_is_throttled_and_reads_the_report(capsys):
    bar = Progress("purchases f.csv", enabled=True)
    report = loaders.LoadReport(kind="purchases", source="f.csv", read=1234, bytes_read=50, total_bytes=100)
    bar(report)
    bar(report)  # within 0.2 s: not shown again
    bar.close()
    err = capsys.readouterr().err
    assert err.count("1,234 rows read") == 1
    assert "50%" in err and "rows/s" in err
    silent = Progress("x", enabled=False)
    silent(report)
    silent.close()
    assert capsys.readouterr().err == ""


def test_load_errors_are_one_line(monkeypatch, data_file, tmp_path):
    db = tmp_path / "s.db"
    monkeypatch.setattr(loaders, "load", FakeLoader(raises=LoadError("orders.csv: missing column 'customer_id'")))
    assert_error(run(["load", "purchases", str(data_file)], db=db), 1, "missing column 'customer_id'")
    monkeypatch.setattr(loaders, "load", FakeLoader(raises=ValueError("unknown timezone 'Mars/Base'")))
    assert_error(run(["load", "purchases", str(data_file), "--timezone", "Mars/Base"], db=db), 1, "Mars/Base")


def test_load_usage_errors(fake, data_file, tmp_path):
    db = tmp_path / "s.db"
    assert_error(run(["load", "orders", str(data_file)], db=db), 2, "'KIND'", "'orders' is not one of")
    assert_error(run(["load", "purchases", str(tmp_path / "nope.csv")], db=db), 2, "does not exist")
    assert_error(run(["load", "purchases", str(tmp_path)], db=db), 2, "is a directory")
    assert_error(run(["load", "purchases", str(data_file), "--format", "xlsx"], db=db), 2, "'--format'")
    assert_error(run(["load", "purchases", str(data_file), "--map", "customer_id"], db=db), 2, "FIELD=COLUMN")
    assert_error(run(["load", "purchases", str(data_file), "--map", "=CustomerID"], db=db), 2, "FIELD=COLUMN")
    assert_error(run(["load", "purchases"], db=db), 2, "Missing argument 'FILE'")
    assert_error(run(["load"], db=db), 2, "Missing argument 'KIND'")
    assert fake.calls == []


# -- end to end, with the real loader ------------------------------------------------------------
def _table_rows(db, table):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4").fetchall()
    finally:
        conn.close()


def test_load_generic_csv_with_bad_rows_then_reload(tmp_path):
    db = tmp_path / "s.db"
    path = tmp_path / "orders.csv"
    path.write_text(
        "customer_id,order_value,purchase_date,order_id\n"
        "c1,10.5,2024-01-01T10:00:00Z,o1\n"
        "c2,-3,2024-01-02T10:00:00Z,o2\n"            # negative amount
        ",4,2024-01-02T10:00:00Z,o3\n"               # no customer
        "c3,7,not a date,o4\n"                       # bad date
        "c1,10.5,2024-01-01T10:00:00Z,o1\n"          # duplicate of the first
        "c4,2.25,2024-01-03T10:00:00Z,o5\n")
    data = json.loads(ok(run(["load", "purchases", str(path), "--json"], db=db)).stdout)
    assert data["read"] == 6
    assert data["read"] == data["accepted"] + data["rejected"] + data["duplicates"]
    assert data["accepted"] == 2 and data["rejected"] == 3 and data["duplicates"] == 1
    before = _table_rows(db, "purchases")
    second = json.loads(ok(run(["load", "purchases", str(path), "--json"], db=db)).stdout)
    assert second["status"] == "already_loaded"
    assert _table_rows(db, "purchases") == before
    rejected = json.loads(ok(run(["rejected", "--json"], db=db)).stdout)
    assert len(rejected) == 3
    stats = json.loads(ok(run(["stats", "--json"], db=db)).stdout)
    assert stats["last_load"]["source_name"].endswith("orders.csv")
    assert "Last load: " in ok(run(["stats"], db=db)).stdout


def test_load_ndjson_from_stdin_with_mapping_and_timezone(tmp_path):
    db = tmp_path / "s.db"
    lines = [{"who": "c1", "total": 5, "at": "2024-03-01 12:00:00", "id": "a"},
             {"who": "c2", "total": 6, "at": "2024-03-02 12:00:00", "id": "b"}]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    data = json.loads(ok(run(["load", "purchases", "-", "--format", "ndjson", "--json",
                              "--map", "customer_id=who", "--map", "order_value=total",
                              "--map", "purchase_date=at", "--map", "order_id=id",
                              "--timezone", "Europe/Paris"], db=db, input=text)).stdout)
    assert data["accepted"] == 2
    conn = sqlite3.connect(db)
    times = [t for (t,) in conn.execute("SELECT event_time FROM purchases_readable ORDER BY event_time")]
    conn.close()
    assert times[0].startswith("2024-03-01T11:00:00")  # 12:00 in Paris (UTC+1) is 11:00 UTC


def test_load_date_format_that_parses_nothing_is_an_error(tmp_path):
    """Issue 11 item 14: a date format matching none of the first batch's timestamps stops the
    load before anything is written (it used to exit 0 with every row rejected)."""
    db = tmp_path / "s.db"
    path = tmp_path / "orders.tsv"
    path.write_text("customer_id\torder_value\tpurchase_date\torder_id\nc1\t1\t2024-01-01\to1\n")
    assert_error(run(["load", "purchases", str(path), "--date-format", "%d/%m/%Y", "--json"], db=db), 1,
                 "'%d/%m/%Y' parses none of the 1 timestamps", "'2024-01-01'", "nothing was loaded")
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM loads").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM rejected_events").fetchone()[0] == 0
    conn.close()


def test_load_malformed_file_is_one_line_error_or_rejections(tmp_path):
    db = tmp_path / "s.db"
    path = tmp_path / "broken.json"
    path.write_text('[{"customer_id": "c1", "order_value": 1, "purchase_date": "2024-01-01", "order_id": "x"}, {oops')
    result = run(["load", "purchases", str(path), "--json"], db=db)
    if result.exit_code == 0:  # the loader kept what it could and rejected the rest
        data = json.loads(result.stdout)
        assert data["read"] == data["accepted"] + data["rejected"] + data["duplicates"]
        assert data["rejected"] >= 1
    else:
        assert_error(result, 1)


def test_load_unknown_timezone_is_an_error(tmp_path):
    db = tmp_path / "s.db"
    path = tmp_path / "orders.csv"
    path.write_text("customer_id,order_value,purchase_date,order_id\nc1,1,2024-01-01 00:00,o1\n")
    assert_error(run(["load", "purchases", str(path), "--timezone", "Mars/Olympus_Mons"], db=db), 1)


def test_load_gzip_online_retail_sample(tmp_path):
    db = tmp_path / "s.db"
    path = tmp_path / "retail.csv.gz"
    with gzip.open(path, "wt", newline="") as out:
        out.write("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
                  "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
                  "536365,71053,LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom\n"
                  "536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85,,United Kingdom\n"
                  "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom\n")
    data = json.loads(ok(run(["load", "online-retail", str(path), "--json"], db=db)).stdout)
    assert data["read"] == 4
    assert data["read"] == data["accepted"] + data["rejected"] + data["duplicates"]
    assert data["rejected"] >= 1  # the line without a customer
    features = json.loads(ok(run(["features", "17850", "--as-of", "2010-12-02", "--json"], db=db)).stdout)
    assert features["features"]["total_purchase_value"] == pytest.approx(6 * 2.55 + 6 * 3.39)


def _shared(name):
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared real data is not on this machine)")
    return path


@pytest.mark.parametrize("kind, name", [("rees46", "rees46_2019-10_head.csv.gz"),
                                        ("incidents", "incident_event_log_head.csv.gz")])
def test_load_real_heads_add_up_and_reload_changes_nothing(tmp_path, kind, name):
    db = tmp_path / "real.db"
    path = _shared(name)
    data = json.loads(ok(run(["load", kind, str(path), "--json"], db=db)).stdout)
    assert data["read"] > 0
    assert data["read"] == data["accepted"] + data["rejected"] + data["duplicates"]
    stats = json.loads(ok(run(["stats", "--json"], db=db)).stdout)
    again = json.loads(ok(run(["load", kind, str(path), "--json"], db=db)).stdout)
    assert again["status"] == "already_loaded"
    assert json.loads(ok(run(["stats", "--json"], db=db)).stdout)["tables"] == stats["tables"]


@pytest.mark.slow
def test_load_real_online_retail(tmp_path):
    db = tmp_path / "retail.db"
    path = _shared("online_retail.csv.gz")
    result = ok(run(["load", "online-retail", str(path)], db=db))
    assert "Loaded" in result.stdout and "rows/s" in result.stdout
    data = json.loads(ok(run(["stats", "--json"], db=db)).stdout)
    assert data["last_load"]["rows_read"] == 541_909
    last = data["last_load"]
    assert last["rows_read"] == last["rows_accepted"] + last["rows_rejected"] + last["rows_duplicate"]
    features = json.loads(ok(run(["features", "17850", "--as-of", "2011-12-10", "--json"], db=db)).stdout)
    assert features["features"]["total_purchase_value"] > 0
