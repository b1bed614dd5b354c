"""Turning offered events into storable rows, or into a rejection with a reason.

Each ``*_row`` function takes the values of one event (as the ``add_*``
methods receive them) and returns the tuple stored in the event table, or
raises ``Rejection`` naming the field and the reason. The single ``add_*``
calls and the bulk methods share these functions, so both accept and reject
exactly the same things.
"""

import json
import math
import operator
import numbers
import secrets
from datetime import date, datetime
from decimal import Decimal

from . import timeutil
from .errors import describe

CART_EVENT_TYPES = ("abandoned", "converted")
UNKNOWN_DEVICE = "unknown"


class Rejection(Exception):
    def __init__(self, field, reason):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.why = reason  # without the field name
        self.reason = f"{field}: {reason}"


# Values of the caller's own types are read through the base type's methods (str.__str__,
# int.__int__, float.__float__), never through a subclass's overrides: a hostile subclass
# (an __eq__, __len__ or __str__ that raises or lies) is read as the plain value it holds.
_plain_str = str.__str__
_plain_int = int.__int__
_plain_float = float.__float__


NOT_UNICODE = "is not valid Unicode text (a lone surrogate)"  # the reason for text SQLite cannot store


def _text(value, field):
    """``value`` (a str, or an instance of a str subclass) as plain text, refused when it holds lone
    surrogates (not valid Unicode: SQLite could not store it)."""
    value = _plain_str(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejection(field, NOT_UNICODE) from None
    return value


def _blank(value):
    """True for None and '' (a value not given); never calls the value's own methods."""
    return value is None or (isinstance(value, str) and not str.__len__(value))


def customer_id(value, field="customer_id"):
    """THE customer-id rule: every entry point applies it (add_*, bulk calls, load_history, the
    metadata calls, every loader kind and preset through ``store.formats.customer_text``).

    Customer ids are text; integers (and integral floats such as 17850.0) become their digits.
    Refused: None and '' ("is empty"), bool, other types, fractional or non-finite floats, text
    with lone surrogates (not valid Unicode) and text holding a NUL character: SQLite's JSON
    functions, which carry cohorts of ids into set-based queries, cut text at NUL, so such a
    customer would silently vanish from cohorts and materialisations, and the getters refuse it.
    """
    if type(value) is str and value and value.isascii() and "\x00" not in value:
        return value  # the common case: plain ASCII text (no surrogates possible)
    if _blank(value):
        raise Rejection(field, "is empty")
    if isinstance(value, bool):
        raise Rejection(field, "must be text or an integer, got bool")
    if isinstance(value, str):
        value = _text(value, field)
        if "\x00" in value:
            raise Rejection(field, "contains a NUL character")
        return value
    if isinstance(value, int):
        return _int_text(value, field)
    if isinstance(value, float):
        value = _plain_float(value)
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        raise Rejection(field, f"must be text or an integer, got {value!r}")
    raise Rejection(field, f"must be text or an integer, got {type(value).__name__}")


def event_id(value, field):
    """THE event-id rule (the caller's natural key), applied by add_*, bulk calls, load_history,
    the generic loader kinds and the presets' keys (invoice, session, incident): text or an
    integer (its digits); None or '' means none was given and an id is generated (a file loader
    generates one from the file and row, a preset refuses the row). Refused: bool, other types,
    text with lone surrogates. NUL is allowed (event ids never travel through JSON)."""
    if type(value) is str and value and value.isascii():
        return value
    if _blank(value):
        return secrets.token_hex(8)
    if isinstance(value, bool):
        raise Rejection(field, "must be text or an integer, got bool")
    if isinstance(value, str):
        return _text(value, field)
    if isinstance(value, int):
        return _int_text(value, field)
    raise Rejection(field, f"must be text or an integer, got {type(value).__name__}")


def _int_text(value, field):
    """An integer's digits; one beyond Python's int-to-str digit limit is rejected, not a crash."""
    value = _plain_int(value)
    try:
        return str(value)
    except ValueError:
        raise Rejection(field, f"is an integer too large to store ({value.bit_length()} bits)") from None


def unreadable(exc, field="record"):
    """The rejection of a value whose own methods raised while it was read (a hostile object: an
    ``__eq__``, ``__hash__``, ``__float__``, ``__class__`` or tzinfo that raises)."""
    return Rejection(field, f"a value could not be read ({describe(exc)})")


def shown(value):
    """A short repr for a rejection reason; never raises (huge ints, hostile __repr__)."""
    try:
        return repr(value)[:120]
    except Exception:
        return f"a {type(value).__name__}"


def _safe_str(value):
    """str(value) as plain text, or a placeholder when the object cannot be turned into text."""
    try:
        text = str(value)
        return text if type(text) is str else _plain_str(text)
    except Exception:  # a hostile __str__ or an int beyond the digit limit
        return f"<unprintable {type(value).__name__}>"


def amount(value, field, *, optional=False):
    """A finite, non-negative number (not a bool, not a string)."""
    if type(value) is float and 0.0 <= value < _INF:
        return value  # the common case (NaN fails the comparison)
    if value is None:
        if optional:
            return None
        raise Rejection(field, "is missing")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Rejection(field, f"must be a number, got {type(value).__name__}")
    try:
        number = _plain_float(value) if isinstance(value, float) else float(value)
    except OverflowError:
        raise Rejection(field, "is too large") from None
    except Exception as exc:  # a Real whose __float__ raises or returns no float
        raise Rejection(field, f"cannot be read as a number ({describe(exc)})") from None
    if math.isnan(number):
        raise Rejection(field, "is NaN")
    if math.isinf(number):
        raise Rejection(field, "is infinite")
    if number < 0:
        raise Rejection(field, "is negative")
    return number


_INF = float("inf")


def event_time(value, field, now_us):
    if value is None:
        return now_us
    try:
        return timeutil.to_us(value)
    except ValueError as exc:  # includes a tzinfo without a valid UTC offset
        raise Rejection(field, f"unparseable date ({exc})") from None
    except Exception as exc:  # a hostile value (a datetime or str subclass whose methods raise)
        raise Rejection(field, f"unparseable date ({describe(exc)})") from None


def purchase_row(shop_id, now_us, customer, order_value, purchase_date=None, order_id=None):
    return (
        shop_id,
        customer_id(customer),
        event_time(purchase_date, "purchase_date", now_us),
        event_id(order_id, "order_id"),
        amount(order_value, "order_value"),
    )


def session_row(shop_id, now_us, customer, duration_seconds, device_type=None, session_date=None, session_id=None,
                session_start=None, session_end=None, page_views=None, browser=None, referrer=None, channel=None):
    """A sessions row. The keyword extras (issue 5) are optional: a missing
    duration is derived from session_end - session_start when both are given,
    and a missing session_date is session_start when that is given."""
    if _blank(device_type):
        device = UNKNOWN_DEVICE
    elif isinstance(device_type, str):
        device = _text(device_type, "device_type")
    else:
        raise Rejection("device_type", f"must be text, got {type(device_type).__name__}")
    start_us = None if session_start is None else event_time(session_start, "session_start", now_us)
    end_us = None if session_end is None else event_time(session_end, "session_end", now_us)
    if start_us is not None and end_us is not None and end_us < start_us:
        raise Rejection("session_end", "is before session_start")
    if duration_seconds is None and start_us is not None and end_us is not None:
        duration = (end_us - start_us) / 1_000_000
    else:
        duration = amount(duration_seconds, "duration_seconds")
    if session_date is None and start_us is not None:
        time_us = start_us
    else:
        time_us = event_time(session_date, "session_date", now_us)
    return (
        shop_id,
        customer_id(customer),
        time_us,
        event_id(session_id, "session_id"),
        duration,
        device,
        start_us,
        end_us,
        count(page_views, "page_views"),
        optional_text(browser, "browser"),
        optional_text(referrer, "referrer"),
        optional_text(channel, "channel"),
    )


# -- issue 5: interactions, attributions, customer creation time ---------------
INTERACTION_TYPES = ("page_view", "product_view", "category_view", "search",
                     "add_to_cart", "remove_from_cart", "checkout", "purchase")


def optional_text(value, field, *, max_length=1000):
    """Optional free text: None or '' is NULL; integers become their digits."""
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise Rejection(field, "must be text, got bool")
    if isinstance(value, int):
        return _int_text(value, field)
    if not isinstance(value, str):
        raise Rejection(field, f"must be text, got {type(value).__name__}")
    value = _plain_str(value)
    if len(value) > max_length:
        raise Rejection(field, f"is longer than {max_length} characters")
    return _text(value, field)


def count(value, field):
    """An optional non-negative whole number: an integral value of any numeric type (3, 3.0,
    Fraction(6, 2), Decimal('3') are all 3). Fractional values (3.5, Fraction(7, 2),
    Decimal('3.5')), NaN, infinities, bool and non-numbers are rejected, never rounded."""
    if value is None:
        return None
    number = value if type(value) is int else _whole(value, field)
    if number < 0:
        raise Rejection(field, "is negative")
    if number >= _MAX_COUNT:
        raise Rejection(field, "is too large")
    return number


_MAX_COUNT = 2 ** 63  # SQLite's INTEGER range


def _whole(value, field):
    """The int equal to a numeric ``value``, or a rejection when it is not a whole number."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Decimal)):
        raise Rejection(field, f"must be a whole number, got {type(value).__name__}")
    try:
        if isinstance(value, int):
            return _plain_int(value)
        if isinstance(value, numbers.Integral):  # e.g. numpy integers
            return operator.index(value)
        if isinstance(value, float):
            number = _plain_float(value)
            whole = math.isfinite(number) and number.is_integer()
        elif isinstance(value, Decimal):
            number = Decimal(value)  # a plain Decimal (a subclass's methods are not called)
            if number.is_finite() and number.adjusted() >= 19:  # beyond 2**63: never built as an int
                raise Rejection(field, "is negative" if number.is_signed() else "is too large")
            whole = number.is_finite() and number == number.to_integral_value()
        elif isinstance(value, numbers.Rational):  # Fraction
            number = value
            whole = operator.index(value.denominator) == 1
        else:  # any other Real: its float value
            number = float(value)
            whole = math.isfinite(number) and number.is_integer()
        if whole:
            return int(number)
    except Rejection:
        raise
    except OverflowError:
        raise Rejection(field, "is too large") from None
    except Exception as exc:  # a numeric type whose own methods raise
        raise Rejection(field, f"cannot be read as a number ({describe(exc)})") from None
    raise Rejection(field, f"must be a whole number, got {shown(value)}"[:200])


def _choice(value, field, allowed, expected, limit):
    """A value from a fixed allowlist of text values, or a rejection saying what was expected."""
    text = _plain_str(value) if isinstance(value, str) else None
    if text is None or text not in allowed:
        shown = text if text is not None else type(value).__name__
        raise Rejection(field, f"must be {expected}, got {shown!r}"[:limit])
    return text


def interaction_row(shop_id, now_us, customer, event_type, event_date=None, session_id=None, page_type=None,
                    product_id=None, category=None, search_query=None, view_duration_seconds=None,
                    device_type=None, interaction_id=None):
    event_type = _choice(event_type, "event_type", INTERACTION_TYPES, f"one of {', '.join(INTERACTION_TYPES)}", 300)
    return (
        shop_id,
        customer_id(customer),
        event_time(event_date, "event_date", now_us),
        event_id(interaction_id, "event_id"),
        optional_text(session_id, "session_id"),
        event_type,
        optional_text(page_type, "page_type"),
        optional_text(product_id, "product_id"),
        optional_text(category, "category"),
        optional_text(search_query, "search_query"),
        amount(view_duration_seconds, "view_duration_seconds", optional=True),
        optional_text(device_type, "device_type"),
    )


def attribution_row(shop_id, now_us, customer, order_id, source, medium=None, attribution_date=None):
    if _blank(order_id):
        raise Rejection("order_id", "is missing")
    if _blank(source):
        raise Rejection("source", "is missing")
    return (
        shop_id,
        customer_id(customer),
        event_time(attribution_date, "attribution_date", now_us),
        event_id(order_id, "order_id"),
        optional_text(source, "source"),
        optional_text(medium, "medium"),
    )


def created_at(value):
    """A customer's account creation time in microseconds, or None when not given."""
    if _blank(value):
        return None
    return event_time(value, "created_at", 0)


def cart_event_row(shop_id, now_us, customer, event_type, cart_value=None, event_date=None, cart_id=None):
    event_type = _choice(event_type, "event_type", CART_EVENT_TYPES, "'abandoned' or 'converted'", 200)
    return (
        shop_id,
        customer_id(customer),
        event_time(event_date, "event_date", now_us),
        event_id(cart_id, "cart_id"),
        event_type,
        amount(cart_value, "cart_value", optional=True),
    )


def support_row(shop_id, now_us, customer, ticket_id, response_time_hours=None, escalated=False, interaction_date=None):
    if escalated is None:
        flag = 0
    elif isinstance(escalated, bool) or (isinstance(escalated, int) and _plain_int(escalated) in (0, 1)):
        flag = _plain_int(escalated)
    else:
        raise Rejection("escalated", f"must be True or False, got {shown(escalated)}"[:200])
    return (
        shop_id,
        customer_id(customer),
        event_time(interaction_date, "interaction_date", now_us),
        event_id(ticket_id, "ticket_id"),
        amount(response_time_hours, "response_time_hours", optional=True),
        flag,
    )


def refund_row(shop_id, now_us, customer, refund_value, refund_date=None, refund_id=None, order_id=None):
    """A refund or cancellation: refund_id is the credit note / cancellation number;
    order_id the refunded order when known (None otherwise)."""
    if _blank(order_id):
        order = None
    else:
        order = event_id(order_id, "order_id")
    return (
        shop_id,
        customer_id(customer),
        event_time(refund_date, "refund_date", now_us),
        event_id(refund_id, "refund_id"),
        amount(refund_value, "refund_value"),
        order,
    )


def jsonable(value, _depth=0):
    """A JSON-serialisable copy: datetimes and dates become ISO strings, dicts and
    lists (and tuples) are kept, non-finite floats and other objects become str(obj).
    Never raises: a value whose own methods raise becomes a placeholder text."""
    try:
        return _jsonable(value, _depth)
    except Exception:  # a hostile value (its __class__, __iter__, items(), isoformat() ... raise)
        return _safe_str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _jsonable(value, depth):
    if depth > 100:
        return jsonable(_safe_str(value))
    if isinstance(value, int) and not isinstance(value, bool):
        value = _plain_int(value)
        try:
            int.__repr__(value)  # what json.dumps calls; fails beyond the int-to-str digit limit
        except ValueError:
            return f"<integer of {value.bit_length()} bits>"
        return value
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str):
            value = _plain_str(value)
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, float):
        value = _plain_float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime):
        try:
            return datetime.isoformat(value)
        except Exception:  # a tzinfo without a valid UTC offset: the wall time, and what is wrong
            return datetime.isoformat(datetime.replace(value, tzinfo=None)) + " (tzinfo without a valid UTC offset)"
    if isinstance(value, date):
        return date.isoformat(value)
    if isinstance(value, dict):
        return {jsonable(k if isinstance(k, str) else _safe_str(k)): jsonable(v, depth + 1)
                for k, v in dict.items(value)}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in (list.__iter__(value) if isinstance(value, list)
                                                   else tuple.__iter__(value))]
    return jsonable(_safe_str(value))


