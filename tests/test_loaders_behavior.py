"""store.loaders, issue 5 kinds on small generated files: `interactions`, `attributions`,
the session extras (session_start, session_end, page_views, browser, referrer, channel)
and the customers' created_at. Counts, rejections, idempotence, resume, the CLI."""

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from customer_activity_features import CustomerActivityFeatures
from store import loaders
from store.cli import cli
from store.errors import LoadError


@pytest.fixture
def store():
    with CustomerActivityFeatures() as s:
        yield s


def us(text, tz=timezone.utc):
    """ISO text (naive = tz) -> microseconds since the epoch."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return (dt - datetime(1970, 1, 1, tzinfo=timezone.utc)) // __import__("datetime").timedelta(microseconds=1)


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def rows(store, sql):
    return list(store.conn.execute(sql))


def rejections(store, load_id):
    return rows(store, f"SELECT kind, reason, source_row, payload FROM rejected_events "
                       f"WHERE load_id = {int(load_id)} ORDER BY source_row")


def balanced(report):
    return report.read == report.accepted + report.rejected + report.duplicates


def snapshot(store):
    return {t: sorted(rows(store, f"SELECT * FROM {t}"), key=repr)
            for t in ("interactions", "purchase_attributions", "sessions", "customers")} | {
        "rejected": sorted(rows(store, "SELECT kind, reason, source_row, payload FROM rejected_events"), key=repr)}


def without_times(snap):
    """customers.updated_at is the load's clock: left out of comparisons between stores."""
    snap = dict(snap)
    snap["customers"] = [r[:3] + r[4:] for r in snap["customers"]]
    return snap


# ----------------------------------------------------------------------------- interactions
I_HEADER = ("customer_id", "event_type", "event_date", "session_id", "page_type", "product_id", "category",
            "search_query", "view_duration_seconds", "device_type", "event_id")
I_ROWS = [
    ("c1", "page_view", "2024-01-01T10:00:00", "s1", "home", "", "", "", "12.5", "mobile", "e1"),
    ("c1", " Search ", "2024-01-01T10:01:00Z", "s1", "search", "", "", "red shoes", "", "mobile", "e2"),
    ("17850.0", "product_view", "2024-01-01 10:02:00+01:00", "s2", "product", "p9", "shoes", "", "3", "", "e3"),
    ("c2", "add_to_cart", "2024-01-02T08:00:00", "", "", "p9", "", "", "", "", ""),   # id generated
    ("c2", "teleport", "2024-01-02T08:00:00", "s3", "", "", "", "", "", "", "e5"),     # bad type
    ("c2", "page_view", "2024-01-02T08:00:00", "s3", "", "", "", "", "-1", "", "e6"),  # negative duration
    ("c2", "page_view", "", "s3", "", "", "", "", "", "", "e7"),                       # no time
    ("", "page_view", "2024-01-02T08:00:00", "s3", "", "", "", "", "", "", "e8"),      # no customer
    ("c2", "page_view", "yesterday", "s3", "", "", "", "", "", "", "e9"),              # bad time
    ("c2", "page_view", "2024-01-02T08:00:00", "s3", "", "", "", "", "abc", "", "e10"),  # not a number
    ("c1", "page_view", "2024-01-01T10:00:00", "s1", "home", "", "", "", "12.5", "mobile", "e1"),  # duplicate
]


