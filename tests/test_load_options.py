"""Issue 11, item 14: loader input a real user has.

* a cp1252/Latin-1 CSV: rows are rejected for undecodable bytes only in the
  columns the load reads, and ``encoding=`` / ``--encoding`` reads the file;
* a semicolon-delimited CSV: the delimiter is sniffed (and reported), or
  given with ``delimiter=`` / ``--delimiter``; a header read as one column
  says so in the error;
* an invalid date format fails before anything is written, and so does one
  that parses none of the first batch's timestamps;
* ``max_rejected_ratio=`` / ``--max-rejected-ratio`` stops a load whose rows
  are mostly rejected: nothing written when it trips on the first batch,
  otherwise the committed batches stay and the load resumes.
"""

import json
import sqlite3

import pytest
from click.testing import CliRunner

from customer_activity_features import CustomerActivityFeatures
from store import loaders
from store.cli import cli
from store.errors import LoadError, RejectedRatioError
from tests.test_load_resume import retail_file
from tests.test_loaders import snapshot

HEADER = ["customer_id", "order_value", "purchase_date", "order_id", "note"]


def run(args, db):
    return CliRunner().invoke(cli, ["--db", str(db)] + list(args), prog_name="caf")


def one_line_error(result, *fragments):
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def counts(store):
    return {t: store.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("loads", "purchases", "rejected_events")}


# -- encodings ------------------------------------------------------------------------------
def cp1252_file(path):
    rows = [
        "customer_id,order_value,purchase_date,order_id,note",
        "c1,10.5,2024-01-01T10:00:00Z,o1,Caf\xe9 cr\xe8me",          # é è in a column the load does not read
        "c2,20,2024-01-02T10:00:00Z,o2,\u20ac 50",                   # the euro sign (0x80 in cp1252)
        "Ren\xe9e,5,2024-01-03T10:00:00Z,o3,plain",                  # é in the customer id: read
    ]
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode("cp1252"))
    return path


def test_bytes_in_unread_columns_do_not_reject_rows(tmp_path):
    path = cp1252_file(tmp_path / "export.csv")
    with CustomerActivityFeatures() as store:
        report = store.load("purchases", path)
        assert (report.read, report.accepted, report.rejected) == (3, 2, 1)
        assert report.rejected_by_reason == {"encoding: invalid UTF-8": 1}
        (payload,) = store.conn.execute("SELECT payload FROM rejected_events").fetchone()
        assert json.loads(payload)["customer_id"] == "Ren\\xe9e"  # the byte shown, storable
    with CustomerActivityFeatures() as store:
        report = store.load("purchases", path, encoding="cp1252")
        assert (report.read, report.accepted, report.rejected) == (3, 3, 0)
        assert report.encoding == "cp1252"
        ids = [c for (c,) in store.conn.execute("SELECT customer_id FROM purchases ORDER BY event_id")]
        assert ids == ["c1", "c2", "Ren\xe9e"]


def test_online_retail_with_latin1_descriptions(tmp_path):
    lines = ["InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"]
    for i in range(6):
        lines.append(f"53636{i},85123A,CR\xc8ME BR\xdbL\xc9E {i},6,2010-12-01 08:26:00,2.55,1785{i}.0,France")
    path = tmp_path / "retail.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with CustomerActivityFeatures() as store:
        report = store.load("online-retail", path)  # UTF-8 by default: Description is not read
        assert (report.read, report.accepted, report.rejected) == (6, 6, 0)