def to_json(value):
    return json.dumps(jsonable(value), ensure_ascii=False, allow_nan=False)


def metadata_json(metadata):
    """Customer metadata as JSON text; non-dict metadata becomes {}."""
    return to_json(metadata if issubclass(type(metadata), dict) else {})  # type(): never a hostile __class__


# -- fast paths for bulk records that are already in the common, correct shape ----------------
# Each ``fast_*`` factory returns a function record -> row, or None when the record is not in
# the shape it knows (any other type, an unknown key, a missing or unusual value, any time other
# than an ISO-8601 'YYYY-MM-DDT...Z' string). None sends the record through the ``*_row``
# function above, so rejections, their reasons and every conversion stay exactly those of the
# single add_* calls: a fast path only ever accepts a record the general path accepts, with the
# same row (tests/test_ingest_fast.py compares them). The four factories repeat their checks
# (id, amount, time) inline on purpose: a helper call per field costs ~0.1 us per record, a
# tenth of the whole fast path.

_EPOCH_NAIVE = datetime(1970, 1, 1)
_fromisoformat = datetime.fromisoformat

# SQL NULL in fast-path rows. SQLite stores a bound NaN as NULL (sqlite3_bind_double: "NaN -> NULL"),
# and Python's sqlite3 binds a float directly where None goes through its adapter lookup first: a
# session row's six NULLs cost more than its six values (tests/test_ingest_fast.py checks the NULLs).
# Only ever used for columns whose value is absent: a NaN offered as a value is rejected, never stored.
NULL = float("nan")


