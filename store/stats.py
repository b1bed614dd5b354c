"""Inspection of a store: table sizes, time range, rejections, last load and
materialisation. The queries are in ``sql/stats.sql``; ``caf stats``,
``caf rejected`` and ``caf features`` are built on these functions.

Every function takes a ``CustomerActivityFeatures`` and reads within its shop,
after committing its buffered writes.
"""

from .resources import query

REASONS_LIMIT = 100  # at most this many (kind, reason) lines in a summary


def _rows(cursor):
    columns = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(columns, row))


def _conn(store):
    store.flush()
    return store.conn


def table_exists(store, name):
    return bool(_conn(store).execute(query("table_exists"), {"name": name}).fetchone()[0])


def customer_known(store, customer_id):
    """True when the (normalised) customer id has metadata or any event in the store's shop."""
    row = _conn(store).execute(query("customer_known"),
                               {"shop_id": store.shop_id, "customer_id": customer_id}).fetchone()
    return bool(row[0])


def rejected(store, *, reason=None, kind=None, limit=20):
    """Yield rejected records {id, kind, reason, received_at, payload}, oldest first.

    ``reason`` matches a whole reason or its beginning; ``limit`` bounds the rows.
    """
    params = {"shop_id": store.shop_id, "reason": reason or None, "kind": kind or None, "limit": int(limit)}
    yield from _rows(_conn(store).execute(query("rejected_events_list"), params))


def _last_load(store):
    """The newest row of the loads table, or None (no loads table or no load yet)."""
    if not table_exists(store, "loads"):
        return None
    from .loaders import list_loads
    loads = list_loads(store, limit=1)
    return loads[0] if loads else None


def _last_materialization(store):
    """The newest materialisation record, or None."""
    if not table_exists(store, "materializations"):
        return None
    cursor = _conn(store).execute(query("stats_last_materialization"), {"shop_id": store.shop_id})
    return next(_rows(cursor), None)


def summary(store):
    """Everything ``caf stats`` shows, as a JSON-ready dict."""
    conn = _conn(store)
    params = {"shop_id": store.shop_id}
    events = list(_rows(conn.execute(query("stats_event_tables"), params)))
    others = list(_rows(conn.execute(query("stats_other_tables"), params)))
    customers = conn.execute(query("stats_customer_count"), params).fetchone()[0]
    reasons = list(_rows(conn.execute(query("stats_rejections_by_reason"),
                                      dict(params, limit=REASONS_LIMIT))))
    firsts = [e["first_event_time"] for e in events if e["first_event_time"]]
    lasts = [e["last_event_time"] for e in events if e["last_event_time"]]
    return {
        "shop_id": store.shop_id,
        "customers": customers,
        "tables": {r["table_name"]: r["row_count"] for r in events + others},
        "event_tables": events,
        "first_event_time": min(firsts) if firsts else None,
        "last_event_time": max(lasts) if lasts else None,
        "rejections_by_reason": reasons,
        "last_load": _last_load(store),
        "last_materialization": _last_materialization(store),
    }
