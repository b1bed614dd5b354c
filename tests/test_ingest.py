"""Ingest: validation, rejections with reasons, strict mode, bulk counts, duplicates, metadata."""

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer_activity_features import CustomerActivityFeatures, InvalidEventError
from oracle import AS_OF

DATE = "2025-05-01T12:00:00Z"
TABLES = {"purchase": "purchases", "session": "sessions", "cart_event": "cart_events",
          "support_interaction": "support_interactions"}


@pytest.fixture
def store():
    with CustomerActivityFeatures() as s:
        yield s


def count(store, table):
    store.flush()
    return store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def rejected(store):
    store.flush()
    return [(kind, json.loads(payload), reason) for kind, payload, reason in
            store.conn.execute("SELECT kind, payload, reason FROM rejected_events ORDER BY id")]


def stored_events(store):
    return sum(count(store, t) for t in TABLES.values())


# One call per kind with valid values, given a dict of overrides: (kind, callable).
def call(store, kind, **over):
    if kind == "purchase":
        a = {"customer_id": "c", "order_value": 10.0, "purchase_date": DATE} | over
        return store.add_purchase(a["customer_id"], a["order_value"], a["purchase_date"])
    if kind == "session":
        a = {"customer_id": "c", "duration_seconds": 60, "device_type": "mobile", "session_date": DATE} | over
        return store.add_session(a["customer_id"], a["duration_seconds"], a["device_type"], a["session_date"])
    if kind == "cart_event":
        a = {"customer_id": "c", "event_type": "abandoned", "cart_value": 5.0, "event_date": DATE} | over
        return store.add_cart_event(a["customer_id"], a["event_type"], a["cart_value"], a["event_date"])
    a = {"customer_id": "c", "ticket_id": None, "response_time_hours": 1.0, "escalated": False,
         "interaction_date": DATE} | over
    return store.add_support_interaction(a["customer_id"], a["ticket_id"], a["response_time_hours"],
                                         a["escalated"], a["interaction_date"])


AMOUNT_FIELD = {"purchase": "order_value", "session": "duration_seconds", "cart_event": "cart_value",
                "support_interaction": "response_time_hours"}
DATE_FIELD = {"purchase": "purchase_date", "session": "session_date", "cart_event": "event_date",
              "support_interaction": "interaction_date"}
BAD_AMOUNTS = [-1, -0.01, float("nan"), float("inf"), float("-inf"), True, False, "12.5", "abc", [1], {"v": 1},
               object(), 10 ** 400]
BAD_DATES = ["not a date", "2025-13-01T00:00:00Z", "2025-02-30", "", "   ", "yesterday", 1714564800, 3.5, [2025],
             "2025-05-01T12:00:00+25:00"]

INVALID = (
    [(kind, {"customer_id": bad}, "customer_id") for kind in TABLES for bad in ("", None)]
    + [(kind, {AMOUNT_FIELD[kind]: bad}, AMOUNT_FIELD[kind]) for kind in TABLES for bad in BAD_AMOUNTS]
    + [(kind, {AMOUNT_FIELD[kind]: None}, AMOUNT_FIELD[kind]) for kind in ("purchase", "session")]
    + [(kind, {DATE_FIELD[kind]: bad}, DATE_FIELD[kind]) for kind in TABLES for bad in BAD_DATES]
    + [("cart_event", {"event_type": bad}, "event_type") for bad in ("bought", "", None, 1, "abandoned ")]
)


def _id(case):
    kind, over, _ = case
    (key, value), = over.items()
    shown = repr(value) if isinstance(value, (bool, int, float, str, type(None))) else type(value).__name__
    return f"{kind}-{key}-{shown}"[:60]


@pytest.mark.parametrize("case", INVALID, ids=[_id(c) for c in INVALID])
def test_invalid_event_is_rejected_with_its_reason(store, case):
    kind, over, field = case
    assert call(store, kind, **over) is False
    assert stored_events(store) == 0
    rows = rejected(store)
    assert len(rows) == 1
    rkind, payload, reason = rows[0]
    assert rkind == kind
    assert reason.startswith(field + ":"), reason
    assert payload["customer_id"] == (over.get("customer_id", "c"))  # the raw payload is kept


@pytest.mark.parametrize("case", INVALID, ids=[_id(c) for c in INVALID])
def test_strict_store_raises_value_error_naming_the_field(case):
    kind, over, field = case
    with CustomerActivityFeatures(strict=True) as store:
        with pytest.raises(ValueError, match=field) as info:
            call(store, kind, **over)
        assert isinstance(info.value, InvalidEventError) and info.value.field == field
        assert stored_events(store) == 0


