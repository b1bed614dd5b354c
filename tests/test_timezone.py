"""The store timezone (store/localtime.py): the SQL local-time lookup (the view
purchase_local_time, sql/localtime.sql), caf_local_us, DST."""

import sqlite3
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures
from store import localtime, timeutil

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
PURCHASES = ("CREATE TABLE IF NOT EXISTS purchases (shop_id TEXT NOT NULL DEFAULT '', customer_id TEXT NOT NULL, "
             "event_time_us INTEGER NOT NULL, event_id TEXT NOT NULL, order_value REAL NOT NULL, "
             "PRIMARY KEY (shop_id, customer_id, event_time_us, event_id)) WITHOUT ROWID")


def wall_clock_us(utc_us, tz):
    """Local wall-clock microseconds from zoneinfo, as naive local datetimes give them."""
    naive = (EPOCH + timedelta(microseconds=utc_us)).astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    return (naive - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def sql_local(conn, utc_us):
    """(local_us of a purchase at utc_us read from the view purchase_local_time, caf_local_us(utc_us))."""
    conn.execute(PURCHASES)  # a bare connection: the table the view reads
    conn.execute("INSERT INTO purchases VALUES ('sql_local', 'x', ?, 'e', 0)", [utc_us])
    try:
        [view] = conn.execute("SELECT local_us FROM purchase_local_time WHERE shop_id = 'sql_local'").fetchall()
    finally:
        conn.execute("DELETE FROM purchases WHERE shop_id = 'sql_local'")
    return view[0], conn.execute("SELECT caf_local_us(?)", [utc_us]).fetchone()[0]


def test_utc_is_one_fixed_row():
    with CustomerActivityFeatures() as store:
        assert store.timezone == "UTC"
        assert store.conn.execute("SELECT name, fixed_offset_us FROM temp.caf_tz").fetchall() == [("UTC", 0)]
        assert store.conn.execute("SELECT COUNT(*) FROM temp.caf_tz_offsets").fetchone()[0] == 1
        assert sql_local(store.conn, 123) == (123, 123)


def test_fixed_offset_zone():
    with CustomerActivityFeatures(timezone="Etc/GMT-5") as store:  # POSIX sign: UTC+5
        assert store.conn.execute("SELECT fixed_offset_us FROM temp.caf_tz").fetchone()[0] == 5 * 3600 * 10**6
        assert sql_local(store.conn, 0) == (5 * 3600 * 10**6,) * 2


@pytest.mark.parametrize("tz, instant, wall", [
    # America/New_York springs forward 2024-03-10 07:00 UTC (02:00 EST -> 03:00 EDT)
    ("America/New_York", "2024-03-10T06:59:59.999999Z", "2024-03-10T01:59:59.999999"),
    ("America/New_York", "2024-03-10T07:00:00Z", "2024-03-10T03:00:00"),
    # and falls back 2024-11-03 06:00 UTC (02:00 EDT -> 01:00 EST)
    ("America/New_York", "2024-11-03T05:59:59.999999Z", "2024-11-03T01:59:59.999999"),
    ("America/New_York", "2024-11-03T06:00:00Z", "2024-11-03T01:00:00"),
    # Europe/London: 2024-03-31 01:00 UTC (GMT -> BST), 2024-10-27 01:00 UTC (BST -> GMT)
    ("Europe/London", "2024-03-31T00:59:59Z", "2024-03-31T00:59:59"),
    ("Europe/London", "2024-03-31T01:00:00Z", "2024-03-31T02:00:00"),
    ("Europe/London", "2024-10-27T00:59:59Z", "2024-10-27T01:59:59"),
    ("Europe/London", "2024-10-27T01:00:00Z", "2024-10-27T01:00:00"),
    ("Europe/London", "2011-06-01T12:00:00Z", "2011-06-01T13:00:00"),
    ("Europe/London", "1960-01-01T00:00:00Z", "1960-01-01T00:00:00"),
])
def test_dst_transitions(tz, instant, wall):
    with CustomerActivityFeatures(timezone=tz) as store:
        expected = (datetime.fromisoformat(wall) - datetime(1970, 1, 1)) // timedelta(microseconds=1)
        assert sql_local(store.conn, timeutil.to_us(instant)) == (expected, expected)


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "utc ", None, 5])
def test_unknown_timezone_is_a_clear_error(name):
    with pytest.raises(ValueError, match="timezone"):
        CustomerActivityFeatures(timezone=name)


def test_install_replaces_and_is_idempotent():
    conn = sqlite3.connect(":memory:")
    conn.isolation_level = None
    assert localtime.installed(conn) is None
    localtime.install(conn, "Europe/London")
    localtime.install(conn, "Europe/London")
    assert localtime.installed(conn) == "Europe/London"
    summer = timeutil.to_us("2024-07-01T12:00:00Z")
    assert sql_local(conn, summer)[0] == summer + 3600 * 10**6
    localtime.install(conn, "UTC")
    assert sql_local(conn, summer) == (summer, summer)
    assert conn.execute("SELECT caf_local_us(NULL)").fetchone()[0] is None


@settings(max_examples=150, deadline=None)
@given(tz=st.sampled_from(["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu",
                           "America/Sao_Paulo", "Pacific/Apia", "UTC"]),
       utc_us=st.integers(timeutil.to_us("1901-01-01T00:00:00Z"), timeutil.to_us("2099-12-31T00:00:00Z")))
def test_sql_local_time_matches_zoneinfo(tz, utc_us):
    conn = sqlite3.connect(":memory:")
    conn.isolation_level = None
    localtime.install(conn, tz)
    want = wall_clock_us(utc_us, tz)
    assert sql_local(conn, utc_us) == (want, want)
    assert localtime.local_us(tz, utc_us) == want
    conn.close()


@settings(max_examples=150, deadline=None)
@given(tz=st.sampled_from(["America/New_York", "Europe/London", "Australia/Lord_Howe", "America/Sao_Paulo",
                           "Pacific/Apia"]),
       pick=st.integers(1, 10**6), delta=st.integers(-2 * 3600 * 10**6, 2 * 3600 * 10**6))
def test_sql_local_time_matches_zoneinfo_near_transitions(tz, pick, delta):
    rows = localtime.transitions(tz)
    start = rows[1 + pick % (len(rows) - 1)][0]
    conn = sqlite3.connect(":memory:")
    conn.isolation_level = None
    localtime.install(conn, tz)
    want = wall_clock_us(start + delta, tz)
    assert sql_local(conn, start + delta) == (want, want)
    conn.close()
