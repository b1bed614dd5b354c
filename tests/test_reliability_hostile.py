"""Hostile and broken input: arbitrary values for every add_* and every bulk method.

Hypothesis offers wrong types, huge and tiny numbers, NaN, infinities, empty
and 1 MB strings, control characters, lone surrogates, dates in year 1 and
9999 in several time zones, nested and self-referencing objects, and hostile
objects (issue 11, item 10): tzinfos whose ``utcoffset`` raises, returns 24 h
or more either way or no timedelta; ``numbers.Real``, int, float, str, dict,
list and datetime subclasses whose ``__float__``, ``__int__``, ``__index__``,
``__bool__``, ``__str__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__len__``,
``__iter__`` ... raise; an object whose ``__class__`` raises; fractional
counts (``Fraction(7, 2)``, ``Decimal('3.5')``). Promises:

* non-strict: no exception at all; ``add_*`` returns a bool; every offer is
  exactly one of stored, rejected (a row in ``rejected_events`` with a
  non-empty reason) or a duplicate; for bulk methods accepted + rejected +
  duplicates = offered, the event table grew by exactly the accepted count
  and ``rejected_events`` by one row per distinct rejected offer (issue 11,
  item 4: an equal offer is counted again but stored once);
* re-running the same calls (the same bulk call, every single call again)
  counts the same rejections and stores no rejection twice;
* strict: the only exception is ``InvalidEventError`` (a ``ValueError``),
  and nothing is written for the rejected event.
"""

import contextlib
import json
import math
import numbers
import sqlite3
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures, InvalidEventError
from store import ingest, validate

MB = "x" * (1 << 20)
ZONES = [None, timezone.utc, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)),
         timezone(timedelta(hours=5, minutes=45))]


class Weird:
    def __str__(self):
        return "weird \x00 object"


class BadStr:
    def __str__(self):
        raise RuntimeError("__str__ exploded")

    def __repr__(self):
        return "BadStr()"


_self_list = []
_self_list.append(_self_list)


# -- hostile objects (issue 11, item 10) ------------------------------------------------------
# Their methods raise while ARMED, which the tests are around each store call only: hypothesis
# itself hashes, compares and prints the values it draws. Each is stateless within a call (it
# raises every time), so that offering it again gives the same outcome.
ARMED = [False]


class Boom(Exception):
    pass


@contextlib.contextmanager
def armed():
    ARMED[0] = True
    try:
        yield
    finally:
        ARMED[0] = False


def _unarmed_default(name, base):
    """What a hostile method does when not armed: the base class's method, or a plain default."""
    if name == "__repr__":
        return lambda self: f"<{type(self).__name__}>"
    if name == "__hash__":
        return object.__hash__
    if name == "__eq__":
        return lambda self, other: self is other
    if name == "__ne__":
        return lambda self, other: self is not other
    return getattr(base, name, None)


def hostile_method(name, base=object):
    fallback = _unarmed_default(name, base)

    def method(self, *args, **kwargs):
        if ARMED[0] or fallback is None:
            raise Boom(f"hostile {name}")
        return fallback(self, *args, **kwargs)
    method.__name__ = name
    return method


class OffsetTZ(tzinfo):
    """A tzinfo whose utcoffset() returns ``offset`` (24 h or more, or not a timedelta, is invalid)."""

    def __init__(self, offset):
        self.offset = offset

    def utcoffset(self, dt):
        return self.offset if ARMED[0] else None

    def dst(self, dt):
        return None

    def tzname(self, dt):
        return "hostile"

    def __repr__(self):
        return f"OffsetTZ({self.offset!r})"


class RaisingTZ(tzinfo):
    """A tzinfo whose every method raises."""

    utcoffset = hostile_method("utcoffset")
    dst = hostile_method("dst")
    tzname = hostile_method("tzname")
    fromutc = hostile_method("fromutc")

    def __repr__(self):
        return "RaisingTZ()"


