"""The store's timezone: local wall-clock time in SQL.

Event times are stored as UTC microseconds. Features that depend on the time of
day, the weekday or calendar periods (RFM periods, hour-of-day, weekday) take
them in the timezone the store is configured with (an IANA name, default
``UTC``). The mechanism, installed on every store connection by
:func:`install`:

* a temporary table ``temp.caf_tz_offsets(start_us INTEGER PRIMARY KEY,
  offset_us INTEGER NOT NULL)``: from the UTC instant ``start_us`` (inclusive)
  until the next row's ``start_us`` the zone is ``offset_us`` microseconds
  ahead of UTC. The first row starts at the smallest 64-bit integer, so every
  instant has exactly one row. For UTC (and any fixed-offset zone) the table
  has one row. Transitions are taken from ``zoneinfo`` for 1900-2100; outside
  that range the nearest known offset holds.
* a one-row temporary table ``temp.caf_tz(name TEXT, fixed_offset_us
  INTEGER)``: the zone's name, and its offset when it never changes (UTC,
  ``Etc/*``), else NULL.
* the idiom for local wall-clock microseconds (no Python callback; for a
  fixed zone the first, uncorrelated subquery is evaluated once per statement
  and COALESCE skips the second; otherwise an indexed rowid seek per row)::

      x + COALESCE((SELECT fixed_offset_us FROM temp.caf_tz),
                   (SELECT o.offset_us FROM temp.caf_tz_offsets AS o
                    WHERE o.start_us <= x ORDER BY o.start_us DESC LIMIT 1))

  written once in ``sql/``, in the query ``purchase_local_time``
  (sql/localtime.sql): every purchase with its ``local_us``. It is installed,
  as written, as the temporary view ``purchase_local_time``, which the
  local-time queries read (the RFM/T purchases, the behaviour features'
  purchases); SQLite flattens it into each reader.

* the deterministic SQL function ``caf_local_us(x)`` giving the same value
  from the same rows (a Python callback per call: slower, see docs/rfm.md),
  for ad-hoc use and for one instant (``rfm_instant``, sql/rfm.sql).

Local wall-clock microseconds are "microseconds since 1970-01-01 00:00 local
time": day number ``floor(local_us / 86400e6)``, hour of day, weekday all follow
with integer arithmetic. At a DST fall-back the repeated local hour maps both
instants to the same wall-clock values (as naive local datetimes do in pandas).
One timezone per connection: installing another replaces it.
"""

import functools
import sqlite3
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import timeutil
from .errors import StoreError
from .resources import query

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_US = -(2 ** 63)
US_PER_SECOND = 1_000_000
US_PER_HOUR = 3600 * US_PER_SECOND
US_PER_DAY = 86_400 * US_PER_SECOND
FIRST_YEAR = 1900
LAST_YEAR = 2100
TABLE = "caf_tz_offsets"
VIEW = "purchase_local_time"  # the temp view of the query of that name (sql/localtime.sql)


class UnknownTimezoneError(StoreError, ValueError):
    """The timezone name is not a known IANA zone."""


