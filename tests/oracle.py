"""A plain-Python oracle of the seed features (issue 2), for tests.

Deliberately simple: every feature is computed by filtering plain lists of
event dicts in Python, straight from the rules of the issue, with no SQL and
no code shared with the store. Other test modules import it.

Events are dicts with the argument names of the ``add_*`` methods plus a
``time`` key holding a ``datetime`` (aware; a naive one is local time, like
the store's rule):

* purchase: ``customer_id``, ``order_value``, ``time``
* session: ``customer_id``, ``duration_seconds``, ``device_type`` (None or ''
  means ``'unknown'``), ``time``
* cart event: ``customer_id``, ``event_type`` ('abandoned' / 'converted'),
  ``cart_value`` (may be None), ``time``
* support interaction: ``customer_id``, ``ticket_id``, ``response_time_hours``
  (may be None), ``escalated`` (bool), ``time``

Customer ids are compared as given (use strings). Events are assumed to be
distinct (no natural-key duplicates) and valid.

Rules:

* an event counts when ``time <= as_of``;
* a window of ``days`` (> 0) keeps ``time >= as_of - timedelta(days=days)``;
  ``days`` None or <= 0 means all time up to ``as_of``;
* except the two frequencies: count in the window / (days / 30), ``days=None``
  meaning 30 and 0.0 when ``days <= 0``;
* recency: whole days (floor) from the last purchase at or before as_of;
* primary device: most sessions in the window; a tie goes to the device whose
  first session in the window is earliest, then to the device name;
* the trade-off rules use the 30- and 90-day windows of the issue; a recency
  of None never counts as more than 60 days.
"""

import math
from datetime import datetime, timedelta, timezone

UTC = timezone.utc
AS_OF = datetime(2025, 6, 1, tzinfo=UTC)

# The thresholds of the issue (written out here independently of the store).
SHORT_DAYS = 30
LONG_DAYS = 90
DECLINING_RATIO = 0.7
SUPPORT_ESCALATION_RATIO = 0.5
SUPPORT_MAX_TICKETS = 3
CART_MIN_CONVERSION_RATIO = 0.3
CART_MAX_ABANDONED = 2
RECENCY_CONCERN_DAYS = 60

ALL_FEATURE_KEYS = (
    "purchase_frequency", "average_order_value", "purchase_recency_days", "total_purchase_value",
    "session_frequency", "average_session_duration", "device_usage_pattern", "primary_device",
    "abandoned_cart_count", "cart_conversion_ratio", "abandoned_cart_value", "support_ticket_count",
    "average_response_time_hours", "escalation_count", "escalation_ratio", "activity_retention_tradeoff",
)
TRADEOFF_KEYS = ("high_short_term_activity", "declining_engagement", "support_risk",
                 "cart_abandonment_risk", "retention_concern", "activity_trend")
# The numeric, non-boolean top-level features (averaged by get_cohort_summary).
NUMERIC_FEATURES = (
    "purchase_frequency", "average_order_value", "purchase_recency_days", "total_purchase_value",
    "session_frequency", "average_session_duration", "abandoned_cart_count", "cart_conversion_ratio",
    "abandoned_cart_value", "support_ticket_count", "average_response_time_hours", "escalation_count",
    "escalation_ratio",
)


def utc(dt):
    """An instant as an aware UTC datetime (a naive one is local time)."""
    return dt.astimezone(UTC)


def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else None


# -- selecting events ---------------------------------------------------------------
def up_to(events, customer_id, as_of):
    """The customer's events with time <= as_of."""
    as_of = utc(as_of)
    return [e for e in events if e["customer_id"] == customer_id and utc(e["time"]) <= as_of]


def in_window(events, customer_id, days, as_of):
    """The customer's events in the window; days None or <= 0 = all time up to as_of."""
    kept = up_to(events, customer_id, as_of)
    if days is None or days <= 0:
        return kept
    start = utc(as_of) - timedelta(days=days)
    return [e for e in kept if utc(e["time"]) >= start]


def frequency(events, customer_id, days, as_of):
    """Events in the last ``days`` per 30 days; days None = 30; 0.0 when days <= 0."""
    if days is None:
        days = 30
    if days <= 0:
        return 0.0
    start = utc(as_of) - timedelta(days=days)
    count = len([e for e in up_to(events, customer_id, as_of) if utc(e["time"]) >= start])
    return count / (days / 30)


def device_of(session):
    return session.get("device_type") or "unknown"


# -- purchases ------------------------------------------------------------------------
def purchase_frequency(purchases, customer_id, days=30, as_of=AS_OF):
    return frequency(purchases, customer_id, days, as_of)


def average_order_value(purchases, customer_id, days=None, as_of=AS_OF):
    m = mean(float(p["order_value"]) for p in in_window(purchases, customer_id, days, as_of))
    return 0.0 if m is None else m