def iso_z_us(value):
    """Microseconds of an ISO-8601 UTC string 'YYYY-MM-DDTHH:MM[:SS[.ffffff]]Z', or None for any other value
    (which then goes through ``timeutil.to_us``, giving the same instant or its ValueError)."""
    if type(value) is str and value[-1:] == "Z" and value[10:11] == "T":
        try:
            dt = _fromisoformat(value[:-1])
        except ValueError:
            return None
        if dt.tzinfo is None:
            return (dt - _EPOCH_NAIVE) // timeutil.ONE_US
    return None


def _fast_factory(kind):
    def register(factory):
        FAST_ROWS[kind] = factory
        return factory
    return register


FAST_ROWS = {}
_MAX_EXACT_INT = 2 ** 53


def _field_values(fields, expected):
    """record -> its values in ``fields`` order (absent keys None), or None for a non-dict or a dict
    with a key outside ``fields``: one C call when every key is present, as in most bulk input."""
    if tuple(fields) != expected:  # the row functions below unpack the values in this order
        raise ValueError(f"fast path fields {tuple(fields)} are not {expected}")
    allowed = frozenset(fields)
    every = operator.itemgetter(*fields)
    count = len(fields)
    gets = [operator.methodcaller("get", name) for name in fields]

    def values(rec):
        if type(rec) is not dict:
            return None
        if len(rec) == count:
            try:
                return every(rec)
            except KeyError:  # as many keys, but not these: an unknown one
                return None
        if allowed.issuperset(rec):
            return tuple([get(rec) for get in gets])
        return None
    return values


