"""A plain-Python oracle of the behaviour features (issue 5), and the hypothesis
strategy and helpers the tests/test_behavior_*.py property tests share.

Written from the definitions in docs/behavior.md, with no SQL and no code
shared with the store (the constants are written out again below). Times are
integers: microseconds since the epoch, UTC. Local times use zoneinfo.

A history is a dict of lists of event dicts (keys as the add_* methods take
them, plus ``time`` in microseconds and ``event_id``)::

    purchases:    customer_id, time, event_id, order_value
    sessions:     customer_id, time, event_id, duration_seconds, device_type, page_views, referrer, channel
    interactions: customer_id, time, event_id, session_id, event_type, product_id, category, search_query
    attributions: customer_id, time, event_id (the order id), source
    carts:        customer_id, time, event_id, event_type, cart_value
    tickets:      customer_id, time, event_id, escalated
    created_at:   {customer_id: time}

Events are distinct (event ids unique per kind) and valid. ``None`` / ``''``
device types are stored as 'unknown'; '' texts as NULL (the oracle's inputs
are what the store keeps, see ``stored``).
"""

import math
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = 1_000_000
MINUTE = 60 * US
DAY = 86_400 * US
AS_OF = 1_748_736_000 * US  # 2025-06-01T00:00:00Z

# The constants of docs/behavior.md, written out independently of store.behavior.
MIN_SPAN_DAYS = 1
BOUNCE_MAX = 1
ENG_SESSIONS_CAP, ENG_DURATION_CAP, ENG_PAGES_CAP = 20, 600.0, 10.0
ENG_WEIGHTS = (0.4, 0.3, 0.3)
DISCOVERY_GAP = 30 * MINUTE
IMPULSE_WINDOW = 10 * MINUTE
COMPARISON_MIN = 2
LOYALTY_HALF = 90 * DAY
RFM_BINS = 5
NEW_DAYS = 30
RISK_POINTS = 25
PAGE_TYPES = ("page_view", "product_view", "category_view")
MOBILE = ("mobile", "tablet", "smartphone", "phone")
DESKTOP = ("desktop", "laptop", "pc")
# seed retention rules (issue 2)
SHORT, LONG = 30 * DAY, 90 * DAY
DECLINING_RATIO, SUPPORT_RATIO, SUPPORT_MAX, CART_MIN_CONV, CART_MAX_ABANDONED = 0.7, 0.5, 3, 0.3, 2
RECENCY_CONCERN_DAYS = 60

FAMILIES = {
    "purchase": ("total_purchases", "avg_purchase_value", "purchase_frequency", "purchase_consistency",
                 "seasonal_purchase_pattern"),
    "engagement": ("total_sessions", "avg_session_duration", "page_views_per_session", "bounce_rate",
                   "engagement_score"),
    "search": ("search_frequency", "search_query_diversity", "product_discovery_method", "category_exploration"),
    "shopping": ("cart_abandonment_rate", "checkout_completion_rate", "product_comparison_behavior",
                 "impulse_purchase_tendency"),
    "device": ("preferred_device", "channel_preference", "mobile_usage_pattern", "desktop_usage_pattern"),
    "temporal": ("preferred_shopping_time", "shopping_day_preference", "seasonal_behavior", "loyalty_trend"),
    "segmentation": ("customer_segment", "recency_score", "frequency_score", "monetary_score", "risk_score",
                     "historical_value", "account_age_days", "recency_risk", "declining_engagement",
                     "support_risk", "cart_abandonment_risk", "retention_concern"),
}
ALL_KEYS = tuple(k for keys in FAMILIES.values() for k in keys)


# -- small helpers -----------------------------------------------------------------------
def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else None


def ascii_lower(text):
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def most_common(items):
    """items: [(key, time)]; the key with most items, then earliest time, then smallest key; None if empty."""
    counts, first = {}, {}
    for key, time in items:
        counts[key] = counts.get(key, 0) + 1
        first[key] = min(first.get(key, time), time)
    if not counts:
        return None
    return min(counts, key=lambda k: (-counts[k], first[k], k))


def local(time_us, tz):
    return (EPOCH + timedelta(microseconds=time_us)).astimezone(ZoneInfo(tz))


def season(month):
    return {12: "winter", 1: "winter", 2: "winter", 3: "spring", 4: "spring", 5: "spring",
            6: "summer", 7: "summer", 8: "summer"}.get(month, "autumn")