def purchase_recency(purchases, customer_id, as_of=AS_OF):
    times = [utc(p["time"]) for p in up_to(purchases, customer_id, as_of)]
    if not times:
        return None
    return (utc(as_of) - max(times)) // timedelta(days=1)


def total_purchase_value(purchases, customer_id, days=None, as_of=AS_OF):
    return float(sum(float(p["order_value"]) for p in in_window(purchases, customer_id, days, as_of)))


# -- sessions -------------------------------------------------------------------------
def session_frequency(sessions, customer_id, days=30, as_of=AS_OF):
    return frequency(sessions, customer_id, days, as_of)


def average_session_duration(sessions, customer_id, days=None, as_of=AS_OF):
    m = mean(float(s["duration_seconds"]) for s in in_window(sessions, customer_id, days, as_of))
    return 0.0 if m is None else m


def device_usage_pattern(sessions, customer_id, days=None, as_of=AS_OF):
    """{device: count}, most used first; ties: earliest first session, then name."""
    counts, first = {}, {}
    for s in in_window(sessions, customer_id, days, as_of):
        device = device_of(s)
        counts[device] = counts.get(device, 0) + 1
        t = utc(s["time"])
        if device not in first or t < first[device]:
            first[device] = t
    order = sorted(counts, key=lambda d: (-counts[d], first[d], d))
    return {d: counts[d] for d in order}


def primary_device(sessions, customer_id, days=None, as_of=AS_OF):
    pattern = device_usage_pattern(sessions, customer_id, days, as_of)
    return next(iter(pattern), None)


# -- carts ----------------------------------------------------------------------------
def abandoned_cart_count(carts, customer_id, days=None, as_of=AS_OF):
    return len([c for c in in_window(carts, customer_id, days, as_of) if c["event_type"] == "abandoned"])


def cart_conversion_ratio(carts, customer_id, days=None, as_of=AS_OF):
    kept = in_window(carts, customer_id, days, as_of)
    if not kept:
        return 0.0
    return len([c for c in kept if c["event_type"] == "converted"]) / len(kept)


def abandoned_cart_value(carts, customer_id, days=None, as_of=AS_OF):
    return float(sum(float(c["cart_value"]) for c in in_window(carts, customer_id, days, as_of)
                     if c["event_type"] == "abandoned" and c.get("cart_value") is not None))


# -- support --------------------------------------------------------------------------
def support_ticket_count(tickets, customer_id, days=None, as_of=AS_OF):
    return len(in_window(tickets, customer_id, days, as_of))


def average_response_time(tickets, customer_id, days=None, as_of=AS_OF):
    return mean(float(t["response_time_hours"]) for t in in_window(tickets, customer_id, days, as_of)
                if t.get("response_time_hours") is not None)


def escalation_count(tickets, customer_id, days=None, as_of=AS_OF):
    return len([t for t in in_window(tickets, customer_id, days, as_of) if t.get("escalated")])


def escalation_ratio(tickets, customer_id, days=None, as_of=AS_OF):
    kept = in_window(tickets, customer_id, days, as_of)
    if not kept:
        return 0.0
    return len([t for t in kept if t.get("escalated")]) / len(kept)


# -- rules ----------------------------------------------------------------------------
def activity_retention_tradeoff(purchases, sessions, carts, tickets, customer_id, as_of=AS_OF):
    p30 = purchase_frequency(purchases, customer_id, SHORT_DAYS, as_of)
    p90 = purchase_frequency(purchases, customer_id, LONG_DAYS, as_of)
    s30 = session_frequency(sessions, customer_id, SHORT_DAYS, as_of)
    high = p30 > 0 and s30 > 0
    declining = p30 > 0 and p90 > 0 and (p30 / p90) < DECLINING_RATIO
    support_risk = (escalation_ratio(tickets, customer_id, SHORT_DAYS, as_of) > SUPPORT_ESCALATION_RATIO
                    or support_ticket_count(tickets, customer_id, SHORT_DAYS, as_of) > SUPPORT_MAX_TICKETS)
    cart_risk = (cart_conversion_ratio(carts, customer_id, SHORT_DAYS, as_of) < CART_MIN_CONVERSION_RATIO
                 and abandoned_cart_count(carts, customer_id, SHORT_DAYS, as_of) > CART_MAX_ABANDONED)
    recency = purchase_recency(purchases, customer_id, as_of)
    concern = (recency is not None and recency > RECENCY_CONCERN_DAYS) or support_risk or cart_risk or declining
    trend = "declining" if declining else ("stable" if high else "inactive")
    return {
        "high_short_term_activity": high,
        "declining_engagement": declining,
        "support_risk": support_risk,
        "cart_abandonment_risk": cart_risk,
        "retention_concern": concern,
        "activity_trend": trend,
    }