def test_interactions_csv(store, tmp_path):
    path = write_csv(tmp_path / "interactions.csv", I_HEADER, I_ROWS)
    report = loaders.load(store, "interactions", path)
    assert (report.read, report.accepted, report.rejected, report.duplicates) == (11, 4, 6, 1)
    assert balanced(report) and report.tables == {"interactions": 4}
    assert report.rejected_by_reason == {
        "event_type: must be one of page_view, product_view, category_view, search, add_to_cart, "
        "remove_from_cart, checkout, purchase, got 'teleport'": 1,
        "view_duration_seconds: is negative": 1,
        "event_date: is missing": 1,
        "customer_id: is missing": 1,
        "event_date: unparseable date": 1,
        "view_duration_seconds: not a number": 1,
    }
    stored = rows(store, "SELECT customer_id, event_time_us, event_id, session_id, event_type, page_type, "
                         "product_id, category, search_query, view_duration_seconds, device_type "
                         "FROM interactions ORDER BY event_time_us, event_id")
    generated = f"{report.sha256[:16]}-4"
    assert stored == [
        ("17850", us("2024-01-01T09:02:00+00:00"), "e3", "s2", "product_view", "product", "p9", "shoes", None,
         3.0, None),
        ("c1", us("2024-01-01T10:00:00"), "e1", "s1", "page_view", "home", None, None, None, 12.5, "mobile"),
        ("c1", us("2024-01-01T10:01:00"), "e2", "s1", "search", "search", None, None, "red shoes", None, "mobile"),
        ("c2", us("2024-01-02T08:00:00"), generated, None, "add_to_cart", None, "p9", None, None, None, None),
    ]
    rej = rejections(store, report.load_id)
    assert [(k, n) for k, _, n, _ in rej] == [("interaction", n) for n in (5, 6, 7, 8, 9, 10)]
    assert json.loads(rej[0][3])["event_type"] == "teleport"  # the row as {column: value}

    before = snapshot(store)
    again = loaders.load(store, "interactions", path)
    assert again.status == "already_loaded" and again.previous["accepted"] == 4
    assert snapshot(store) == before


def test_interactions_ndjson_with_mapping_duplicates_a_csv_load(store, tmp_path):
    """The same events in another file and format: every valid row is a duplicate, nothing changes."""
    write = write_csv(tmp_path / "i.csv", I_HEADER, I_ROWS[:4])
    first = loaders.load(store, "interactions", write)
    assert first.accepted == 3 + 1
    before = rows(store, "SELECT * FROM interactions ORDER BY event_id")
    lines = []
    for r in I_ROWS[:3]:
        rec = dict(zip(I_HEADER, r))
        rec["type"] = rec.pop("event_type")
        rec["view_duration_seconds"] = float(rec["view_duration_seconds"]) if rec["view_duration_seconds"] else None
        lines.append(json.dumps(rec))
    path = tmp_path / "i.ndjson"
    path.write_text("\n".join(lines) + "\n")
    report = loaders.load(store, "interactions", path, mapping={"event_type": "type"})
    assert (report.read, report.accepted, report.rejected, report.duplicates) == (3, 0, 0, 3)
    assert rows(store, "SELECT * FROM interactions ORDER BY event_id") == before


def test_interactions_timezone_and_date_format(store, tmp_path):
    path = write_csv(tmp_path / "i.csv", ("customer_id", "event_type", "when"),
                     [("c1", "checkout", "01/07/2024 10:00"), ("c1", "purchase", "2024-07-01 10:00")])
    report = loaders.load(store, "interactions", path, mapping={"event_date": "when"},
                          date_format="%d/%m/%Y %H:%M", timezone="Europe/London")
    assert (report.accepted, report.rejected) == (1, 1)
    assert report.rejected_by_reason == {"event_date: unparseable date (expected format %d/%m/%Y %H:%M)": 1}
    assert rows(store, "SELECT event_time_us FROM interactions") == [(us("2024-07-01T09:00:00"),)]


def test_interactions_missing_columns(store, tmp_path):
    path = write_csv(tmp_path / "i.csv", ("customer_id", "event_date"), [("c1", "2024-01-01")])
    with pytest.raises(LoadError, match="no column 'event_type' for event_type"):
        loaders.load(store, "interactions", path)