def mine(events, customer_id, as_of):
    return sorted((e for e in events if e["customer_id"] == customer_id and e["time"] <= as_of),
                  key=lambda e: (e["time"], e["event_id"]))


def per_30_days(count, first_time, last_time):
    return count * 30.0 / max((last_time - first_time) / DAY, MIN_SPAN_DAYS)


# -- the oracle ----------------------------------------------------------------------------
def behavior_features(h, customer_id, as_of, tz="UTC"):
    """Every behaviour feature of one customer at ``as_of`` (microseconds)."""
    out = {}
    P = mine(h["purchases"], customer_id, as_of)
    S = mine(h["sessions"], customer_id, as_of)
    I = mine(h["interactions"], customer_id, as_of)
    A = mine(h["attributions"], customer_id, as_of)
    C = mine(h["carts"], customer_id, as_of)
    T = mine(h["tickets"], customer_id, as_of)

    # purchase
    out["total_purchases"] = len(P)
    out["avg_purchase_value"] = mean(p["order_value"] for p in P)
    out["purchase_frequency"] = per_30_days(len(P), P[0]["time"], P[-1]["time"]) if P else 0.0
    gaps = [(b["time"] - a["time"]) / DAY for a, b in zip(P, P[1:])]
    if not gaps:
        out["purchase_consistency"] = None
    else:
        m = sum(gaps) / len(gaps)
        v = sum((g - m) ** 2 for g in gaps) / len(gaps)
        out["purchase_consistency"] = 1.0 if m == 0 else m * m / (m * m + v)
    out["seasonal_purchase_pattern"] = most_common((season(local(p["time"], tz).month), p["time"]) for p in P)
    out["historical_value"] = float(sum(p["order_value"] for p in P))

    # engagement
    def pages(s):
        if s["page_views"] is not None:
            return s["page_views"]
        its = [i for i in I if i["session_id"] == s["event_id"]]
        return sum(i["event_type"] in PAGE_TYPES for i in its) if its else None

    known = [pg for pg in map(pages, S) if pg is not None]
    out["total_sessions"] = len(S)
    out["avg_session_duration"] = mean(s["duration_seconds"] for s in S)
    out["page_views_per_session"] = mean(known)
    out["bounce_rate"] = mean(1.0 if pg <= BOUNCE_MAX else 0.0 for pg in known)
    ws, wd, wp = ENG_WEIGHTS
    out["engagement_score"] = (ws * min(len(S) / ENG_SESSIONS_CAP, 1.0)
                               + wd * min((out["avg_session_duration"] or 0.0) / ENG_DURATION_CAP, 1.0)
                               + wp * min((out["page_views_per_session"] or 0.0) / ENG_PAGES_CAP, 1.0))

    # search and discovery
    searches = [i for i in I if i["event_type"] == "search"]
    out["search_frequency"] = per_30_days(len(searches), I[0]["time"], I[-1]["time"]) if I else 0.0
    queries = [ascii_lower(i["search_query"].strip(" ")) for i in searches if i["search_query"] is not None]
    queries = [q for q in queries if q != ""]
    out["search_query_diversity"] = len(set(queries)) / len(queries) if queries else None
    out["category_exploration"] = len({i["category"] for i in I if i["category"] is not None})

    def first_touch_index(product):
        return next(k for k, i in enumerate(I) if i["product_id"] == product)

    def path(product):
        k = first_touch_index(product)
        if k > 0:
            prev, v = I[k - 1], I[k]
            if v["time"] - prev["time"] <= DISCOVERY_GAP:
                if prev["event_type"] == "search":
                    return "search"
                if prev["event_type"] == "category_view":
                    return "category_browse"
        return "direct"

    bought = [i for i in I if i["event_type"] == "purchase" and i["product_id"] is not None]
    method = most_common((path(i["product_id"]), i["time"]) for i in bought)
    if method is None:
        source = most_common((a["source"], a["time"]) for a in A)
        method = None if source is None else "attribution:" + source
    out["product_discovery_method"] = method

    # shopping patterns
    sessions = {}
    for i in I:
        if i["session_id"] is not None:
            sessions.setdefault(i["session_id"], []).append(i)

    def has(its, kind):
        return any(i["event_type"] == kind for i in its)

    cart = [its for its in sessions.values() if has(its, "add_to_cart")]
    if cart:
        out["cart_abandonment_rate"] = sum(not has(its, "purchase") for its in cart) / len(cart)
    else:
        out["cart_abandonment_rate"] = mean(1.0 if c["event_type"] == "abandoned" else 0.0 for c in C)
    checkout = [its for its in sessions.values() if has(its, "checkout")]
    out["checkout_completion_rate"] = (sum(has(its, "purchase") for its in checkout) / len(checkout)
                                       if checkout else None)
    viewed = [len({i["product_id"] for i in its if i["event_type"] == "product_view" and i["product_id"] is not None})
              for its in sessions.values()]
    viewed = [n for n in viewed if n > 0]
    out["product_comparison_behavior"] = (sum(n >= COMPARISON_MIN for n in viewed) / len(viewed)
                                          if viewed else None)
    impulse = [i["time"] - I[first_touch_index(i["product_id"])]["time"] <= IMPULSE_WINDOW for i in bought]
    out["impulse_purchase_tendency"] = sum(impulse) / len(impulse) if impulse else None

    # device and channel
    out["preferred_device"] = most_common((s["device_type"], s["time"]) for s in S if s["device_type"] != "unknown")
    out["channel_preference"] = most_common(
        (s["channel"] if s["channel"] is not None else s["referrer"], s["time"]) for s in S
        if s["channel"] is not None or s["referrer"] is not None)
    out["mobile_usage_pattern"] = mean(1.0 if ascii_lower(s["device_type"]) in MOBILE else 0.0 for s in S)
    out["desktop_usage_pattern"] = mean(1.0 if ascii_lower(s["device_type"]) in DESKTOP else 0.0 for s in S)

    # temporal
    out["preferred_shopping_time"] = most_common((local(p["time"], tz).hour, p["time"]) for p in P)
    out["shopping_day_preference"] = most_common((local(p["time"], tz).weekday(), p["time"]) for p in P)
    if P:
        counts = {}
        for p in P:
            s_ = season(local(p["time"], tz).month)
            counts[s_] = counts.get(s_, 0) + 1
        out["seasonal_behavior"] = (max(counts.values()) / len(P) - 0.25) / 0.75
    else:
        out["seasonal_behavior"] = None
    recent = sum(p["time"] >= as_of - LOYALTY_HALF for p in P)
    earlier = sum(as_of - 2 * LOYALTY_HALF <= p["time"] < as_of - LOYALTY_HALF for p in P)
    out["loyalty_trend"] = (recent - earlier) / (LOYALTY_HALF / DAY / 30)

    # segmentation
    population = {}
    for p in h["purchases"]:
        if p["time"] <= as_of:
            r = population.setdefault(p["customer_id"], [None, 0, []])
            r[0] = p["time"] if r[0] is None else max(r[0], p["time"])
            r[1] += 1
            r[2].append((p["time"], p["event_id"], p["order_value"]))
    pop = {c: (as_of - last, n, float(sum(v for _, _, v in sorted(vals))))
           for c, (last, n, vals) in population.items()}
    if customer_id in pop:
        n = len(pop)
        rec, freq, mon = pop[customer_id]
        out["recency_score"] = 1 + RFM_BINS * sum(x[0] > rec for x in pop.values()) // n
        out["frequency_score"] = 1 + RFM_BINS * sum(x[1] < freq for x in pop.values()) // n
        out["monetary_score"] = 1 + RFM_BINS * sum(x[2] < mon for x in pop.values()) // n
    else:
        out["recency_score"] = out["frequency_score"] = out["monetary_score"] = None
    R, F, M = out["recency_score"], out["frequency_score"], out["monetary_score"]
    if not P:
        segment = "no_purchases"
    elif P[0]["time"] >= as_of - NEW_DAYS * DAY:
        segment = "new"
    elif R >= 4 and F >= 4 and M >= 4:
        segment = "champions"
    elif R >= 3 and F >= 4:
        segment = "loyal"
    elif R <= 2 and F >= 3:
        segment = "at_risk"
    elif R <= 2:
        segment = "hibernating"
    else:
        segment = "needs_attention"
    out["customer_segment"] = segment

    short_p = sum(p["time"] >= as_of - SHORT for p in P)
    long_p = sum(p["time"] >= as_of - LONG for p in P)
    declining = short_p > 0 and long_p > 0 and (short_p / 1.0) / (long_p / 3.0) < DECLINING_RATIO
    short_t = [t for t in T if t["time"] >= as_of - SHORT]
    support = (mean(1.0 if t["escalated"] else 0.0 for t in short_t) or 0.0) > SUPPORT_RATIO or len(short_t) > SUPPORT_MAX
    short_c = [c for c in C if c["time"] >= as_of - SHORT]
    conversion = mean(1.0 if c["event_type"] == "converted" else 0.0 for c in short_c) or 0.0
    cart_risk = conversion < CART_MIN_CONV and sum(c["event_type"] == "abandoned" for c in short_c) > CART_MAX_ABANDONED
    recency_risk = bool(P) and (as_of - P[-1]["time"]) // DAY > RECENCY_CONCERN_DAYS
    out["recency_risk"] = recency_risk
    out["declining_engagement"] = declining
    out["support_risk"] = support
    out["cart_abandonment_risk"] = cart_risk
    out["retention_concern"] = recency_risk or declining or support or cart_risk
    out["risk_score"] = RISK_POINTS * (recency_risk + declining + support + cart_risk)
    created = h["created_at"].get(customer_id)
    out["account_age_days"] = (as_of - created) // DAY if created is not None and created <= as_of else None
    return out