def all_features(purchases, sessions, carts, tickets, customer_id, days=None, as_of=AS_OF, metadata=None):
    """get_all_features: frequencies use ``days or 30``; recency and the trade-off ignore days.

    ``metadata``: the customer's stored metadata dict, or None when never set.
    """
    freq_days = days or 30
    features = {
        "purchase_frequency": purchase_frequency(purchases, customer_id, freq_days, as_of),
        "average_order_value": average_order_value(purchases, customer_id, days, as_of),
        "purchase_recency_days": purchase_recency(purchases, customer_id, as_of),
        "total_purchase_value": total_purchase_value(purchases, customer_id, days, as_of),
        "session_frequency": session_frequency(sessions, customer_id, freq_days, as_of),
        "average_session_duration": average_session_duration(sessions, customer_id, days, as_of),
        "device_usage_pattern": device_usage_pattern(sessions, customer_id, days, as_of),
        "primary_device": primary_device(sessions, customer_id, days, as_of),
        "abandoned_cart_count": abandoned_cart_count(carts, customer_id, days, as_of),
        "cart_conversion_ratio": cart_conversion_ratio(carts, customer_id, days, as_of),
        "abandoned_cart_value": abandoned_cart_value(carts, customer_id, days, as_of),
        "support_ticket_count": support_ticket_count(tickets, customer_id, days, as_of),
        "average_response_time_hours": average_response_time(tickets, customer_id, days, as_of),
        "escalation_count": escalation_count(tickets, customer_id, days, as_of),
        "escalation_ratio": escalation_ratio(tickets, customer_id, days, as_of),
        "activity_retention_tradeoff": activity_retention_tradeoff(
            purchases, sessions, carts, tickets, customer_id, as_of),
    }
    if metadata is not None:
        features["metadata"] = metadata
    return features


class Oracle:
    """The oracle with the store's method names, over events held in lists.

    ``add_*`` take the same positional arguments as the store, with the date as
    a datetime; getters take ``as_of`` (default ``AS_OF``). Falsy ids give the
    empty value, as in the store.
    """

    def __init__(self):
        self.purchases, self.sessions, self.carts, self.tickets = [], [], [], []
        self.metadata = {}

    # ingest (valid events only)
    def add_purchase(self, customer_id, order_value, purchase_date):
        self.purchases.append({"customer_id": customer_id, "order_value": order_value, "time": purchase_date})

    def add_session(self, customer_id, duration_seconds, device_type, session_date):
        self.sessions.append({"customer_id": customer_id, "duration_seconds": duration_seconds,
                              "device_type": device_type, "time": session_date})

    def add_cart_event(self, customer_id, event_type, cart_value, event_date):
        self.carts.append({"customer_id": customer_id, "event_type": event_type, "cart_value": cart_value,
                           "time": event_date})

    def add_support_interaction(self, customer_id, ticket_id, response_time_hours, escalated, interaction_date):
        self.tickets.append({"customer_id": customer_id, "ticket_id": ticket_id,
                             "response_time_hours": response_time_hours, "escalated": bool(escalated),
                             "time": interaction_date})

    def set_customer_metadata(self, customer_id, metadata):
        self.metadata[customer_id] = metadata

    # getters
    def get_purchase_frequency(self, customer_id, days=30, *, as_of=AS_OF):
        return purchase_frequency(self.purchases, customer_id, days, as_of) if customer_id else 0.0

    def get_average_order_value(self, customer_id, days=None, *, as_of=AS_OF):
        return average_order_value(self.purchases, customer_id, days, as_of) if customer_id else 0.0

    def get_purchase_recency(self, customer_id, *, as_of=AS_OF):
        return purchase_recency(self.purchases, customer_id, as_of) if customer_id else None

    def get_total_purchase_value(self, customer_id, days=None, *, as_of=AS_OF):
        return total_purchase_value(self.purchases, customer_id, days, as_of) if customer_id else 0.0

    def get_session_frequency(self, customer_id, days=30, *, as_of=AS_OF):
        return session_frequency(self.sessions, customer_id, days, as_of) if customer_id else 0.0

    def get_average_session_duration(self, customer_id, days=None, *, as_of=AS_OF):
        return average_session_duration(self.sessions, customer_id, days, as_of) if customer_id else 0.0

    def get_device_usage_pattern(self, customer_id, days=None, *, as_of=AS_OF):
        return device_usage_pattern(self.sessions, customer_id, days, as_of) if customer_id else {}

    def get_primary_device(self, customer_id, days=None, *, as_of=AS_OF):
        return primary_device(self.sessions, customer_id, days, as_of) if customer_id else None

    def get_abandoned_cart_count(self, customer_id, days=None, *, as_of=AS_OF):
        return abandoned_cart_count(self.carts, customer_id, days, as_of) if customer_id else 0

    def get_cart_conversion_ratio(self, customer_id, days=None, *, as_of=AS_OF):
        return cart_conversion_ratio(self.carts, customer_id, days, as_of) if customer_id else 0.0

    def get_abandoned_cart_value(self, customer_id, days=None, *, as_of=AS_OF):
        return abandoned_cart_value(self.carts, customer_id, days, as_of) if customer_id else 0.0

    def get_support_ticket_count(self, customer_id, days=None, *, as_of=AS_OF):
        return support_ticket_count(self.tickets, customer_id, days, as_of) if customer_id else 0

    def get_average_response_time(self, customer_id, days=None, *, as_of=AS_OF):
        return average_response_time(self.tickets, customer_id, days, as_of) if customer_id else None

    def get_escalation_count(self, customer_id, days=None, *, as_of=AS_OF):
        return escalation_count(self.tickets, customer_id, days, as_of) if customer_id else 0

    def get_escalation_ratio(self, customer_id, days=None, *, as_of=AS_OF):
        return escalation_ratio(self.tickets, customer_id, days, as_of) if customer_id else 0.0

    def get_activity_retention_tradeoff(self, customer_id, *, as_of=AS_OF):
        if not customer_id:
            return {}
        return activity_retention_tradeoff(self.purchases, self.sessions, self.carts, self.tickets,
                                           customer_id, as_of)

    def get_all_features(self, customer_id, days=None, *, as_of=AS_OF):
        if not customer_id:
            return {}
        return all_features(self.purchases, self.sessions, self.carts, self.tickets, customer_id, days,
                            as_of, self.metadata.get(customer_id))

    def get_cohort_features(self, customer_ids, days=None, *, as_of=AS_OF):
        result = {}
        for cid in customer_ids:
            if cid and cid not in result:
                result[cid] = self.get_all_features(cid, days, as_of=as_of)
        return result

    def get_cohort_summary(self, customer_ids, days=None, *, as_of=AS_OF):
        cohort = self.get_cohort_features(customer_ids, days, as_of=as_of)
        aggregates = {}
        for key in NUMERIC_FEATURES:
            values = [f[key] for f in cohort.values() if f[key] is not None]
            if values:
                aggregates[key] = sum(values) / len(values)
        return {"size": len(cohort), "aggregates": aggregates}