def test_encoding_option_checks_and_identity(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("customer_id,order_value,purchase_date,order_id\nc1,1,2024-01-01T00:00:00Z,o1\n")
    with CustomerActivityFeatures() as store:
        for bad in ("klingon", "base64", "", 5):
            with pytest.raises(LoadError, match="encoding"):
                store.load("purchases", path, encoding=bad)
        assert counts(store)["loads"] == 0
        assert store.load("purchases", path).status == "completed"
        # UTF-8 spelled out is the default: the same load, already done
        assert store.load("purchases", path, encoding="UTF8").status == "already_loaded"
        # another encoding is another reading of the bytes: a new load (its rows duplicates)
        again = store.load("purchases", path, encoding="latin-1")
        assert again.status == "completed" and again.duplicates == 1


def test_cli_encoding(tmp_path):
    path = cp1252_file(tmp_path / "export.csv")
    db = tmp_path / "s.db"
    result = run(["load", "purchases", str(path)], db)
    assert result.exit_code == 0, result.output
    assert "encoding: invalid UTF-8" in result.stdout and "--encoding" in result.stdout
    result = run(["load", "purchases", str(path), "--encoding", "cp1252"], db)
    assert result.exit_code == 0, result.output
    assert "Read as encoding cp1252" in result.stdout
    one_line_error(run(["load", "purchases", str(path), "--encoding", "klingon"], db), "unknown encoding")


# -- delimiters -----------------------------------------------------------------------------
SEMICOLON = ("customer_id;order_value;purchase_date;order_id\n"
             "c1;10.5;2024-01-01T10:00:00Z;o1\n"
             "c2;20;2024-01-02T10:00:00Z;o2\n"
             "\"c;3\";5;2024-01-03T10:00:00Z;o3\n")


def test_semicolon_csv_is_sniffed_and_reported(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(SEMICOLON)
    with CustomerActivityFeatures() as store:
        report = store.load("purchases", path)
        assert (report.read, report.accepted) == (3, 3)
        assert report.delimiter == ";" and report.delimiter_sniffed
        assert report.as_dict()["delimiter"] == ";"
        ids = sorted(c for (c,) in store.conn.execute("SELECT customer_id FROM purchases"))
        assert ids == ["c1", "c2", "c;3"]
        (load,) = loaders.list_loads(store)
        assert load["options"]["delimiter"] == ";"
        # given explicitly: the same options, so the same load
        assert store.load("purchases", path, delimiter=";").status == "already_loaded"


def test_comma_files_keep_their_identity(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("customer_id,order_value,purchase_date,order_id\nc1,1,2024-01-01T00:00:00Z,o1\n")
    with CustomerActivityFeatures() as store:
        report = store.load("purchases", path)
        assert report.delimiter == "," and report.delimiter_sniffed
        (load,) = loaders.list_loads(store)
        assert set(load["options"]) == {"format", "mapping", "date_format", "timezone"}  # as before
        assert store.load("purchases", path, delimiter=",").status == "already_loaded"


def test_delimiter_option(tmp_path):
    pipes = tmp_path / "p.txt"
    pipes.write_text(SEMICOLON.replace(";", "|"))
    colons = tmp_path / "c.csv"
    colons.write_text(SEMICOLON.replace(";", ":").replace("T10:00:00Z", ""))
    with CustomerActivityFeatures() as store:
        assert store.load("purchases", pipes, fmt="csv").accepted == 3  # sniffed
        with pytest.raises(LoadError, match="split on ',' .*into one column.*--delimiter"):
            store.load("purchases", colons)  # ':' is not sniffed
        report = store.load("purchases", colons, delimiter=":")
        assert (report.read, report.duplicates) == (3, 3)  # the same orders as the pipe file
        tabs = tmp_path / "t.csv"
        tabs.write_text(SEMICOLON.replace(";", "\t"))
        report = store.load("purchases", tabs, delimiter="\\t")
        assert report.read == 3 and report.duplicates == 3 and report.delimiter == "\t"
        for bad in ("", ";;", '"', "\n", 7):
            with pytest.raises(LoadError, match="delimiter"):
                store.load("purchases", pipes, delimiter=bad)
        ndjson = tmp_path / "p.ndjson"
        ndjson.write_text('{"customer_id": "c1"}\n')
        with pytest.raises(LoadError, match="delimiter applies to csv and tsv"):
            store.load("purchases", ndjson, delimiter=";")


def test_cli_delimiter(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(SEMICOLON)
    db = tmp_path / "s.db"
    result = run(["load", "purchases", str(path)], db)
    assert result.exit_code == 0, result.output
    assert "Read as delimiter ';' (detected)" in result.stdout
    result = run(["load", "purchases", str(path), "--delimiter", "|", "--json"], db)
    one_line_error(result, "no column 'customer_id'", "split on '|' (used) into one column", "--delimiter")


# -- date formats ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["%Q", "%d/%m/%Y %", "%G", ""])
def test_invalid_date_format_fails_before_loading(tmp_path, fmt):
    path = tmp_path / "p.csv"
    path.write_text("customer_id,order_value,purchase_date,order_id\nc1,1,01/02/2024,o1\n")
    with CustomerActivityFeatures(tmp_path / "s.db") as store:
        with pytest.raises(LoadError, match="date.format"):
            store.load("purchases", path, date_format=fmt)
        assert counts(store) == {"loads": 0, "purchases": 0, "rejected_events": 0}
    if fmt:
        one_line_error(run(["load", "purchases", str(path), "--date-format", fmt], tmp_path / "s.db"),
                       "invalid date format")


def test_date_format_that_parses_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "BATCH_ROWS", 50)
    rows = [f"c{i},1,2024-01-{1 + i % 28:02d},o{i}" for i in range(120)]
    path = tmp_path / "p.csv"
    path.write_text("customer_id,order_value,purchase_date,order_id\n" + "\n".join(rows) + "\n")
    with CustomerActivityFeatures() as store:
        with pytest.raises(LoadError, match=r"'%d/%m/%Y' parses none of the 50 timestamps of the first 50 rows "
                                            r"\(the first is '2024-01-01'\); nothing was loaded"):
            store.load("purchases", path, date_format="%d/%m/%Y")
        assert counts(store) == {"loads": 0, "purchases": 0, "rejected_events": 0}
        report = store.load("purchases", path, date_format="%Y-%m-%d")
        assert report.accepted == 120
    # a format that parses some timestamps is fine: the others are rejected rows as before
    mixed = tmp_path / "m.csv"
    mixed.write_text("customer_id,order_value,purchase_date,order_id\nc1,1,01/02/2024,o1\nc2,1,2024-01-02,o2\n")
    with CustomerActivityFeatures() as store:
        report = store.load("purchases", mixed, date_format="%d/%m/%Y")
        assert (report.accepted, report.rejected) == (1, 1)


# -- max_rejected_ratio ---------------------------------------------------------------------
def purchases_csv(path, good, bad):
    rows = [f"c{i % 7},{i + 1},2024-01-{1 + i % 28:02d}T00:00:00Z,o{i}" for i in range(good)]
    rows += [f",{i},2024-01-01T00:00:00Z,x{i}" for i in range(bad)]  # no customer: rejected
    path.write_text("customer_id,order_value,purchase_date,order_id\n" + "\n".join(rows) + "\n")
    return path


def test_wrong_mapping_stops_at_the_first_batch_with_nothing_written(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "BATCH_ROWS", 100)
    path = purchases_csv(tmp_path / "p.csv", 1_000, 0)
    with CustomerActivityFeatures(tmp_path / "s.db") as store:
        with pytest.raises(RejectedRatioError) as info:
            store.load("purchases", path, mapping={"order_value": "order_id"}, max_rejected_ratio=0.5)
        assert (info.value.read, info.value.rejected) == (100, 100)
        message = str(info.value)
        assert "100 of 100 rows read (100.0%) were rejected" in message
        assert "order_value: not a number" in message and "nothing was written" in message
        assert counts(store) == {"loads": 0, "purchases": 0, "rejected_events": 0}
    result = run(["load", "purchases", str(path), "--map", "order_value=order_id",
                  "--max-rejected-ratio", "0.5"], tmp_path / "s.db")
    one_line_error(result, "were rejected, more than max_rejected_ratio 0.5 allows", "nothing was written")
    assert run(["load", "purchases", str(path), "--max-rejected-ratio", "1.5"], tmp_path / "s.db").exit_code == 2


def test_a_load_stopped_later_keeps_its_batches_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "BATCH_ROWS", 100)
    path = purchases_csv(tmp_path / "p.csv", 300, 700)
    with CustomerActivityFeatures(tmp_path / "ref.db") as reference:
        expected_report = reference.load("purchases", path)
        expected = snapshot(reference)
    with CustomerActivityFeatures(tmp_path / "s.db") as store:
        with pytest.raises(RejectedRatioError, match="the 300 rows committed before stay") as info:
            store.load("purchases", path, max_rejected_ratio=0.2)
        assert (info.value.read, info.value.rejected) == (400, 100)  # 25% at the fourth batch
        (load,) = loaders.list_loads(store)
        assert (load["status"], load["rows_read"], load["rows_accepted"]) == ("running", 300, 300)
        assert counts(store) == {"loads": 1, "purchases": 300, "rejected_events": 0}
        report = store.load("purchases", path, max_rejected_ratio=0.75)  # a higher limit: resumes
        assert report.resumed and report.status == "completed"
        assert (report.read, report.accepted, report.rejected) == (expected_report.read, 300, 700)
        assert snapshot(store) == expected


def test_preset_ratio_counts_rejected_invoices(tmp_path, monkeypatch):
    """Online Retail lines all parse, but the invoices are rejected at aggregation (a negative
    total on a non-cancellation invoice): the final check stops the load, its staged rows stay,
    and the rerun only aggregates."""
    lines = ["InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"]
    lines += [f"5{i:05d},X,Y,-{1 + i % 5},2011-01-01 10:00:00,2.5,1785{i % 9}.0,UK" for i in range(40)]
    lines += [f"6{i:05d},X,Y,3,2011-01-01 10:00:00,2.5,1785{i % 9}.0,UK" for i in range(10)]
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n")
    with CustomerActivityFeatures(tmp_path / "ref.db") as reference:
        expected_report = reference.load("online-retail", path)
        expected = snapshot(reference)
    assert expected_report.rejected == 40
    with CustomerActivityFeatures(tmp_path / "s.db") as store:
        with pytest.raises(RejectedRatioError, match="40 of 50 rows read .80.0%.*negative total"):
            store.load("online-retail", path, max_rejected_ratio=0.5)
        (load,) = loaders.list_loads(store)
        assert (load["status"], load["rows_read"], load["rows_pending"]) == ("running", 50, 50)
        report = store.load("online-retail", path)
        assert report.resumed and (report.accepted, report.rejected) == (10, 40)
        assert snapshot(store) == expected


def test_ratio_option_checks(tmp_path):
    path = purchases_csv(tmp_path / "p.csv", 3, 1)
    with CustomerActivityFeatures() as store:
        for bad in (-0.1, 1.5, float("nan"), "0.5", True):
            with pytest.raises(LoadError, match="max_rejected_ratio"):
                store.load("purchases", path, max_rejected_ratio=bad)
        assert counts(store)["loads"] == 0
        report = store.load("purchases", path, max_rejected_ratio=0.25)  # 1 of 4 is not more than 0.25
        assert (report.accepted, report.rejected) == (3, 1)


def test_real_files_sniff_a_comma(tmp_path):
    from tests.test_cli_load import SHARED
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is absent")
    for name in ("online_retail.csv.gz", "rees46_2019-10_head.csv.gz", "incident_event_log_head.csv.gz"):
        path = SHARED / name
        if not path.exists():
            continue
        from store import formats
        with open(path, "rb") as raw:
            formats.check_gzip(raw, name)
        import gzip
        with gzip.open(path, "rb") as f:
            head = formats.decoded_head(f.read(64 << 10))
        assert formats.sniff_delimiter(head) == ",", name


def test_retail_sample_loads_as_before(tmp_path):
    """The sniffing, encoding and ratio machinery changes nothing for an ordinary file."""
    path = retail_file(tmp_path / "r.csv", 2_000)
    with CustomerActivityFeatures() as store:
        report = store.load("online-retail", path, max_rejected_ratio=1)
        assert report.delimiter == "," and report.read == report.accepted + report.rejected + report.duplicates
        conn = store.conn
        assert conn.execute("SELECT COUNT(*) FROM rejected_events").fetchone()[0] == report.rejected
    assert sqlite3.sqlite_version