# ----------------------------------------------------------------------------- attributions
A_HEADER = ("customer_id", "order_id", "source", "medium", "attribution_date")
A_ROWS = [
    ("c1", "o1", "google", "cpc", "2024-01-02 10:00"),
    ("c1", "o2", "newsletter", "", "2024-01-03T10:00:00Z"),
    ("c2", "", "google", "", "2024-01-02"),        # no order id: never generated
    ("c2", "o3", " ", "", "2024-01-02"),           # no source
    ("c2", "o4", "mail", "", ""),                  # no time
    ("c2", "o5", "mail", "", "not a date"),        # bad time
    ("c1", "o1", "bing", "cpc", "2024-01-05"),     # an order already attributed: duplicate
]


def test_attributions_csv(store, tmp_path):
    path = write_csv(tmp_path / "attributions.csv", A_HEADER, A_ROWS)
    report = loaders.load(store, "attributions", path, timezone="America/New_York")
    assert (report.read, report.accepted, report.rejected, report.duplicates) == (7, 2, 4, 1)
    assert balanced(report) and report.tables == {"purchase_attributions": 2}
    assert report.rejected_by_reason == {"order_id: is missing": 1, "source: is missing": 1,
                                         "attribution_date: is missing": 1,
                                         "attribution_date: unparseable date": 1}
    ny = datetime.fromisoformat("2024-01-02T10:00:00-05:00")
    assert rows(store, "SELECT customer_id, event_time_us, event_id, source, medium FROM purchase_attributions "
                       "ORDER BY event_id") == [
        ("c1", us(ny.isoformat()), "o1", "google", "cpc"),
        ("c1", us("2024-01-03T10:00:00"), "o2", "newsletter", None),
    ]
    assert {k for k, *_ in rejections(store, report.load_id)} == {"attribution"}
    before = snapshot(store)
    assert loaders.load(store, "attributions", path, timezone="America/New_York").status == "already_loaded"
    assert snapshot(store) == before
    # the same bytes with other options are a new load: every valid row is now a duplicate
    other = loaders.load(store, "attributions", path)
    assert (other.accepted, other.rejected, other.duplicates) == (0, 4, 3)
    assert snapshot(store)["purchase_attributions"] == before["purchase_attributions"]


def test_attributions_json_array(store, tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([
        {"customer_id": 17850, "order_id": 536365, "source": "google", "attribution_date": "2024-01-01T00:00:00Z"},
        {"customer_id": "c1", "order_id": "o9", "source": 5, "medium": "web", "attribution_date": "2024-01-01"},
        {"customer_id": "c1", "order_id": "o10", "source": "x", "medium": True, "attribution_date": "2024-01-01"},
        ["not", "an", "object"],
    ]))
    report = loaders.load(store, "attributions", path)
    assert (report.read, report.accepted, report.rejected, report.duplicates) == (4, 2, 2, 0)
    assert report.rejected_by_reason == {"record: must be a JSON object": 1, "medium: must be text, got bool": 1}
    assert rows(store, "SELECT customer_id, event_id, source, medium FROM purchase_attributions ORDER BY 2") == [
        ("17850", "536365", "google", None), ("c1", "o9", "5", "web")]


def test_attributions_missing_columns(store, tmp_path):
    path = write_csv(tmp_path / "a.csv", ("customer_id", "order_id", "attribution_date"), [("c1", "o1", "2024-01-01")])
    with pytest.raises(LoadError, match="no column 'source' for source"):
        loaders.load(store, "attributions", path)


# ----------------------------------------------------------------------------- session extras
S_HEADER = ("customer_id", "session_id", "session_date", "duration_seconds", "device_type", "session_start",
            "session_end", "page_views", "browser", "referrer", "channel")
