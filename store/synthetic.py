"""A seeded synthetic shop: customers with recognisable behaviour, as event dicts.

Used by ``caf demo``, the benchmarks and the tests. Deterministic: the same
(seed, customer count, end) always yields the same events, and each customer's
events depend only on (seed, customer index, kind), so any slice of customers
can be generated on its own.

Personas (shares of customers):

* ``loyal`` (20%): buys every 2-4 weeks all year, many sessions;
* ``churner`` (20%): active in the first half of the year, silent for the last 100+ days;
* ``cart_abandoner`` (15%): many abandoned carts, few purchases;
* ``support_heavy`` (10%): frequent tickets, often escalated;
* ``new`` (10%): first seen in the last 45 days;
* ``casual`` (25%): a few scattered purchases and sessions.

About 20 events per customer on average across the four kinds.
"""

import random
from datetime import datetime, timezone

from . import timeutil

DEFAULT_END = datetime(2026, 1, 1, tzinfo=timezone.utc)
PERSONAS = (("loyal", 0.20), ("churner", 0.20), ("cart_abandoner", 0.15),
            ("support_heavy", 0.10), ("new", 0.10), ("casual", 0.25))
DEVICES = ("mobile", "desktop", "tablet")
KINDS = ("purchase", "session", "cart_event", "support_interaction")


def customer_id(index):
    return f"C{index:07d}"


def persona(seed, index):
    rng = random.Random(f"{seed}:{index}:persona")
    x = rng.random()
    for name, share in PERSONAS:
        if x < share:
            return name
        x -= share
    return PERSONAS[-1][0]


def _active_span(p, days):
    """(first day, last day) before the end in which the persona is active."""
    if p == "churner":
        return days, 130
    if p == "new":
        return 45, 0
    return days, 0


def _times(rng, count, span, end_us):
    first, last = span
    lo = end_us - int(first * timeutil.US_PER_DAY)
    hi = end_us - int(last * timeutil.US_PER_DAY)
    return sorted(rng.randint(lo, hi) for _ in range(count))


_COUNTS = {  # persona -> (purchases, sessions, carts, tickets) mean counts
    "loyal": (12, 14, 3, 1),
    "churner": (5, 7, 2, 1),
    "cart_abandoner": (2, 8, 8, 1),
    "support_heavy": (4, 6, 2, 7),
    "new": (2, 5, 2, 0.5),
    "casual": (3, 5, 2, 0.5),
}


def _count(rng, mean):
    return max(0, int(rng.gauss(mean, mean / 3) + 0.5))


def events(kind, n_customers, *, seed=0, end=DEFAULT_END, days=365, start=0):
    """Yield event dicts of one kind (the bulk API's keys) for customers start..n_customers-1."""
    end_us = timeutil.to_us(end)
    slot = KINDS.index(kind)
    for index in range(start, n_customers):
        p = persona(seed, index)
        rng = random.Random(f"{seed}:{index}:{kind}")
        cid = customer_id(index)
        span = _active_span(p, days)
        n = _count(rng, _COUNTS[p][slot])
        times = _times(rng, n, span, end_us)
        for k, t in enumerate(times):
            when = timeutil.iso(t)
            if kind == "purchase":
                yield {"customer_id": cid, "order_value": round(rng.lognormvariate(3.5, 0.8), 2),
                       "purchase_date": when, "order_id": f"O-{cid}-{k}"}
            elif kind == "session":
                yield {"customer_id": cid, "duration_seconds": round(rng.expovariate(1 / 300), 1),
                       "device_type": rng.choices(DEVICES, (5, 3, 1))[0], "session_date": when,
                       "session_id": f"S-{cid}-{k}"}
            elif kind == "cart_event":
                abandon = 0.85 if p == "cart_abandoner" else 0.4
                yield {"customer_id": cid,
                       "event_type": "abandoned" if rng.random() < abandon else "converted",
                       "cart_value": round(rng.lognormvariate(3.3, 0.7), 2) if rng.random() > 0.05 else None,
                       "event_date": when, "cart_id": f"K-{cid}-{k}"}
            else:
                escalate = 0.6 if p == "support_heavy" else 0.1
                yield {"customer_id": cid, "ticket_id": f"T-{cid}-{k}",
                       "response_time_hours": round(rng.expovariate(1 / 12), 2) if rng.random() > 0.1 else None,
                       "escalated": rng.random() < escalate, "interaction_date": when}


def metadata(n_customers, *, seed=0, start=0):
    """Yield {customer_id, metadata} dicts."""
    for index in range(start, n_customers):
        rng = random.Random(f"{seed}:{index}:metadata")
        yield {"customer_id": customer_id(index),
               "metadata": {"persona": persona(seed, index),
                            "country": rng.choice(("GB", "DE", "FR", "NL", "US")),
                            "newsletter": rng.random() < 0.4}}