NUMBER_METHODS = ("__float__", "__int__", "__index__", "__trunc__", "__floor__", "__ceil__", "__round__",
                  "__bool__", "__abs__", "__neg__", "__pos__", "__add__", "__radd__", "__sub__", "__rsub__",
                  "__mul__", "__rmul__", "__truediv__", "__rtruediv__", "__floordiv__", "__rfloordiv__",
                  "__mod__", "__rmod__", "__divmod__", "__rdivmod__", "__pow__", "__rpow__", "__lt__", "__le__",
                  "__gt__", "__ge__", "__eq__", "__ne__", "__hash__", "__str__", "__repr__", "__format__",
                  "__complex__")
TEXT_METHODS = ("__eq__", "__ne__", "__hash__", "__len__", "__str__", "__repr__", "__bool__", "__contains__",
                "__iter__", "__getitem__", "__add__", "__mod__", "__lt__", "encode", "strip", "isascii", "isdigit",
                "lower", "split", "endswith", "startswith", "replace", "__format__")
CONTAINER_METHODS = ("__iter__", "__len__", "__getitem__", "__contains__", "__eq__", "__ne__", "__bool__",
                     "__str__", "__repr__", "get", "items", "keys", "values", "copy")


def hostile_type(name, base, methods):
    """A subclass of ``base`` whose ``methods`` all raise while armed."""
    return type(name, (base,), {m: hostile_method(m, base) for m in methods})


HostileReal = hostile_type("HostileReal", numbers.Real, NUMBER_METHODS + ("real", "imag", "conjugate"))
HostileInt = hostile_type("HostileInt", int, NUMBER_METHODS)
HostileFloat = hostile_type("HostileFloat", float, NUMBER_METHODS + ("is_integer", "hex"))
HostileStr = hostile_type("HostileStr", str, TEXT_METHODS)
HostileDict = hostile_type("HostileDict", dict, CONTAINER_METHODS)
HostileList = hostile_type("HostileList", list, CONTAINER_METHODS)
HostileDatetime = hostile_type("HostileDatetime", datetime,
                               ("utcoffset", "astimezone", "isoformat", "__sub__", "__str__", "__repr__",
                                "replace", "timestamp", "__eq__", "__hash__", "__format__"))
# A Real that works except that its __float__ raises (the case of the issue), and one whose
# __float__ returns something that is not a float.
FloatRaises = hostile_type("FloatRaises", numbers.Real, ("__float__", "__repr__", "__eq__", "__hash__") + tuple(
    m for m in NUMBER_METHODS if m not in ("__float__", "__repr__", "__eq__", "__hash__", "__str__", "__bool__")))


class FloatNotFloat(FloatRaises):
    def __float__(self):
        return "3.0"


class ClassRaises:
    """isinstance() itself raises on this object (its __class__ is a property that raises)."""

    @property
    def __class__(self):
        if ARMED[0]:
            raise Boom("hostile __class__")
        return ClassRaises

    def __repr__(self):
        return "ClassRaises()"


EqRaises = hostile_type("EqRaises", object, ("__eq__", "__ne__", "__bool__", "__len__", "__hash__"))
BadRepr = hostile_type("BadRepr", object, ("__repr__", "__str__", "__format__"))


class HostileKey:
    """A hashable dict key whose __eq__, __str__ and __repr__ raise."""

    __eq__ = hostile_method("__eq__")
    __str__ = hostile_method("__str__")
    __repr__ = hostile_method("__repr__")

    def __hash__(self):
        return 1234567


_moment = datetime(2024, 5, 1, 10, 0)
HOSTILE = [
    _moment.replace(tzinfo=RaisingTZ()), _moment.replace(tzinfo=OffsetTZ(timedelta(hours=24))),
    _moment.replace(tzinfo=OffsetTZ(-timedelta(hours=24))), _moment.replace(tzinfo=OffsetTZ(timedelta(days=400))),
    _moment.replace(tzinfo=OffsetTZ("+01:00")), _moment.replace(tzinfo=OffsetTZ(timedelta(hours=23, minutes=59))),
    HostileDatetime(2024, 5, 1, 10, 0), HostileDatetime(2024, 5, 1, tzinfo=timezone.utc),
    HostileReal(), HostileInt(3), HostileInt(0), HostileFloat(2.5), HostileFloat(float("nan")),
    HostileStr("c1"), HostileStr("abandoned"), HostileStr(""), HostileStr("2024-05-01T10:00:00Z"),
    HostileDict({"customer_id": "c1", "order_value": 1.0}), HostileList([1, 2]),
    FloatRaises(), FloatNotFloat(), ClassRaises(), EqRaises(), BadRepr(), {HostileKey(): 1, "k": HostileKey()},
    Fraction(7, 2), Fraction(6, 2), Decimal("3"), Decimal("3.5"), Decimal("-3"), Decimal("sNaN"), Decimal("1e400"),
    3.5, 3.0, -0.0,
]
# by index: hypothesis hashes and compares the elements of sampled_from, which these refuse
hostile = st.integers(0, len(HOSTILE) - 1).map(HOSTILE.__getitem__)

