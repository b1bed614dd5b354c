"""Time: every instant is stored as whole microseconds since 1970-01-01 UTC.

Rules (the same for event times and for ``as_of``):

* ``None`` means now;
* an aware ``datetime`` is converted to UTC;
* a naive ``datetime`` is local time, as ``datetime.now()`` gives;
* a ``date`` is midnight local time of that day;
* a string is ISO-8601 (``Z`` or an offset accepted; without one it is local
  time, like a naive datetime).

Anything else, or a value that does not fit, raises ``ValueError``.
"""

import time
from datetime import date, datetime, timedelta, timezone

from .errors import describe

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND


MIN_US = (datetime.min.replace(tzinfo=UTC) - EPOCH) // ONE_US
MAX_US = (datetime.max.replace(tzinfo=UTC) - EPOCH) // ONE_US

# Parsed aware ISO strings (with Z or an offset): dumps repeat timestamps a lot.
# Naive strings are never cached: their meaning depends on the local timezone.
_AWARE_STRINGS = {}
_AWARE_STRINGS_MAX = 100_000


def now_us():
    """The current instant, in microseconds since the epoch."""
    return time.time_ns() // 1000


def _parse(value):
    """An accepted time value as a datetime, naive or aware, as given."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty date string")
        if text[-1] in "zZ":
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO-8601 date: {value[:80]!r}") from None
    else:
        raise ValueError(f"expected a datetime, date or ISO-8601 string, got {type(value).__name__}")
    return dt


def _check_offset(dt):
    """The UTC offset of ``dt`` (None when naive), or ValueError when its tzinfo cannot give a valid
    one: ``utcoffset()`` raising, returning 24 hours or more either way, or not a timedelta."""
    if dt.tzinfo is None:
        return None
    try:
        return dt.utcoffset()
    except Exception as exc:  # a hostile or broken tzinfo: any exception it raises
        raise ValueError(f"its tzinfo gives no valid UTC offset: {describe(exc)}") from None


def parse_datetime(value):
    """Parse an accepted time value into an aware UTC ``datetime``."""
    dt = _parse(value)
    _check_offset(dt)
    try:
        # astimezone() on a naive datetime assumes local time.
        return dt.astimezone(UTC)
    except (OverflowError, ValueError, OSError):
        raise ValueError(f"date out of range: {value!r}"[:120]) from None


def to_us(value):
    """An accepted time value (not None) as microseconds since the epoch."""
    if type(value) is str:
        cached = _AWARE_STRINGS.get(value)
        if cached is not None:
            return cached
    dt = _parse(value)
    if _check_offset(dt) is not None:
        us = (dt - EPOCH) // ONE_US  # aware: exact, no conversion needed
        if not MIN_US <= us <= MAX_US:
            raise ValueError(f"date out of range: {value!r}"[:120])
        if type(value) is str:
            if len(_AWARE_STRINGS) >= _AWARE_STRINGS_MAX:
                _AWARE_STRINGS.clear()
            _AWARE_STRINGS[value] = us
        return us
    try:
        return (dt.astimezone(UTC) - EPOCH) // ONE_US
    except (OverflowError, ValueError, OSError):
        raise ValueError(f"date out of range: {value!r}"[:120]) from None


def as_of_us(as_of):
    """``as_of`` (None = now) as microseconds since the epoch."""
    return now_us() if as_of is None else to_us(as_of)


def from_us(us):
    """Microseconds since the epoch as an aware UTC ``datetime``."""
    return EPOCH + timedelta(microseconds=us)


def iso(us):
    """Microseconds since the epoch as ISO-8601 UTC text, e.g. 2011-12-09T12:50:00Z."""
    dt = from_us(us)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}"
    return text + "Z"


# Windows longer than this reach before any representable instant (datetimes span
# about 3.65 million days); clamping keeps them within timedelta and SQLite's
# 64-bit integers (1e8 days = 8.64e18 us) instead of raising OverflowError.
MAX_WINDOW_DAYS = 100_000_000


def days_to_us(days):
    """A window length in days (int or float) as whole microseconds (longer
    windows than MAX_WINDOW_DAYS are clamped to it: the same events)."""
    return timedelta(days=min(days, MAX_WINDOW_DAYS)) // ONE_US