def check_timezone(name):
    """The validated IANA name (a ``ValueError`` subclass when unknown)."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownTimezoneError(f"timezone must be an IANA zone name such as 'UTC' or "
                                   f"'Europe/London', got {name!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownTimezoneError(
            f"unknown timezone {name!r}: expected an IANA zone name such as 'UTC', "
            "'Europe/London' or 'America/New_York'") from None
    return name


def _offset_us(zone, seconds):
    return int(datetime.fromtimestamp(seconds, zone).utcoffset() // timedelta(microseconds=1))


@functools.lru_cache(maxsize=32)
def transitions(name):
    """((start_us, offset_us), ...) for the zone: the rows of ``caf_tz_offsets``.

    Found by stepping one day at a time through 1900-2100 and bisecting to the
    second where the offset changes (zone transitions are whole seconds). Two
    transitions within one day would be missed; no zone has had one since 1900
    as far as the tz database goes. Cached per process.
    """
    zone = ZoneInfo(check_timezone(name))
    if name == "UTC" or name.startswith("Etc/"):  # fixed by definition
        return ((MIN_US, _offset_us(zone, 0)),)
    start = int((datetime(FIRST_YEAR, 1, 1, tzinfo=UTC) - EPOCH).total_seconds())
    stop = int((datetime(LAST_YEAR, 1, 1, tzinfo=UTC) - EPOCH).total_seconds())
    current = _offset_us(zone, start)
    rows = [(MIN_US, current)]
    t = start
    while t < stop:
        nxt = t + 86_400
        offset = _offset_us(zone, nxt)
        if offset != current:
            lo, hi = t, nxt  # offset(lo) == current, offset(hi) != current
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset_us(zone, mid) == current:
                    lo = mid
                else:
                    hi = mid
            rows.append((hi * US_PER_SECOND, offset))
            current = offset
        t = nxt
    return tuple(rows)


def local_us(name, utc_us):
    """Local wall-clock microseconds of a UTC instant, from the same table as SQL."""
    rows = transitions(name)
    lo, hi = 0, len(rows)  # last row with start_us <= utc_us
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if rows[mid][0] <= utc_us:
            lo = mid
        else:
            hi = mid
    return utc_us + rows[lo][1]


def installed(conn):
    """The timezone name installed on the connection, or None."""
    try:
        row = conn.execute("SELECT name FROM temp.caf_tz").fetchone()
    except sqlite3.OperationalError:  # no such table: nothing installed
        return None
    return row[0] if row else None


def install(conn, name="UTC"):
    """Install the timezone on a connection: the offsets tables, the view
    ``purchase_local_time`` over them and ``caf_local_us``."""
    name = check_timezone(name)
    rows = transitions(name)
    if installed(conn) != name:
        _fill(conn, name, rows)
    if len(rows) == 1:
        fixed = rows[0][1]

        def caf_local_us(x):
            return None if x is None else x + fixed
    else:
        def caf_local_us(x):
            return None if x is None else local_us(name, x)

    conn.create_function("caf_local_us", 1, caf_local_us, deterministic=True)
    return name


def _fill(conn, name, rows):
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {TABLE} "
                 "(start_us INTEGER PRIMARY KEY, offset_us INTEGER NOT NULL)")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS caf_tz (name TEXT NOT NULL, fixed_offset_us INTEGER)")
    in_tx = conn.in_transaction
    if not in_tx:
        conn.execute("BEGIN")
    try:
        conn.execute(f"DELETE FROM temp.{TABLE}")
        conn.executemany(f"INSERT INTO temp.{TABLE} (start_us, offset_us) VALUES (?, ?)", rows)
        conn.execute("DELETE FROM temp.caf_tz")
        conn.execute("INSERT INTO temp.caf_tz (name, fixed_offset_us) VALUES (?, ?)",
                     [name, rows[0][1] if len(rows) == 1 else None])
        conn.execute(f"CREATE TEMP VIEW IF NOT EXISTS {VIEW} AS\n" + query(VIEW))
    except BaseException:
        if not in_tx:
            conn.execute("ROLLBACK")
        raise
    if not in_tx:
        conn.execute("COMMIT")


def to_us(value, name="UTC"):
    """An instant given to a local-time feature, as UTC microseconds.

    Like ``store.timeutil.to_us``, except that a time without an offset (naive
    datetime, date, ISO text without offset) is wall-clock time in the zone
    ``name`` (the store's timezone), not the machine's local time; an ambiguous
    wall-clock time (DST fall-back) is its first occurrence.
    """
    dt = None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("z", "Z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            dt = None
    if dt is None:
        return timeutil.to_us(value)  # raises its usual ValueError
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(check_timezone(name)))
    return timeutil.to_us(dt)