special_values = st.sampled_from([
    None, "", " ", MB, "\x00", "\x00abc", "\ud800", "a\udfffb", "\u202e\u0000\t\r\n", "NaN", "inf", "-1",
    float("nan"), float("inf"), float("-inf"), -0.0, 5e-324, 1.7976931348623157e308, -1e308,
    10 ** 400, -(10 ** 400), 2 ** 63, -(2 ** 63) - 1, True, False, 0, 1, -1,
    Decimal("NaN"), Decimal("1e999999"), Fraction(1, 3), complex(1, 2), b"bytes", bytearray(b"\xff\xfe"),
    object(), Weird(), BadStr(), _self_list, {"nested": {"deeper": [1, {"x": float("nan")}]}}, [1, 2], (3,),
    {1, 2}, date(1, 1, 1), date(9999, 12, 31), datetime.min, datetime.max,
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))), datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-12))),
    "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-12:00", "9999-12-31T23:59:59.999999Z", "2024-02-30",
    "2024-01-01T00:00:00+25:00", "24-01-01", "2024-06-01 10:00:00\x00",
])
# built lazily: hypothesis cannot repr an int beyond the 4300-digit str limit inside a strategy
huge_int = st.just(5000).map(lambda digits: 10 ** digits)

datetimes = st.builds(
    lambda dt, tz: dt.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.sampled_from(ZONES))

scalars = st.one_of(
    special_values,
    hostile,
    huge_int,
    st.text(max_size=30),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=5),
    st.integers(),
    st.floats(),
    st.booleans(),
    datetimes,
    datetimes.map(lambda d: d.isoformat()),
    st.dates(),
    st.binary(max_size=10),
)
anything = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), inner, max_size=3)),
    max_leaves=6)
# plausible values mixed in so that some offers are accepted and some are duplicates
# (and the hostile objects directly, so that the few examples of the default run meet them)
customer = st.one_of(st.sampled_from(["c1", "c2", 17850, 17850.0]), hostile, anything)
event_id = st.one_of(st.none(), st.sampled_from(["e1", "e2", 7]), hostile, anything)
amount = st.one_of(st.floats(min_value=0, max_value=1e6), st.integers(0, 10 ** 6), hostile, anything)
when = st.one_of(st.none(), st.just("2024-05-01T10:00:00Z"), datetimes, hostile, anything)


def field_strategy(name):
    """A strategy for one field: mostly hostile, with plausible values mixed in."""
    if name == "customer_id":
        return customer
    if name == "event_type":
        valid = list(validate.CART_EVENT_TYPES) + list(getattr(validate, "INTERACTION_TYPES", ()))
        return st.one_of(st.sampled_from(valid), anything)
    if name.endswith("_id"):
        return event_id
    if name.endswith(("_date", "_start", "_end")) or name == "created_at":
        return when
    if name.endswith(("_value", "_seconds", "_hours")) or name == "page_views":
        return amount
    if name == "escalated":
        return st.one_of(st.booleans(), anything)
    if name == "metadata":
        return anything
    return st.one_of(st.sampled_from(["mobile", "email", "search"]), anything)  # free text fields


# every event kind of the ingest layer, with its single and bulk method
SINGLE_METHOD = {"purchase": "add_purchase", "session": "add_session", "cart_event": "add_cart_event",
                 "support_interaction": "add_support_interaction", "refund": "add_refund",
                 "interaction": "add_interaction", "attribution": "add_attribution"}