@pytest.mark.parametrize("kind", list(TABLES))
def test_valid_event_is_stored_and_returns_true(store, kind):
    assert call(store, kind) is True
    assert count(store, TABLES[kind]) == 1
    assert rejected(store) == []


def test_optional_values_may_be_none(store):
    assert store.add_cart_event("c", "converted", None, DATE) is True
    assert store.add_support_interaction("c", "t1", None, True, DATE) is True
    assert store.add_support_interaction("c", "t2", 0, None, DATE) is True  # escalated None = False
    assert store.add_purchase("c", 0, DATE) is True  # zero is not negative
    assert store.add_session("c", 0.0, None, DATE) is True
    assert rejected(store) == []


def test_numeric_types_are_accepted(store):
    assert store.add_purchase("c", 5, DATE) is True
    assert store.add_purchase("c", 2.5, DATE) is True
    from fractions import Fraction
    assert store.add_purchase("c", Fraction(1, 2), DATE) is True
    assert store.get_total_purchase_value("c", as_of=AS_OF) == 8.0


def test_rejection_payload_keeps_unusual_values_as_text(store):
    assert store.add_purchase("c", float("nan"), DATE) is False
    assert store.add_session("c", object(), "m", DATE) is False
    (_, p1, r1), (_, p2, r2) = rejected(store)
    assert p1["order_value"] == "nan" and r1 == "order_value: is NaN"
    assert p2["duration_seconds"].startswith("<object object") and r2.startswith("duration_seconds:")
    assert p1["purchase_date"] == DATE


def test_unknown_cart_type_reason(store):
    assert store.add_cart_event("c", "bought", 1.0, DATE) is False
    ((kind, payload, reason),) = rejected(store)
    assert kind == "cart_event" and payload["event_type"] == "bought" and reason.startswith("event_type:")


def test_every_rejection_is_recorded_once(store):
    for i, (kind, over, _) in enumerate(INVALID):
        assert call(store, kind, **over) is False
    rows = rejected(store)
    assert len(rows) == len(INVALID)
    assert [r[0] for r in rows] == [c[0] for c in INVALID]
    assert stored_events(store) == 0


# -- never raise: arbitrary values ------------------------------------------------------
anything = st.one_of(
    st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.sampled_from(["c", "2025-01-01T00:00:00Z", "2025-01-01T00:00:00+05:00", "abandoned", "converted",
                     "mobile", "\ud800", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]),
    st.datetimes(timezones=st.one_of(st.none(), st.just(timezone.utc))),
    st.dates(), st.lists(st.integers(), max_size=2), st.just(object()), st.just(Decimal("1.5")),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
METHODS = {"purchase": ("add_purchase", 3), "session": ("add_session", 4), "cart_event": ("add_cart_event", 4),
           "support_interaction": ("add_support_interaction", 5)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(METHODS)), st.lists(anything, min_size=5, max_size=5))
def test_add_never_raises_and_strict_raises_exactly_when_rejected(kind, values):
    method, arity = METHODS[kind]
    args = values[:arity]
    with CustomerActivityFeatures() as lenient, CustomerActivityFeatures(strict=True) as strict:
        result = getattr(lenient, method)(*args)
        assert result is True or result is False
        if result:
            assert stored_events(lenient) == 1 and rejected(lenient) == []
        else:
            assert stored_events(lenient) == 0 and len(rejected(lenient)) == 1
        try:
            strict_result = getattr(strict, method)(*args)
        except ValueError as exc:
            assert isinstance(exc, InvalidEventError)
            assert not result, "strict raised for an event the lenient store accepted"
            assert exc.field in str(exc)
            assert (rejected(lenient)[0][2]).startswith(exc.field + ":")
        else:
            assert strict_result is result is True


# -- duplicates by natural key -------------------------------------------------------------
def test_single_duplicates_are_never_stored_twice(store):
    assert store.add_purchase("c", 1.0, DATE, order_id="o1") is True
    assert store.add_purchase("c", 2.0, DATE, order_id="o1") is False
    assert store.add_session("c", 1, "m", DATE, session_id="s1") is True
    assert store.add_session("c", 9, "m", DATE, session_id="s1") is False
    assert store.add_cart_event("c", "abandoned", 1.0, DATE, cart_id="k1") is True
    assert store.add_cart_event("c", "abandoned", 1.0, DATE, cart_id="k1") is False
    assert store.add_support_interaction("c", "t1", 1.0, False, DATE) is True
    assert store.add_support_interaction("c", "t1", 5.0, True, DATE) is False
    for table in TABLES.values():
        assert count(store, table) == 1
    assert rejected(store) == []  # a duplicate is not a rejection
    assert store.get_total_purchase_value("c", as_of=AS_OF) == 1.0  # the first one is kept
    assert store.get_escalation_count("c", as_of=AS_OF) == 0