# -- comparing -----------------------------------------------------------------------------
def assert_family(actual, expected, keys, context=""):
    for key in keys:
        a, e = actual[key], expected[key]
        where = f"{key} {context}"
        if e is None or a is None:
            assert a is None and e is None, f"{where}: store {a!r}, oracle {e!r}"
        elif isinstance(e, float):
            assert isinstance(a, float), f"{where}: store {a!r} ({type(a).__name__}), oracle {e!r}"
            assert math.isclose(a, e, rel_tol=1e-9, abs_tol=1e-9), f"{where}: store {a!r}, oracle {e!r}"
        else:
            assert type(a) is type(e) and a == e, f"{where}: store {a!r}, oracle {e!r}"


# -- random histories ---------------------------------------------------------------------
CUSTOMERS = ("a", "b", "c")
# Window edges and as_of boundaries: at as_of counts, 1 us after does not.
EDGES = (0, 1, -1, -SHORT, -SHORT - 1, -LONG, -LONG + 1, -LONG - 1, -2 * LONG, -2 * LONG - 1, -2 * LONG + 1,
         -NEW_DAYS * DAY, -NEW_DAYS * DAY - 1, -61 * DAY, -60 * DAY, -400 * DAY)
times = st.one_of(
    st.sampled_from(EDGES),
    st.integers(-400 * DAY, DAY).map(lambda x: x - x % MINUTE),      # minute grid: ties
    st.integers(0, 90).map(lambda m: -2 * DAY - m * MINUTE),         # a cluster: gaps of minutes
    st.integers(-400 * DAY, DAY),                                    # any microsecond
).map(lambda d: AS_OF + d)
customers = st.sampled_from(CUSTOMERS)
opt = lambda values: st.sampled_from((None,) + tuple(values))  # noqa: E731