BULK_METHOD = {"purchase": "add_purchases", "session": "add_sessions", "cart_event": "add_cart_events",
               "support_interaction": "add_support_interactions", "refund": "add_refunds",
               "interaction": "add_interactions", "attribution": "add_attributions"}
KIND_NAMES = sorted(ingest.KINDS)
SINGLE = {SINGLE_METHOD[k]: (ingest.KINDS[k].table,
                             st.fixed_dictionaries({f: field_strategy(f) for f in ingest.KINDS[k].fields}))
          for k in KIND_NAMES}
SINGLE["set_customer_metadata"] = ("customers", st.fixed_dictionaries(
    {"customer_id": customer, "metadata": anything}, optional={"created_at": when}))
BULK = {BULK_METHOD[k]: (ingest.KINDS[k].table, ingest.KINDS[k].fields) for k in KIND_NAMES}
BULK["set_customers_metadata"] = ("customers", ("customer_id", "metadata", "created_at"))
FIELD_VALUE = {f: field_strategy(f) for _, fields in BULK.values() for f in fields}


def test_every_add_method_is_covered():
    public = {m for m in dir(CustomerActivityFeatures) if m.startswith(("add_", "set_customer"))}
    assert public == set(SINGLE) | set(BULK), public ^ (set(SINGLE) | set(BULK))


EXAMPLES = 12  # per method in the default run; the long variant runs LONG_EXAMPLES
LONG_EXAMPLES = 200
STATS = {"offered": 0, "accepted": 0, "rejected": 0, "duplicates": 0}


def counts(store, table):
    c = store.conn
    return (c.execute(f"SELECT count(*) FROM {table}").fetchone()[0],  # noqa: S608 fixed names
            c.execute("SELECT count(*) FROM rejected_events").fetchone()[0])


def new_store(strict=False):
    return CustomerActivityFeatures(strict=strict)


def check_reasons(store):
    bad = store.conn.execute(
        "SELECT count(*) FROM rejected_events WHERE reason IS NULL OR trim(reason) = '' "
        "OR NOT json_valid(payload)").fetchone()[0]
    assert bad == 0


@pytest.mark.parametrize("method", sorted(SINGLE))
def test_single_calls_never_crash(method):
    single_calls(method, EXAMPLES)


def single_calls(method, examples):
    table, kwargs_strategy = SINGLE[method]

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(calls=st.lists(kwargs_strategy, min_size=1, max_size=6))
    def run(calls):
        with new_store() as store:
            outcomes = []
            for kwargs in calls:
                rows0, rej0 = counts(store, table)
                with armed():
                    result = getattr(store, method)(**kwargs)
                rows1, rej1 = counts(store, table)
                assert isinstance(result, bool)
                outcomes.append(result)
                STATS["offered"] += 1
                if method == "set_customer_metadata":  # an upsert: stored, or rejected (recorded once)
                    assert rej1 - rej0 in (0, 1) and not (result and rej1 > rej0)
                    STATS["accepted" if result else "rejected"] += 1
                elif result:
                    assert (rows1 - rows0, rej1 - rej0) == (1, 0)
                    STATS["accepted"] += 1
                elif rej1 == rej0 + 1:
                    assert rows1 == rows0
                    STATS["rejected"] += 1
                else:  # a duplicate, or a rejection already recorded: nothing written
                    assert (rows1, rej1) == (rows0, rej0)
                    STATS["duplicates"] += 1
            # every call again: the same outcomes, and no rejection stored twice (issue 11, item 4)
            rejections = counts(store, table)[1]
            for kwargs, first in zip(calls, outcomes):
                with armed():
                    again = getattr(store, method)(**kwargs)
                assert again is False or first is True
            assert counts(store, table)[1] == rejections
            check_reasons(store)
            assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    run()