S_ROWS = [
    # everything given
    ("c1", "s1", "2024-01-01 09:59", "100", "desktop", "2024-01-01 10:00", "2024-01-01 10:30", "3", "firefox",
     "google.com", "organic"),
    # no date, no duration: from start and end
    ("c1", "s2", "", "", "mobile", "2024-01-01 11:00", "2024-01-01 11:00:30", "1", "", "", "direct"),
    # the old columns only
    ("c2", "s3", "2024-01-02 08:00", "60", "", "", "", "", "", "", ""),
    ("c2", "s4", "", "", "", "2024-01-02 09:00", "2024-01-02 08:00", "", "", "", ""),    # end before start
    ("c2", "s5", "", "", "", "2024-01-02 09:00", "", "", "", "", ""),                    # no duration
    ("c2", "s6", "", "10", "", "", "", "", "", "", ""),                                  # no time at all
    ("c2", "s7", "", "", "", "2024-01-02 09:00", "tomorrow", "", "", "", ""),            # bad end
    ("c2", "s8", "2024-01-02 08:00", "60", "", "", "", "2.5", "", "", ""),               # page views
    ("c2", "s9", "2024-01-02 08:00", "60", "", "", "", "-2", "", "", ""),
    ("c2", "s10", "2024-01-02 08:00", "60", "", "", "", "many", "", "", ""),
    ("c2", "s11", "2024-01-02 08:00", "60", "", "", "", "4.0", "", "", ""),              # 4.0 = 4
    ("c1", "s1", "2024-01-01 09:59", "100", "desktop", "2024-01-01 10:00", "2024-01-01 10:30", "3", "firefox",
     "google.com", "organic"),                                                           # duplicate
]


def test_session_extras(store, tmp_path):
    path = write_csv(tmp_path / "sessions.csv", S_HEADER, S_ROWS)
    paris = __import__("zoneinfo").ZoneInfo("Europe/Paris")
    report = loaders.load(store, "sessions", path, date_format="%Y-%m-%d %H:%M", timezone="Europe/Paris")
    # '2024-01-01 11:00:30' does not fit the date format: rejected like any time of the load
    assert report.rejected_by_reason == {
        "session_end: unparseable date (expected format %Y-%m-%d %H:%M)": 2,
        "session_end: is before session_start": 1,
        "duration_seconds: is missing": 1,
        "session_date: is missing": 1,
        "page_views: must be a whole number, got 2.5": 1,
        "page_views: is negative": 1,
        "page_views: not a whole number": 1,
    }
    assert (report.read, report.accepted, report.rejected, report.duplicates) == (12, 3, 8, 1)
    assert balanced(report)
    got = rows(store, "SELECT customer_id, event_time_us, event_id, duration_seconds, device_type, "
                      "session_start_us, session_end_us, page_views, browser, referrer, channel "
                      "FROM sessions ORDER BY event_id")
    assert got == [
        ("c1", us("2024-01-01T09:59:00", paris), "s1", 100.0, "desktop", us("2024-01-01T10:00:00", paris),
         us("2024-01-01T10:30:00", paris), 3, "firefox", "google.com", "organic"),
        ("c2", us("2024-01-02T08:00:00", paris), "s11", 60.0, "unknown", None, None, 4, None, None, None),
        ("c2", us("2024-01-02T08:00:00", paris), "s3", 60.0, "unknown", None, None, None, None, None, None),
    ]
    before = snapshot(store)
    assert loaders.load(store, "sessions", path, date_format="%Y-%m-%d %H:%M",
                        timezone="Europe/Paris").status == "already_loaded"
    assert snapshot(store) == before


def test_session_derived_date_and_duration(store, tmp_path):
    path = write_csv(tmp_path / "s.csv", ("customer_id", "session_id", "session_start", "session_end", "page_views"),
                     [("c1", "s1", "2024-01-01T10:00:00", "2024-01-01T10:00:30.5", "7"),
                      ("c1", "s2", "2024-01-01T11:00:00", "", "")])  # no end: duration unknown -> rejected
    report = loaders.load(store, "sessions", path)
    assert (report.accepted, report.rejected) == (1, 1)
    assert report.rejected_by_reason == {"duration_seconds: is missing": 1}
    assert rows(store, "SELECT event_time_us, duration_seconds, session_start_us, session_end_us, page_views "
                       "FROM sessions") == [(us("2024-01-01T10:00:00"), 30.5, us("2024-01-01T10:00:00"),
                                             us("2024-01-01T10:00:30.5"), 7)]