# The single getters: (method name, whether it takes ``days``).
GETTERS = (
    ("get_purchase_frequency", True),
    ("get_average_order_value", True),
    ("get_purchase_recency", False),
    ("get_total_purchase_value", True),
    ("get_session_frequency", True),
    ("get_average_session_duration", True),
    ("get_device_usage_pattern", True),
    ("get_primary_device", True),
    ("get_abandoned_cart_count", True),
    ("get_cart_conversion_ratio", True),
    ("get_abandoned_cart_value", True),
    ("get_support_ticket_count", True),
    ("get_average_response_time", True),
    ("get_escalation_count", True),
    ("get_escalation_ratio", True),
    ("get_activity_retention_tradeoff", False),
)


def assert_same(actual, expected, path="value", ordered=False):
    """Deep equality with exact types (int is not float, bool is not int); floats
    compared with math.isclose(rel_tol=1e-9, abs_tol=1e-9). Dict keys are
    compared as sets, and also in order when ``ordered`` is true or for a dict
    under the key ``device_usage_pattern`` (most used first)."""
    if expected is None:
        assert actual is None, f"{path}: expected None, got {actual!r}"
    elif isinstance(expected, bool):
        assert type(actual) is bool and actual == expected, f"{path}: expected {expected!r}, got {actual!r}"
    elif isinstance(expected, int):
        assert type(actual) is int and actual == expected, f"{path}: expected int {expected!r}, got {actual!r}"
    elif isinstance(expected, float):
        assert type(actual) is float, f"{path}: expected a float, got {actual!r}"
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9), \
            f"{path}: expected {expected!r}, got {actual!r}"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected a dict, got {actual!r}"
        if ordered:
            assert list(actual) == list(expected), f"{path}: keys {list(actual)} != expected {list(expected)}"
        else:
            assert set(actual) == set(expected), f"{path}: keys {sorted(map(str, actual))} != expected " \
                                                 f"{sorted(map(str, expected))}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}[{key!r}]", ordered=(key == "device_usage_pattern"))
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected), \
            f"{path}: expected {expected!r}, got {actual!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{path}[{i}]")
    else:
        assert type(actual) is type(expected) and actual == expected, \
            f"{path}: expected {expected!r}, got {actual!r}"