def test_without_natural_key_equal_events_are_distinct(store):
    assert store.add_purchase("c", 1.0, DATE) is True
    assert store.add_purchase("c", 1.0, DATE) is True
    assert count(store, "purchases") == 2


def test_integer_and_text_natural_keys_are_the_same_key(store):
    assert store.add_purchase("c", 1.0, DATE, order_id=7) is True
    assert store.add_purchase("c", 1.0, DATE, order_id="7") is False


BULK = {
    "purchase": ("add_purchases", lambda i, key: {"customer_id": f"c{i % 3}", "order_value": float(i),
                                                  "purchase_date": DATE, "order_id": key}),
    "session": ("add_sessions", lambda i, key: {"customer_id": "c", "duration_seconds": i, "device_type": "m",
                                                "session_date": DATE, "session_id": key}),
    "cart_event": ("add_cart_events", lambda i, key: {"customer_id": "c", "event_type": "converted",
                                                      "cart_value": None, "event_date": DATE, "cart_id": key}),
    "support_interaction": ("add_support_interactions", lambda i, key: {
        "customer_id": "c", "ticket_id": key, "response_time_hours": 1.0, "escalated": True,
        "interaction_date": DATE}),
}


@pytest.mark.parametrize("kind", list(BULK))
def test_bulk_duplicates_within_and_across_loads(store, kind):
    method, make = BULK[kind]
    records = [make(i, f"k{i % 4}") for i in range(10)]  # 4 distinct keys
    r1 = getattr(store, method)(records, batch_size=3)
    assert (r1.accepted, r1.rejected, r1.duplicates, r1.offered) == (4, 0, 6, 10)
    r2 = getattr(store, method)(records)
    assert (r2.accepted, r2.rejected, r2.duplicates) == (0, 0, 10)
    assert count(store, TABLES[kind]) == 4


def test_bulk_after_single_sees_the_single_key(store):
    store.add_purchase("c", 1.0, DATE, order_id="o1")  # buffered, not yet committed
    r = store.add_purchases([{"customer_id": "c", "order_value": 1.0, "order_id": "o1"}])
    assert (r.accepted, r.duplicates) == (0, 1)


# -- bulk counts: accepted + rejected + duplicates = offered ---------------------------------------
def _bulk_record(kind):
    method, make = BULK[kind]
    valid = st.builds(make, st.integers(0, 50), st.one_of(st.none(), st.sampled_from(["a", "b", "c", 5])))
    broken = st.builds(lambda r, key, value: {**r, key: value}, valid,
                       st.sampled_from(sorted(make(0, None))), anything)
    return st.one_of(valid, broken, st.just({}), st.just(None), st.just("text"), st.just([1, 2]),
                     st.builds(lambda r: {**r, "unexpected": 1}, valid))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(BULK)).flatmap(
    lambda kind: st.tuples(st.just(kind), st.lists(_bulk_record(kind), max_size=25), st.integers(1, 7))))
def test_bulk_counts_add_up(case):
    kind, records, batch_size = case
    method = BULK[kind][0]
    with CustomerActivityFeatures() as store:
        result = getattr(store, method)(iter(records), batch_size=batch_size)
        assert result.accepted + result.rejected + result.duplicates == len(records) == result.offered
        assert count(store, TABLES[kind]) == result.accepted
        rows = rejected(store)
        # every rejected offer is counted; equal offers (same payload and reason) are stored once
        stored = {(json.dumps(payload), reason) for _, payload, reason in rows}
        assert len(stored) == len(rows) <= result.rejected and bool(rows) == bool(result.rejected)
        assert {reason for _, reason in stored} == set(result.rejected_by_reason)
        assert sum(result.rejected_by_reason.values()) == result.rejected
        assert all(kind_ == kind for kind_, _, _ in rows)
        # loading the same records again adds nothing with a natural key, and no rejection
        again = getattr(store, method)(records, batch_size=batch_size)
        assert again.accepted + again.rejected + again.duplicates == len(records)
        assert (again.rejected, again.rejected_by_reason) == (result.rejected, result.rejected_by_reason)
        assert rejected(store) == rows
        keyed_new = count(store, TABLES[kind]) - result.accepted
        assert again.accepted == keyed_new