def test_session_json_extras(store, tmp_path):
    path = tmp_path / "s.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"customer_id": 1, "session_start": "2024-01-01T10:00:00Z", "session_end": "2024-01-01T10:10:00Z",
         "page_views": 5, "browser": "safari", "referrer": None, "channel": "email", "session_id": 77},
        {"customer_id": 2, "session_start": "2024-01-01T10:00:00Z", "session_end": "2024-01-01T10:10:00Z",
         "page_views": True},
        {"customer_id": 3, "session_start": "2024-01-01T10:00:00Z", "session_end": "2024-01-01T10:10:00Z",
         "browser": ["x"]},
    ]) + "\n")
    report = loaders.load(store, "sessions", path)
    assert (report.accepted, report.rejected) == (1, 2)
    assert report.rejected_by_reason == {"page_views: must be a whole number, got bool": 1,
                                         "browser: must be text, got list": 1}
    assert rows(store, "SELECT customer_id, event_id, duration_seconds, page_views, browser, referrer, channel "
                       "FROM sessions") == [("1", "77", 600.0, 5, "safari", None, "email")]


def test_session_missing_columns(store, tmp_path):
    path = write_csv(tmp_path / "s.csv", ("customer_id", "session_start", "duration_seconds"),
                     [("c1", "2024-01-01", "5")])
    assert loaders.load(store, "sessions", path).accepted == 1  # session_start stands for session_date
    path = write_csv(tmp_path / "s2.csv", ("customer_id", "session_start"), [("c1", "2024-01-01")])
    with pytest.raises(LoadError, match="no column 'duration_seconds' for duration_seconds "
                                        r"\(or give session_start and session_end\)"):
        loaders.load(store, "sessions", path)
    path = write_csv(tmp_path / "s3.csv", ("customer_id", "duration_seconds"), [("c1", "5")])
    with pytest.raises(LoadError, match="no column 'session_date' for session_date"):
        loaders.load(store, "sessions", path)


# ----------------------------------------------------------------------------- customers created_at
def test_customers_created_at(store, tmp_path):
    path = write_csv(tmp_path / "c.csv", ("customer_id", "created_at", "tier"),
                     [("c1", "2023-05-01 00:00", "gold"), ("c2", "", "silver"), ("c3", "last year", "x"),
                      ("17850.0", "2023-05-01T00:00:00Z", "bronze")])
    report = loaders.load(store, "customers", path, timezone="Europe/Paris")
    assert (report.read, report.accepted, report.rejected, report.duplicates) == (4, 3, 1, 0)
    assert report.rejected_by_reason == {"created_at: unparseable date": 1}
    paris = __import__("zoneinfo").ZoneInfo("Europe/Paris")
    stored = rows(store, "SELECT customer_id, metadata, created_at_us FROM customers ORDER BY 1")
    assert stored == [("17850", '{"tier": "bronze"}', us("2023-05-01T00:00:00")),
                      ("c1", '{"tier": "gold"}', us("2023-05-01T00:00:00", paris)),
                      ("c2", '{"tier": "silver"}', None)]
    before = snapshot(store)
    assert loaders.load(store, "customers", path, timezone="Europe/Paris").status == "already_loaded"
    assert snapshot(store) == before

    # a second file: same metadata and creation time = duplicate; an empty created_at keeps the stored one;
    # a new created_at (metadata unchanged) is a change
    path2 = write_csv(tmp_path / "c2.csv", ("customer_id", "created_at", "tier"),
                      [("c1", "", "gold"), ("17850", "2023-05-01T00:00:00Z", "bronze"),
                       ("c2", "2022-01-01T00:00:00Z", "silver")])
    second = loaders.load(store, "customers", path2)
    assert (second.read, second.accepted, second.rejected, second.duplicates) == (3, 1, 0, 2)
    stored = rows(store, "SELECT customer_id, metadata, created_at_us FROM customers ORDER BY 1")
    assert stored == [("17850", '{"tier": "bronze"}', us("2023-05-01T00:00:00")),
                      ("c1", '{"tier": "gold"}', us("2023-05-01T00:00:00", paris)),
                      ("c2", '{"tier": "silver"}', us("2022-01-01T00:00:00"))]