@pytest.mark.parametrize("method", sorted(SINGLE))
def test_single_calls_strict_raise_only_invalid_event_error(method):
    single_strict(method, EXAMPLES // 2)


def single_strict(method, examples):
    table, kwargs_strategy = SINGLE[method]

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(kwargs=kwargs_strategy)
    def run(kwargs):
        with new_store(strict=True) as store:
            before = counts(store, table)
            try:
                with armed():
                    getattr(store, method)(**kwargs)
            except InvalidEventError as exc:
                assert isinstance(exc, ValueError) and exc.field and str(exc)
                assert counts(store, table) == before  # nothing written for it
            STATS["offered"] += 1

    run()


def records_strategy(fields):
    record = st.fixed_dictionaries({}, optional={f: FIELD_VALUE[f] for f in fields})
    extra = st.dictionaries(st.one_of(st.text(max_size=4), st.integers(), huge_int), anything, max_size=2)
    return st.lists(st.one_of(record, record, extra, anything), max_size=12)


@pytest.mark.parametrize("method", sorted(BULK))
def test_bulk_methods_never_crash(method):
    bulk_calls(method, EXAMPLES)


def bulk_calls(method, examples):
    table, fields = BULK[method]

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(records=records_strategy(fields), batch_size=st.integers(1, 5))
    def run(records, batch_size):
        with new_store() as store:
            rows0, rej0 = counts(store, table)
            with armed():
                result = getattr(store, method)(iter(records), batch_size=batch_size)
            rows1, rej1 = counts(store, table)
            assert result.offered == len(records)
            assert min(result.accepted, result.rejected, result.duplicates) >= 0, result.as_dict()
            assert result.accepted + result.rejected + result.duplicates == len(records)
            # every rejected offer counted; equal offers stored once (issue 11, item 4)
            assert rej1 - rej0 <= result.rejected and (rej1 > rej0) == (result.rejected > 0)
            if method == "set_customers_metadata":
                assert rows1 - rows0 <= result.accepted  # an upsert: repeated ids update
            else:
                assert rows1 - rows0 == result.accepted
            assert all(reason for reason in result.rejected_by_reason)
            assert sum(result.rejected_by_reason.values()) == result.rejected
            check_reasons(store)
            # the same call again: the same rejections counted, none stored again
            with armed():
                again = getattr(store, method)(iter(records), batch_size=batch_size)
            assert again.offered == len(records)
            assert (again.rejected, again.rejected_by_reason) == (result.rejected, result.rejected_by_reason)
            rows2, rej2 = counts(store, table)
            assert rej2 == rej1
            if method != "set_customers_metadata":
                assert rows2 - rows1 == again.accepted
            for key in ("accepted", "rejected", "duplicates"):
                STATS[key] += getattr(result, key)
            STATS["offered"] += len(records)

    run()


@pytest.mark.parametrize("method", sorted(BULK))
def test_bulk_methods_strict_raise_only_invalid_event_error(method):
    bulk_strict(method, EXAMPLES // 2)


def bulk_strict(method, examples):
    table, fields = BULK[method]

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(records=records_strategy(fields))
    def run(records):
        with new_store(strict=True) as store:
            try:
                with armed():
                    getattr(store, method)(records, batch_size=3)
            except InvalidEventError as exc:
                assert str(exc)
            STATS["offered"] += len(records)

    run()


# -- issue 11, item 10: the hostile values named in the issue, in every field of every call ---------
BAD_TZ = {"utcoffset raises": RaisingTZ(), "utcoffset 24 h": OffsetTZ(timedelta(hours=24)),
          "utcoffset -24 h": OffsetTZ(-timedelta(hours=24)), "utcoffset not a timedelta": OffsetTZ("+01:00")}
BAD_REAL = {"__float__ raises": FloatRaises(), "__float__ not a float": FloatNotFloat(),
            "every method raises": HostileReal(), "int subclass": HostileInt(3), "float subclass": HostileFloat(2.5)}
TIME_FIELDS = {"purchase": "purchase_date", "session": "session_date", "cart_event": "event_date",
               "support_interaction": "interaction_date", "refund": "refund_date", "interaction": "event_date",
               "attribution": "attribution_date"}
AMOUNT_FIELDS = {"purchase": "order_value", "session": "duration_seconds", "cart_event": "cart_value",
                 "support_interaction": "response_time_hours", "refund": "refund_value",
                 "interaction": "view_duration_seconds"}
VALID = {
    "purchase": {"customer_id": "c1", "order_value": 10.0, "purchase_date": "2024-05-01T10:00:00Z"},
    "session": {"customer_id": "c1", "duration_seconds": 60.0, "session_date": "2024-05-01T10:00:00Z"},
    "cart_event": {"customer_id": "c1", "event_type": "abandoned", "event_date": "2024-05-01T10:00:00Z"},
    "support_interaction": {"customer_id": "c1", "ticket_id": "t", "interaction_date": "2024-05-01T10:00:00Z"},
    "refund": {"customer_id": "c1", "refund_value": 1.0, "refund_date": "2024-05-01T10:00:00Z"},
    "interaction": {"customer_id": "c1", "event_type": "search", "event_date": "2024-05-01T10:00:00Z"},
    "attribution": {"customer_id": "c1", "order_id": "o", "source": "email",
                    "attribution_date": "2024-05-01T10:00:00Z"},
}


def test_hostile_tzinfo_and_numbers_are_rejections_with_a_reason():
    """The cases of the issue: a reason naming the field, False from add_*, InvalidEventError in strict mode."""
    cases = []  # (kind, field, value, expected reason start)
    for kind, field in TIME_FIELDS.items():
        for tz in BAD_TZ.values():
            cases.append((kind, field, datetime(2024, 5, 1, 10, 0, tzinfo=tz),
                          f"{field}: unparseable date (its tzinfo gives no valid UTC offset: "))
    for kind, field in AMOUNT_FIELDS.items():
        for name in ("__float__ raises", "__float__ not a float", "every method raises"):
            cases.append((kind, field, BAD_REAL[name], f"{field}: cannot be read as a number ("))
    for value in (FloatRaises(), HostileReal()):
        cases.append(("session", "page_views", value, "page_views: cannot be read as a number ("))
    with new_store() as store, new_store(strict=True) as strict:
        for kind, field, value, reason in cases:
            kwargs = dict(VALID[kind], **{field: value})
            with armed():
                assert getattr(store, SINGLE_METHOD[kind])(**kwargs) is False, (kind, field, value)
            got = store.conn.execute("SELECT reason FROM rejected_events ORDER BY id DESC LIMIT 1").fetchone()[0]
            assert got.startswith(reason), (got, reason)
            with pytest.raises(InvalidEventError) as info, armed():
                getattr(strict, SINGLE_METHOD[kind])(**kwargs)
            assert info.value.field == field
        check_reasons(store)
        # the offending value's text is kept in the payload: the wall time of a datetime, a placeholder
        payload = json.loads(store.conn.execute(
            "SELECT payload FROM rejected_events WHERE reason LIKE 'purchase_date: %' ORDER BY id").fetchone()[0])
        assert payload["purchase_date"] == "2024-05-01T10:00:00 (tzinfo without a valid UTC offset)"
    with new_store() as store:  # a valid extreme offset is still accepted
        assert store.add_purchase("c1", 1.0, datetime(2024, 5, 1, tzinfo=OffsetTZ(timedelta(hours=23, minutes=59))))


@pytest.mark.parametrize("kind", sorted(BULK_METHOD))
def test_a_hostile_record_does_not_lose_its_bulk_batch(kind):
    """Each hostile value in each field of a record between two valid ones: the valid ones are stored."""
    fields = ingest.KINDS[kind].fields
    with new_store() as store:
        offered = stored = 0
        for field in fields:
            for value in HOSTILE:
                records = [dict(VALID[kind]), dict(VALID[kind], **{field: value}), dict(VALID[kind])]
                with armed():
                    result = getattr(store, BULK_METHOD[kind])(records, batch_size=3)
                offered += 3
                assert result.offered == 3 and result.rejected <= 1, (field, value, result)  # only it
                stored += result.accepted
        assert store.conn.execute(f"SELECT count(*) FROM {ingest.KINDS[kind].table}").fetchone()[0] == stored
        check_reasons(store)
        # a hostile record (not a dict, a dict whose methods raise) between valid ones
        records = [dict(VALID[kind]), HostileDict(VALID[kind]), ClassRaises(), dict(VALID[kind])]
        with armed():
            result = getattr(store, BULK_METHOD[kind])(records)
        assert (result.offered, result.rejected) == (4, 2)
        with armed():
            result = store.load_history(kind, records)
        assert (result.offered, result.rejected) == (4, 2)


@pytest.mark.parametrize("value", [3, 3.0, Fraction(6, 2), Decimal("3"), Decimal("3.000"), Decimal("0.3e1"),
                                   HostileInt(3)], ids=repr)
def test_integral_page_views_are_stored_as_that_integer(value):
    with new_store() as store:
        with armed():
            assert store.add_session("c1", 60.0, session_id="s", page_views=value) is True
            assert store.add_sessions([{"customer_id": "c1", "duration_seconds": 1.0, "session_id": "b",
                                        "page_views": value}]).accepted == 1
        rows = store.conn.execute("SELECT page_views, typeof(page_views) FROM sessions").fetchall()
        assert rows == [(3, "integer"), (3, "integer")]


@pytest.mark.parametrize("value", [Fraction(7, 2), 3.5, Decimal("3.5"), Decimal("NaN"), Decimal("sNaN"),
                                   Decimal("Infinity"), Decimal("1e400"), Decimal("-1e400"), float("nan"),
                                   True, "3", 2 ** 63, -1, HostileFloat(2.5), FloatRaises()], ids=repr)
def test_fractional_or_bad_page_views_are_rejected(value):
    with new_store() as store, new_store(strict=True) as strict:
        with armed():
            assert store.add_session("c1", 60.0, page_views=value) is False
        reason = store.conn.execute("SELECT reason FROM rejected_events").fetchone()[0]
        assert reason.startswith("page_views: "), reason
        with pytest.raises(InvalidEventError), armed():
            strict.add_session("c1", 60.0, page_views=value)
        assert store.conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0


def test_extremes_are_stored_exactly():
    """Accepted extremes come back as given: tiny/huge amounts, years 1 and 9999, a 1 MB id."""
    with new_store() as store:
        assert store.add_purchase("c", 5e-324, "0001-01-01T00:00:00Z", order_id="tiny")
        assert store.add_purchase("c", 1.7976931348623157e308, "9999-12-31T23:59:59Z", order_id="huge")
        assert store.add_purchase(MB, 1.0, datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=14))),
                                  order_id=MB + "id")
        rows = dict(store.conn.execute("SELECT event_id, order_value FROM purchases"))
        assert rows["tiny"] == 5e-324 and rows["huge"] == 1.7976931348623157e308
        assert rows[MB + "id"] == 1.0
        times = dict(store.conn.execute("SELECT order_id, event_time FROM purchases_readable"))
        assert times["tiny"].startswith("0001-01-01") and times["huge"].startswith("9999-12-31")
        assert store.get_total_purchase_value(MB, as_of="2024-01-02T00:00:00Z") == 1.0
        assert math.isinf(store.get_total_purchase_value("c", as_of="9999-12-31T23:59:59Z")) is False