def test_bulk_rejections_name_their_reason(store):
    result = store.add_purchases([
        {"customer_id": "c", "order_value": 1.0, "purchase_date": DATE},
        {"customer_id": "", "order_value": 1.0},
        {"customer_id": "c", "order_value": -3},
        {"customer_id": "c", "order_value": 1.0, "purchase_date": "nope"},
        "not a dict",
        {"customer_id": "c", "order_value": 1.0, "colour": "red"},
    ])
    assert (result.accepted, result.rejected, result.duplicates) == (1, 5, 0)
    reasons = [r[2] for r in rejected(store)]
    assert [r.split(":")[0] for r in reasons] == ["customer_id", "order_value", "purchase_date", "record", "record"]
    assert result.as_dict()["offered"] == 6


def test_strict_error_names_the_field_once():
    with CustomerActivityFeatures(strict=True) as store:
        with pytest.raises(InvalidEventError) as info:
            store.add_purchase("c", -1, DATE)
        assert str(info.value) == "order_value: is negative"
        assert (info.value.field, info.value.reason) == ("order_value", "is negative")
        with pytest.raises(InvalidEventError) as info:
            store.add_sessions([{"customer_id": "c", "duration_seconds": 1},
                                {"customer_id": "c", "duration_seconds": float("nan")}])
        assert str(info.value) == "duration_seconds: record 1: is NaN"


def test_bulk_strict_raises_value_error_naming_the_field():
    with CustomerActivityFeatures(strict=True) as store:
        with pytest.raises(ValueError, match="order_value"):
            store.add_purchases([{"customer_id": "c", "order_value": 1.0},
                                 {"customer_id": "c", "order_value": float("inf")}])


# -- metadata ---------------------------------------------------------------------------------
def metadata(store, cid):
    store.flush()
    row = store.conn.execute("SELECT metadata FROM customers WHERE customer_id = ?", [cid]).fetchone()
    return None if row is None else json.loads(row[0])


class Thing:
    def __str__(self):
        return "a thing"


def test_metadata_replaces(store):
    assert store.set_customer_metadata("c", {"a": 1, "b": 2}) is True
    assert store.set_customer_metadata("c", {"c": 3}) is True
    assert metadata(store, "c") == {"c": 3}
    assert store.get_all_features("c", as_of=AS_OF)["metadata"] == {"c": 3}


def test_metadata_values(store):
    aware = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    naive = datetime(2025, 1, 2, 3, 4, 5, 600000)
    meta = {"signup": aware, "seen": naive, "day": date(2024, 2, 29), "nested": {"list": [1, "x", {"d": aware}]},
            "tuple": (1, 2), "thing": Thing(), "price": Decimal("9.99"), "none": None, "flag": True, "n": 1.5,
            "tags": ["a", "b"]}
    assert store.set_customer_metadata("c", meta) is True
    assert metadata(store, "c") == {
        "signup": "2025-01-02T03:04:05+00:00", "seen": "2025-01-02T03:04:05.600000", "day": "2024-02-29",
        "nested": {"list": [1, "x", {"d": "2025-01-02T03:04:05+00:00"}]}, "tuple": [1, 2], "thing": "a thing",
        "price": "9.99", "none": None, "flag": True, "n": 1.5, "tags": ["a", "b"]}


@pytest.mark.parametrize("bad", [None, [1, 2], "text", 5, ("a", 1), Thing()])
def test_non_dict_metadata_becomes_empty_dict(store, bad):
    assert store.set_customer_metadata("c", bad) is True
    assert metadata(store, "c") == {}
    assert store.get_all_features("c", as_of=AS_OF)["metadata"] == {}


def test_non_finite_metadata_floats_are_text(store):
    store.set_customer_metadata("c", {"x": float("nan"), "y": float("inf")})
    assert metadata(store, "c") == {"x": "nan", "y": "inf"}


@pytest.mark.parametrize("falsy", ["", None])
def test_metadata_of_empty_customer_id_is_rejected(store, falsy):
    assert store.set_customer_metadata(falsy, {"a": 1}) is False
    ((kind, payload, reason),) = rejected(store)
    assert kind == "customer" and reason.startswith("customer_id:") and payload["metadata"] == {"a": 1}
    with CustomerActivityFeatures(strict=True) as strict:
        with pytest.raises(ValueError, match="customer_id"):
            strict.set_customer_metadata(falsy, {"a": 1})


def test_bulk_metadata_counts(store):
    result = store.set_customers_metadata([
        {"customer_id": "a", "metadata": {"x": 1}},
        {"customer_id": "b", "metadata": [1]},
        {"customer_id": "", "metadata": {}},
        "not a dict",
        {"customer_id": "a", "metadata": {"x": 2}},
    ])
    assert result.accepted + result.rejected + result.duplicates == 5
    assert result.rejected == 2
    assert metadata(store, "a") == {"x": 2} and metadata(store, "b") == {}