@st.composite
def histories(draw, max_events=12):
    h = {}
    h["purchases"] = [dict(customer_id=c, time=t, event_id=f"o{k}", order_value=v) for k, (c, t, v) in enumerate(
        draw(st.lists(st.tuples(customers, times, st.sampled_from((0.0, 0.5, 1.0, 2.5, 10.0, 99.5))),
                      max_size=max_events)))]
    h["sessions"] = [dict(customer_id=c, time=t, event_id=f"s{k}", duration_seconds=d, device_type=dv,
                          page_views=pv, referrer=rf, channel=ch) for k, (c, t, d, dv, pv, rf, ch) in enumerate(
        draw(st.lists(st.tuples(customers, times, st.sampled_from((0.0, 5.0, 30.0, 600.0, 1200.5)),
                                st.sampled_from(("unknown", "mobile", "Mobile", "desktop", "tablet", "tv", "PC")),
                                opt((0, 1, 2, 7, 15)), opt(("google", "ref")), opt(("email", "organic", "google"))),
                      max_size=max_events)))]
    h["interactions"] = [dict(customer_id=c, time=t, event_id=f"i{k:02d}", session_id=s, event_type=e,
                              product_id=p, category=cat, search_query=q)
                         for k, (c, t, s, e, p, cat, q) in enumerate(draw(st.lists(
                             st.tuples(customers, times, opt(("s0", "s1", "s2", "x9")),
                                       st.sampled_from(("page_view", "product_view", "category_view", "search",
                                                        "add_to_cart", "remove_from_cart", "checkout", "purchase")),
                                       opt(("p1", "p2", "p3")), opt(("c1", "c2")),
                                       opt((" Shoes", "shoes", "BOOTS ", " ", "chaussures"))),
                             max_size=2 * max_events)))]
    h["attributions"] = [dict(customer_id=c, time=t, event_id=f"a{k}", source=src) for k, (c, t, src) in enumerate(
        draw(st.lists(st.tuples(customers, times, st.sampled_from(("google", "email", "fb"))), max_size=4)))]
    h["carts"] = [dict(customer_id=c, time=t, event_id=f"c{k}", event_type=e, cart_value=None)
                  for k, (c, t, e) in enumerate(draw(st.lists(
                      st.tuples(customers, times, st.sampled_from(("abandoned", "converted"))), max_size=6)))]
    h["tickets"] = [dict(customer_id=c, time=t, event_id=f"t{k}", escalated=e) for k, (c, t, e) in enumerate(
        draw(st.lists(st.tuples(customers, times, st.booleans()), max_size=5)))]
    h["created_at"] = draw(st.dictionaries(customers, times, max_size=3))
    return h