def test_customers_created_at_with_metadata_column_and_mapping(store, tmp_path):
    path = tmp_path / "c.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"id": "c1", "meta": {"a": 1}, "since": "2020-02-02T02:02:02Z"},
        {"id": "c2", "meta": {"a": 2}, "since": 12345},
    ]) + "\n")
    report = loaders.load(store, "customers", path,
                          mapping={"customer_id": "id", "metadata": "meta", "created_at": "since"})
    assert (report.accepted, report.rejected) == (1, 1)
    assert report.rejected_by_reason == {"created_at: unparseable date: expected text, got int": 1}
    assert rows(store, "SELECT customer_id, metadata, created_at_us FROM customers") == [
        ("c1", '{"a": 1}', us("2020-02-02T02:02:02"))]


# ----------------------------------------------------------------------------- resume, CLI
def _interrupted_then_resumed(tmp_path, kind, path, monkeypatch):
    monkeypatch.setattr(loaders, "BATCH_ROWS", 3)

    class Stop(Exception):
        pass

    def stop_after_first_batch(report):
        raise Stop

    db = tmp_path / f"{kind}.db"
    with CustomerActivityFeatures(str(db)) as st:
        with pytest.raises(Stop):
            loaders.load(st, kind, path, progress=stop_after_first_batch)
        assert loaders.list_loads(st)[0]["status"] == "running"
    with CustomerActivityFeatures(str(db)) as st:
        report = loaders.load(st, kind, path)
        assert report.resumed and report.status == "completed" and balanced(report)
        return report, without_times(snapshot(st))


@pytest.mark.parametrize("kind, header, data", [
    ("interactions", I_HEADER, I_ROWS), ("attributions", A_HEADER, A_ROWS), ("sessions", S_HEADER, S_ROWS)])
def test_resumed_load_equals_uninterrupted_load(tmp_path, monkeypatch, kind, header, data):
    path = write_csv(tmp_path / f"{kind}.csv", header, data)
    resumed, snap = _interrupted_then_resumed(tmp_path, kind, path, monkeypatch)
    with CustomerActivityFeatures() as st:
        whole = loaders.load(st, kind, path)
        assert without_times(snapshot(st)) == snap
    assert (resumed.read, resumed.accepted, resumed.rejected, resumed.duplicates) == \
        (whole.read, whole.accepted, whole.rejected, whole.duplicates)


def test_cli_loads_the_new_kinds(tmp_path):
    db = tmp_path / "cli.db"
    files = {
        "interactions": write_csv(tmp_path / "i.csv", I_HEADER, I_ROWS),
        "attributions": write_csv(tmp_path / "a.csv", A_HEADER, A_ROWS),
    }
    for kind, path in files.items():
        result = CliRunner().invoke(cli, ["--db", str(db), "load", kind, str(path), "--json"], prog_name="caf")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["status"] == "completed" and data["read"] == len(
            I_ROWS if kind == "interactions" else A_ROWS)
    with CustomerActivityFeatures(str(db)) as st:
        assert st.conn.execute("SELECT COUNT(*) FROM interactions").fetchone()[0] == 4
        assert st.conn.execute("SELECT COUNT(*) FROM purchase_attributions").fetchone()[0] == 2
    assert set(loaders.KINDS) >= {"interactions", "attributions"}