def populate(store, n_customers, *, seed=0, end=DEFAULT_END, days=365):
    """Load a synthetic shop into a CustomerActivityFeatures store; returns {kind: IngestResult}."""
    return {
        "purchase": store.add_purchases(events("purchase", n_customers, seed=seed, end=end, days=days)),
        "session": store.add_sessions(events("session", n_customers, seed=seed, end=end, days=days)),
        "cart_event": store.add_cart_events(events("cart_event", n_customers, seed=seed, end=end, days=days)),
        "support_interaction": store.add_support_interactions(
            events("support_interaction", n_customers, seed=seed, end=end, days=days)),
        "customer": store.set_customers_metadata(metadata(n_customers, seed=seed)),
    }


# -- an enriched shop: every event kind (engine equality tests, the engines benchmark) -----------
INTERACTION_KINDS = ("page_view", "product_view", "category_view", "search", "add_to_cart", "remove_from_cart",
                     "checkout", "purchase")
_PAGES = ("home", "product", "category", "search", "cart", "checkout")
_CATEGORIES = ("shoes", "Shoes ", "bags", "hats", "coats")
_QUERIES = ("boots", " Red shoes", "BAGS ", "hat", "coat sale")
_SOURCES = (("google", "cpc"), ("email", "newsletter"), ("fb", "social"), ("direct", None))


def enriched_events(kind, n_customers, *, seed=0, end=DEFAULT_END, days=365, start=0):
    """Yield event dicts of one kind for customers start..n_customers-1: the four kinds of
    ``events`` (sessions with their extras: start/end, page views, browser, referrer,
    channel), plus ``interaction`` (a few per session, all event types) and
    ``attribution`` (one per purchase of about half the orders), and ``refund`` (a few
    orders), so that every behaviour family has data. Deterministic like ``events``."""
    if kind in ("purchase", "cart_event", "support_interaction"):
        yield from events(kind, n_customers, seed=seed, end=end, days=days, start=start)
        return
    base = "purchase" if kind in ("attribution", "refund") else "session"
    for index in range(start, n_customers):
        rng = random.Random(f"{seed}:{index}:{kind}:extra")
        for e in events(base, index + 1, seed=seed, end=end, days=days, start=index):
            if kind == "session":
                start_us = timeutil.to_us(e["session_date"])
                e.update(session_start=e["session_date"],
                         session_end=timeutil.iso(start_us + int(e["duration_seconds"] * 1_000_000)),
                         page_views=rng.randint(0, 12) if rng.random() > 0.1 else None,
                         browser=rng.choice(("chrome", "firefox", "safari", None)),
                         referrer=rng.choice(("google", "newsletter", None)),
                         channel=rng.choice(("organic", "email", "paid", None)))
                yield e
            elif kind == "interaction":
                t = timeutil.to_us(e["session_date"])
                for k in range(rng.randint(0, 5)):
                    t += rng.randint(5, 900) * 1_000_000
                    event_type = rng.choice(INTERACTION_KINDS)
                    yield {"customer_id": e["customer_id"], "event_type": event_type,
                           "event_date": timeutil.iso(t), "session_id": e["session_id"] if rng.random() > 0.1 else None,
                           "page_type": rng.choice(_PAGES), "product_id": f"P{rng.randint(1, 40)}",
                           "category": rng.choice(_CATEGORIES),
                           "search_query": rng.choice(_QUERIES) if event_type == "search" else None,
                           "view_duration_seconds": round(rng.expovariate(1 / 40), 1) if rng.random() > 0.2 else None,
                           "device_type": e["device_type"], "event_id": f"I-{e['session_id']}-{k}"}
            elif kind == "attribution":
                if rng.random() < 0.5:
                    source, medium = rng.choice(_SOURCES)
                    yield {"customer_id": e["customer_id"], "order_id": e["order_id"], "source": source,
                           "medium": medium, "attribution_date": e["purchase_date"]}
            elif kind == "refund" and rng.random() < 0.08:
                t = timeutil.to_us(e["purchase_date"]) + rng.randint(1, 20) * timeutil.US_PER_DAY
                yield {"customer_id": e["customer_id"], "refund_value": round(e["order_value"] * rng.random(), 2),
                       "refund_date": timeutil.iso(min(t, timeutil.to_us(end))), "refund_id": f"R-{e['order_id']}",
                       "order_id": e["order_id"]}


def populate_enriched(store, n_customers, *, seed=0, end=DEFAULT_END, days=365):
    """Load an enriched synthetic shop (``enriched_events``: every event kind, session extras,
    customer metadata and creation times) into a store; returns {kind: IngestResult}."""
    def ev(kind):
        return enriched_events(kind, n_customers, seed=seed, end=end, days=days)
    end_us = timeutil.to_us(end)
    created = ({"customer_id": m["customer_id"], "metadata": m["metadata"],
                "created_at": timeutil.iso(end_us - random.Random(f"{seed}:{i}:created").randint(1, 500)
                                           * timeutil.US_PER_DAY)}
               for i, m in enumerate(metadata(n_customers, seed=seed)))
    return {
        "purchase": store.add_purchases(ev("purchase")),
        "session": store.add_sessions(ev("session")),
        "interaction": store.add_interactions(ev("interaction")),
        "attribution": store.add_attributions(ev("attribution")),
        "refund": store.add_refunds(ev("refund")),
        "cart_event": store.add_cart_events(ev("cart_event")),
        "support_interaction": store.add_support_interactions(ev("support_interaction")),
        "customer": store.set_customers_metadata(created),
    }