@pytest.mark.long
@pytest.mark.parametrize("method", sorted(set(SINGLE) | set(BULK)))
def test_hostile_long(method):
    if method in SINGLE:
        single_calls(method, LONG_EXAMPLES)
        single_strict(method, LONG_EXAMPLES // 3)
    if method in BULK:
        bulk_calls(method, LONG_EXAMPLES)
        bulk_strict(method, LONG_EXAMPLES // 3)


# -- loader formats: hostile files --------------------------------------------------------
from store.errors import LoadError  # noqa: E402

LOADER_KINDS = ["purchases", "sessions", "carts", "support", "customers", "refunds",
                "online-retail", "rees46", "incidents"]
cell = st.one_of(
    st.sampled_from(["", "17850", "17850.0", "1.5", "-3", "NaN", "inf", "1e999", "2024-05-01T10:00:00Z",
                     "0001-01-01", "9999-12-31T23:59:59+14:00", "abandoned", "converted", "view", "purchase",
                     "\"", "\"\"", "a,b", "a\tb", "line\nbreak", "\r", "\x00", "\ud800", "x" * 5000,
                     "C536379", "'; DROP TABLE purchases; --"]),
    st.text(max_size=12))
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), cell),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(cell, inner, max_size=3)), max_leaves=8)


def header_for(kind):
    from store import loaders
    if kind in loaders.GENERIC:
        return list(loaders.GENERIC[kind].fields)
    return list(loaders.PRESET[kind].columns)


