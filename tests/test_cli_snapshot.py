"""`caf materialize`, `caf refresh`, `caf export` (features and rfm) and
`caf catalog`: wired to the store's methods, with their bad input."""

import csv
import json
import sqlite3

import pytest
from click.testing import CliRunner

from customer_activity_features import CustomerActivityFeatures
from store.cli import cli

AS_OF = "2026-01-01T00:00:00Z"


def run(args, db=None):
    full = (["--db", str(db)] if db is not None else []) + list(args)
    return CliRunner().invoke(cli, full, prog_name="caf")


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


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    path = tmp_path_factory.mktemp("snap") / "shop.db"
    ok(run(["demo", "--customers", "50"], db=path))
    return path


def count(db, sql):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


# -- materialize / refresh ----------------------------------------------------------------
def test_materialize_writes_one_row_per_customer(tmp_path):
    db = tmp_path / "m.db"
    ok(run(["demo", "--customers", "30"], db=db))
    record = json.loads(ok(run(["materialize", "--as-of", AS_OF, "--json"], db=db)).stdout)
    assert record["rows"] == 30 == count(db, "SELECT count(*) FROM customer_features")
    assert record["as_of"] == AS_OF
    text = ok(run(["materialize", "--as-of", AS_OF, "--windows", "30,90"], db=db)).stdout
    assert "Materialized customer_features: 30 customers" in text
    conn = sqlite3.connect(db)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(customer_features)")]
    conn.close()
    assert "purchase_count_30d" in columns and "purchase_count_90d" in columns
    assert "purchase_count_7d" not in columns
    stats = json.loads(ok(run(["stats", "--json"], db=db)).stdout)
    assert stats["last_materialization"]["as_of"] == AS_OF
    assert "Last materialisation: as of 2026-01-01" in ok(run(["stats"], db=db)).stdout


def test_materialize_families_and_workers(tmp_path):
    db = tmp_path / "m.db"
    ok(run(["demo", "--customers", "30"], db=db))
    ok(run(["materialize", "--as-of", AS_OF], db=db))
    conn = sqlite3.connect(db)
    full = conn.execute("SELECT customer_id, purchase_count_30d, primary_device FROM customer_features "
                        "ORDER BY 1").fetchall()
    conn.close()
    record = json.loads(ok(run(["materialize", "--as-of", AS_OF, "--workers", "2", "--family", "purchase_features",
                                "--family", "primary_device", "--json"], db=db)).stdout)
    assert record["rows"] == 30
    conn = sqlite3.connect(db)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(customer_features)")]
    again = conn.execute("SELECT customer_id, purchase_count_30d, primary_device FROM customer_features "
                         "ORDER BY 1").fetchall()
    conn.close()
    assert again == full and "session_count" not in columns and record["columns"] == len(columns)


def test_materialize_bad_input(shop):
    for bad in ("0", "-7", "7,x", ",", "seven"):
        assert_error(run(["materialize", "--windows", bad], db=shop), 2, "'--windows'")
    assert_error(run(["materialize", "--as-of", "31/12/2025"], db=shop), 2, "'--as-of'")
    assert_error(run(["materialize", "--workers", "0"], db=shop), 2, "'--workers'")
    assert_error(run(["materialize", "--family", "nope"], db=shop), 1, "unknown feature family 'nope'")


def test_refresh_brings_the_snapshot_forward(tmp_path):
    db = tmp_path / "r.db"
    ok(run(["demo", "--customers", "30"], db=db))
    ok(run(["materialize", "--as-of", AS_OF], db=db))
    with CustomerActivityFeatures(db) as store:
        store.add_purchase("C0000001", 99.0, "2026-01-01T12:00:00Z", order_id="late-1")
    record = json.loads(ok(run(["refresh", "--as-of", "2026-01-02T00:00:00Z", "--json"], db=db)).stdout)
    assert record["as_of"] == "2026-01-02T00:00:00Z"
    assert record["rows"] == 30
    assert 1 <= record["recomputed"] <= 30
    assert "Refreshed customer_features" in ok(run(["refresh", "--as-of", "2026-01-03"], db=db)).stdout
    assert_error(run(["refresh", "--as-of", "soon"], db=db), 2, "'--as-of'")