def iso(us):
    return (EPOCH + timedelta(microseconds=us)).isoformat()


def load(store, h):
    """Put a history into a store through the public API (bulk methods)."""
    assert store.add_purchases([dict(customer_id=p["customer_id"], order_value=p["order_value"],
                                     purchase_date=iso(p["time"]), order_id=p["event_id"])
                                for p in h["purchases"]]).accepted == len(h["purchases"])
    assert store.add_sessions([dict(customer_id=s["customer_id"], duration_seconds=s["duration_seconds"],
                                    device_type=s["device_type"], session_date=iso(s["time"]),
                                    session_id=s["event_id"], page_views=s["page_views"], referrer=s["referrer"],
                                    channel=s["channel"]) for s in h["sessions"]]).accepted == len(h["sessions"])
    assert store.add_interactions([dict(customer_id=i["customer_id"], event_type=i["event_type"],
                                        event_date=iso(i["time"]), session_id=i["session_id"],
                                        product_id=i["product_id"], category=i["category"],
                                        search_query=i["search_query"], event_id=i["event_id"])
                                   for i in h["interactions"]]).accepted == len(h["interactions"])
    assert store.add_attributions([dict(customer_id=a["customer_id"], order_id=a["event_id"], source=a["source"],
                                        attribution_date=iso(a["time"]))
                                   for a in h["attributions"]]).accepted == len(h["attributions"])
    assert store.add_cart_events([dict(customer_id=c["customer_id"], event_type=c["event_type"],
                                       event_date=iso(c["time"]), cart_id=c["event_id"])
                                  for c in h["carts"]]).accepted == len(h["carts"])
    assert store.add_support_interactions([dict(customer_id=t["customer_id"], ticket_id=t["event_id"],
                                                escalated=t["escalated"], interaction_date=iso(t["time"]))
                                           for t in h["tickets"]]).accepted == len(h["tickets"])
    for c, t in h["created_at"].items():
        store.set_customer_metadata(c, {}, created_at=iso(t))


def stored(h):
    """The history as the store keeps it: '' search queries are NULL."""
    for i in h["interactions"]:
        if i["search_query"] == "":
            i["search_query"] = None
    return h


def check_family(family, h, *, tz="UTC", as_ofs=(AS_OF,), cohort=True):
    """Compare one family of get_behavior_features (and of the set-based cohort
    read) with the oracle, for every customer of the history and an unknown one."""
    from customer_activity_features import CustomerActivityFeatures

    keys = FAMILIES[family]
    with CustomerActivityFeatures(timezone=tz) as store:
        load(store, h)
        h = stored(h)
        for as_of in as_ofs:
            expected = {c: behavior_features(h, c, as_of, tz) for c in CUSTOMERS + ("zz",)}
            for c in CUSTOMERS + ("zz",):
                actual = store.get_behavior_features(c, as_of=iso(as_of))
                assert_family(actual, expected[c], keys, f"(customer {c!r}, as_of {iso(as_of)}, tz {tz})")
            if cohort:
                rows = store.get_cohort_behavior_features(CUSTOMERS + ("zz",), as_of=iso(as_of))
                for c, actual in rows.items():
                    assert_family(actual, expected[c], keys, f"(cohort, customer {c!r}, as_of {iso(as_of)})")