@_fast_factory("purchase")
def fast_purchase(shop_id, fields):
    values = _field_values(fields, ("customer_id", "order_value", "purchase_date", "order_id"))
    iso = _fromisoformat
    epoch, one_us, inf = _EPOCH_NAIVE, timeutil.ONE_US, _INF

    def row(rec):
        got = values(rec)
        if got is None:
            return None
        c, v, d, o = got
        if not (type(c) is str and c and c.isascii() and "\x00" not in c):
            return None
        if type(v) is not float or not 0.0 <= v < inf:
            if type(v) is int and 0 <= v <= _MAX_EXACT_INT:
                v = float(v)
            else:
                return None
        if not (type(o) is str and o and o.isascii()):
            return None
        if type(d) is str and d[-1:] == "Z" and d[10:11] == "T":
            try:
                dt = iso(d[:-1])
            except ValueError:
                return None
            if dt.tzinfo is None:
                return (shop_id, c, (dt - epoch) // one_us, o, v)
        return None
    return row


@_fast_factory("session")
def fast_session(shop_id, fields):
    values = _field_values(fields, ("customer_id", "duration_seconds", "device_type", "session_date", "session_id",
                                   "session_start", "session_end", "page_views", "browser", "referrer", "channel"))
    iso = _fromisoformat
    epoch, one_us, inf = _EPOCH_NAIVE, timeutil.ONE_US, _INF

    def row(rec):
        got = values(rec)
        if got is None:
            return None
        c, v, dev, d, o, start, end, pages, browser, referrer, channel = got
        if (start is not None or end is not None or pages is not None or browser is not None
                or referrer is not None or channel is not None):
            return None
        if not (type(c) is str and c and c.isascii() and "\x00" not in c):
            return None
        if type(v) is not float or not 0.0 <= v < inf:
            if type(v) is int and 0 <= v <= _MAX_EXACT_INT:
                v = float(v)
            else:
                return None
        if not (type(o) is str and o and o.isascii()):
            return None
        if type(dev) is str and dev and dev.isascii():
            pass
        elif dev is None or dev == "":
            dev = UNKNOWN_DEVICE
        else:
            return None
        if type(d) is str and d[-1:] == "Z" and d[10:11] == "T":
            try:
                dt = iso(d[:-1])
            except ValueError:
                return None
            if dt.tzinfo is None:
                return (shop_id, c, (dt - epoch) // one_us, o, v, dev, NULL, NULL, NULL, NULL, NULL, NULL)
        return None
    return row


@_fast_factory("cart_event")
def fast_cart_event(shop_id, fields):
    values = _field_values(fields, ("customer_id", "event_type", "cart_value", "event_date", "cart_id"))
    iso = _fromisoformat
    epoch, one_us, inf = _EPOCH_NAIVE, timeutil.ONE_US, _INF

    def row(rec):
        got = values(rec)
        if got is None:
            return None
        c, t, v, d, o = got
        if not (type(c) is str and c and c.isascii() and "\x00" not in c):
            return None
        if type(t) is not str or (t != "abandoned" and t != "converted"):
            return None
        if v is None:
            v = NULL
        elif type(v) is not float or not 0.0 <= v < inf:
            if type(v) is int and 0 <= v <= _MAX_EXACT_INT:
                v = float(v)
            else:
                return None
        if not (type(o) is str and o and o.isascii()):
            return None
        if type(d) is str and d[-1:] == "Z" and d[10:11] == "T":
            try:
                dt = iso(d[:-1])
            except ValueError:
                return None
            if dt.tzinfo is None:
                return (shop_id, c, (dt - epoch) // one_us, o, t, v)
        return None
    return row


@_fast_factory("support_interaction")
def fast_support_interaction(shop_id, fields):
    values = _field_values(fields, ("customer_id", "ticket_id", "response_time_hours", "escalated", "interaction_date"))
    iso = _fromisoformat
    epoch, one_us, inf = _EPOCH_NAIVE, timeutil.ONE_US, _INF

    def row(rec):
        got = values(rec)
        if got is None:
            return None
        c, o, v, e, d = got
        if not (type(c) is str and c and c.isascii() and "\x00" not in c):
            return None
        if v is None:
            v = NULL
        elif type(v) is not float or not 0.0 <= v < inf:
            if type(v) is int and 0 <= v <= _MAX_EXACT_INT:
                v = float(v)
            else:
                return None
        if not (type(o) is str and o and o.isascii()):
            return None
        if e is True:
            e = 1
        elif e is False or e is None:
            e = 0
        else:
            return None
        if type(d) is str and d[-1:] == "Z" and d[10:11] == "T":
            try:
                dt = iso(d[:-1])
            except ValueError:
                return None
            if dt.tzinfo is None:
                return (shop_id, c, (dt - epoch) // one_us, o, v, e)
        return None
    return row