# -- export ---------------------------------------------------------------------------------
def test_export_features_csv_and_ndjson(shop, tmp_path):
    out = tmp_path / "features.csv"
    text = ok(run(["export", str(out), "--as-of", AS_OF], db=shop)).stdout
    assert "Wrote 50 rows" in text and "(csv)" in text
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 50 and "customer_id" in rows[0]
    nd = tmp_path / "features.ndjson"
    ok(run(["export", "features", str(nd), "--as-of", AS_OF], db=shop))  # the explicit spelling
    lines = [json.loads(line) for line in nd.read_text().splitlines()]
    assert len(lines) == 50 and {r["customer_id"] for r in lines} == {r["customer_id"] for r in rows}
    forced = tmp_path / "features.txt"
    ok(run(["export", "--format", "ndjson", str(forced), "--as-of", AS_OF], db=shop))  # option first
    assert json.loads(forced.read_text().splitlines()[0])["customer_id"]


def test_export_to_a_file_named_rfm_needs_the_explicit_form(shop, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ok(run(["export", "features", "rfm", "--format", "csv", "--as-of", AS_OF], db=shop))
    header = (tmp_path / "rfm").read_text().splitlines()[0]
    assert "customer_id" in header and "frequency" not in header.split(",")  # features, not the RFM summary


def test_export_bad_input(shop, tmp_path):
    assert_error(run(["export", str(tmp_path / "x.csv"), "--format", "xlsx"], db=shop), 2, "'--format'")
    assert_error(run(["export", str(tmp_path / "no" / "dir" / "x.csv"), "--as-of", AS_OF], db=shop), 1)
    assert_error(run(["export", str(tmp_path / "x.csv"), "--as-of", "tomorrow"], db=shop), 2, "'--as-of'")
    assert_error(run(["export", "features"], db=shop), 2, "Missing argument 'FILE'")


def test_export_rfm(shop, tmp_path):
    out = tmp_path / "rfm.csv"
    text = ok(run(["export", "rfm", str(out)], db=shop)).stdout
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert f"Wrote {len(rows)} customers" in text
    assert list(rows[0]) == ["customer_id", "frequency", "recency", "T", "monetary_value"]
    with CustomerActivityFeatures(shop) as store:
        expected = list(store.rfm_summary())
    assert [r["customer_id"] for r in rows] == [e.customer_id for e in expected]
    assert [float(r["T"]) for r in rows] == pytest.approx([e.T for e in expected])
    weekly = tmp_path / "rfm.ndjson"
    ok(run(["export", "rfm", str(weekly), "--freq", "W", "--observation-end", "2025-12-01",
            "--freq-multiplier", "2", "--include-first"], db=shop))
    with CustomerActivityFeatures(shop) as store:
        expected = list(store.rfm_summary(_utc("2025-12-01"), freq="W",
                                          freq_multiplier=2, include_first=True))
    got = [json.loads(line) for line in weekly.read_text().splitlines()]
    assert [g["customer_id"] for g in got] == [e.customer_id for e in expected]
    assert [g["recency"] for g in got] == pytest.approx([e.recency for e in expected])


def _utc(text):
    from store import timeutil
    return timeutil.parse_datetime(text)


def test_export_rfm_on_an_empty_store_writes_a_header(tmp_path):
    db = tmp_path / "empty.db"
    ok(run(["init"], db=db))
    out = tmp_path / "rfm.csv"
    assert "Wrote 0 customers" in ok(run(["export", "rfm", str(out)], db=db)).stdout
    assert out.read_text().strip() == "customer_id,frequency,recency,T,monetary_value"


def test_export_rfm_bad_input_leaves_no_file(shop, tmp_path):
    out = tmp_path / "rfm.csv"
    assert_error(run(["export", "rfm", str(out), "--freq", "M"], db=shop), 2, "'--freq'")
    assert_error(run(["export", "rfm", str(out), "--freq-multiplier", "0"], db=shop), 2, "'--freq-multiplier'")
    assert_error(run(["export", "rfm", str(out), "--observation-end", "end"], db=shop), 2, "'--observation-end'")
    assert not out.exists()
    assert not list(tmp_path.glob("*.partial"))


# -- catalog --------------------------------------------------------------------------------
def test_catalog_list_one_and_json(shop):
    with CustomerActivityFeatures(shop) as store:
        records = store.catalog()
    text = ok(run(["catalog"], db=shop)).stdout
    for record in records:
        assert record["name"] in text
    assert f"{len(records)} features" in text
    name = records[0]["name"]
    one = ok(run(["catalog", name], db=shop)).stdout
    assert name in one and "meaning" in one
    data = json.loads(ok(run(["catalog", "--json"], db=shop)).stdout)
    assert [r["name"] for r in data] == [r["name"] for r in records]
    assert json.loads(ok(run(["catalog", name, "--json"], db=shop)).stdout)[0]["name"] == name


def test_catalog_unknown_feature(shop):
    assert_error(run(["catalog", "no_such_feature"], db=shop), 1, "no feature named 'no_such_feature'")


def test_a_failed_export_leaves_no_file(shop, tmp_path, monkeypatch):
    def broken_export(self, path, *, format="csv", as_of=None):
        with open(path, "w") as out:
            out.write("customer_id\nhalf")
        raise ValueError("disk trouble")

    monkeypatch.setattr(CustomerActivityFeatures, "export", broken_export, raising=False)
    out = tmp_path / "features.csv"
    out.write_text("the previous export\n")
    assert_error(run(["export", str(out)], db=shop), 1, "disk trouble")
    assert out.read_text() == "the previous export\n"
    assert not list(tmp_path.glob("*.partial"))


# -- the store's timezone and read-only files ---------------------------------------------------
def test_store_timezone_sets_the_rfm_periods(tmp_path, monkeypatch):
    db = tmp_path / "tz.db"
    with CustomerActivityFeatures(db) as store:
        store.add_purchase("c1", 10.0, "2025-01-01T12:00:00Z", order_id="o1")
        store.add_purchase("c1", 20.0, "2025-01-02T02:00:00Z", order_id="o2")  # 21:00 on Jan 1st in New York
    utc, ny = tmp_path / "utc.csv", tmp_path / "ny.csv"
    ok(run(["export", "rfm", str(utc)], db=db))
    ok(run(["--store-timezone", "America/New_York", "export", "rfm", str(ny)], db=db))
    monkeypatch.setenv("CAF_TIMEZONE", "America/New_York")
    env_ny = tmp_path / "env_ny.csv"
    ok(run(["export", "rfm", str(env_ny)], db=db))

    def frequency(path):
        with open(path, newline="") as f:
            return float(next(csv.DictReader(f))["frequency"])

    assert frequency(utc) == 1.0  # two days
    assert frequency(ny) == frequency(env_ny) == 0.0  # one day


def test_unknown_store_timezone_is_a_usage_error(shop):
    assert_error(run(["--store-timezone", "Mars/Olympus_Mons", "stats"], db=shop), 2, "unknown timezone")


def test_reading_commands_open_an_unwritable_file_read_only(shop, monkeypatch, tmp_path):
    # The real case (an unprivileged user, a 0555 directory) is in test_reliability_schemas.py.
    import store.db as db_module

    opened = []
    real_init = CustomerActivityFeatures.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        opened.append(self.read_only)

    monkeypatch.setattr(db_module, "writable", lambda path: False)
    monkeypatch.setattr(CustomerActivityFeatures, "__init__", spy)
    ok(run(["stats"], db=shop))
    ok(run(["features", "C0000000", "--as-of", AS_OF], db=shop))
    ok(run(["rejected"], db=shop))
    assert opened == [True, True, True]


def test_export_rfm_counts_zero_value_purchases_unless_excluded(tmp_path):
    """As lifetimes (issue 11, item 13): zero-value purchases count by default;
    --exclude-zero-values leaves them out."""
    db = tmp_path / "zeros.db"
    with CustomerActivityFeatures(str(db)) as store:
        store.add_purchase("a", 10.0, "2024-01-01T10:00:00Z", order_id="o1")
        store.add_purchase("a", 0.0, "2024-01-03T10:00:00Z", order_id="o2")
        store.add_purchase("z", 0.0, "2024-01-02T10:00:00Z", order_id="o3")

    def rows(*flags):
        out = tmp_path / "rfm.csv"
        ok(run(["export", "rfm", str(out), "--observation-end", "2024-01-05T00:00:00Z", *flags], db=db))
        with open(out, newline="") as f:
            return {r["customer_id"]: float(r["frequency"]) for r in csv.DictReader(f)}

    assert rows() == rows("--include-zero-values") == {"a": 1.0, "z": 0.0}
    assert rows("--exclude-zero-values") == {"a": 0.0}