def encode(text):
    """UTF-8, with lone surrogates written as the invalid bytes they would be (invalid UTF-8)."""
    return text.encode("utf-8", "surrogatepass")


@st.composite
def hostile_file(draw, kind):
    fmt = draw(st.sampled_from(["csv", "tsv", "json", "ndjson"]))
    header = header_for(kind)
    if draw(st.booleans()):
        header = header + draw(st.lists(cell, max_size=2))
    if draw(st.integers(0, 9)) == 0:
        header = draw(st.lists(cell, max_size=4))  # wrong columns altogether
    n = draw(st.integers(0, 8))
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        lines = [sep.join(header)]
        for _ in range(n):
            cells = draw(st.lists(cell, min_size=0, max_size=len(header) + 2))
            if draw(st.booleans()):
                cells = ['"' + c.replace('"', '""') + '"' for c in cells]
            lines.append(sep.join(cells))
        data = encode("\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n", "\n\n"])))
    else:
        records = draw(st.lists(st.one_of(
            st.fixed_dictionaries({}, optional={h: json_value for h in header}), json_value), max_size=n))
        if fmt == "json":
            text = json.dumps(records, ensure_ascii=draw(st.booleans()))
        else:
            text = "\n".join(json.dumps(r, ensure_ascii=False) for r in records)
        data = encode(text)
    if draw(st.integers(0, 4)) == 0:  # broken bytes: truncated, invalid UTF-8, binary garbage
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=8)) + draw(st.sampled_from([b"", b"\xff\xfe", b"\xc3", b"\x00"]))
    return fmt, data


def loader_calls(kind, examples, tmp_path_factory):
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(spec=hostile_file(kind), named=st.booleans())
    def run(spec, named):
        fmt, data = spec
        path = tmp_path_factory.mktemp("hostile") / (f"in.{fmt}" if named else "in.dat")
        path.write_bytes(data)
        with new_store() as store:
            rejected0 = store.conn.execute("SELECT count(*) FROM rejected_events").fetchone()[0]
            try:
                report = store.load(kind, path, fmt=None if named else fmt)
            except LoadError as exc:  # the documented file-level error, with a message
                assert str(exc)
                STATS["offered"] += 1
                STATS["rejected"] += 1
                return
            assert report.read == report.accepted + report.rejected + report.duplicates, report.as_dict()
            assert min(report.accepted, report.rejected, report.duplicates) >= 0
            rejected = store.conn.execute("SELECT count(*) FROM rejected_events").fetchone()[0] - rejected0
            assert rejected == report.rejected
            check_reasons(store)
            assert all(reason for reason in report.rejected_by_reason)
            assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            STATS["offered"] += report.read
            for key in ("accepted", "rejected", "duplicates"):
                STATS[key] += getattr(report, key)

    run()


@pytest.mark.parametrize("kind", LOADER_KINDS)
def test_loader_formats_never_crash(kind, tmp_path_factory):
    loader_calls(kind, EXAMPLES, tmp_path_factory)


@pytest.mark.long
@pytest.mark.parametrize("kind", LOADER_KINDS)
def test_loader_formats_never_crash_long(kind, tmp_path_factory):
    loader_calls(kind, LONG_EXAMPLES, tmp_path_factory)


def test_report_figures(capsys):
    """Prints the inputs tried by this module (run with -n 0 -s; collected last in the file)."""
    with capsys.disabled():
        print(f"\nRELIABILITY hostile: {STATS}")
    assert sqlite3.sqlite_version


@pytest.mark.long
def test_report_figures_long(capsys):
    """The same figures after the long variants (collected last: run with -n 0 -m long -s)."""
    with capsys.disabled():
        print(f"\nRELIABILITY hostile (long): {STATS}")
