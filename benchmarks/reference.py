"""The references of the materialisation benchmark: one hand-written SQL statement and plain Python.

Both compute, for every customer of the shop (shop_id ''), the seed features
per window (7, 30, 90, 365 days and all time) plus the window-free recency, at
one ``as_of`` (microseconds since the epoch, inclusive; a window of d days keeps
``event_time_us >= as_of_us - d days``, as in sql/purchases.sql):

* purchases: ``purchase_count_W``, ``total_purchase_value_W``, ``average_order_value_W``
  (0.0 when none), ``purchase_frequency_W`` (count per 30 days; windowed only);
* sessions: ``session_count_W``, ``average_session_duration_W``, ``session_frequency_W``;
* carts: ``cart_event_count_W``, ``abandoned_cart_count_W``, ``cart_conversion_ratio_W``,
  ``abandoned_cart_value_W``;
* support: ``support_ticket_count_W``, ``average_response_time_hours_W`` (NULL when none),
  ``escalation_count_W``, ``escalation_ratio_W``;
* ``purchase_recency_days``: floor of days from the last purchase to as_of (NULL when none).

This is what ``materialize`` computes (issue 3: every scalar feature for every
window as a plain column), written the way a user who knows SQL would write it
by hand: one GROUP BY scan per event table (each table is clustered on
shop_id, customer_id, so the grouping streams without a sort), left-joined on
the customer.
"""

from datetime import datetime, timedelta, timezone

US_PER_DAY = 86_400_000_000
# The materialize families computing the same 84 feature columns as these references.
SEED_FAMILIES = ("purchase_features", "session_features", "cart_features", "support_features",
                 "all_features", "primary_device")
WINDOWS = (7, 30, 90, 365, None)  # None = all time


def suffix(w):
    return "all" if w is None else f"{w}d"


def _in(w, col="event_time_us"):
    return "1" if w is None else f"{col} >= :as_of_us - {w * US_PER_DAY}"


def columns():
    """Output column names, in order (after customer_id)."""
    cols = []
    for w in WINDOWS:
        s = suffix(w)
        cols += [f"purchase_count_{s}", f"total_purchase_value_{s}", f"average_order_value_{s}",
                 f"purchase_frequency_{s}"]
    for w in WINDOWS:
        s = suffix(w)
        cols += [f"session_count_{s}", f"average_session_duration_{s}", f"session_frequency_{s}"]
    for w in WINDOWS:
        s = suffix(w)
        cols += [f"cart_event_count_{s}", f"abandoned_cart_count_{s}", f"cart_conversion_ratio_{s}",
                 f"abandoned_cart_value_{s}"]
    for w in WINDOWS:
        s = suffix(w)
        cols += [f"support_ticket_count_{s}", f"average_response_time_hours_{s}", f"escalation_count_{s}",
                 f"escalation_ratio_{s}"]
    cols += ["purchase_recency_days", "last_purchase_us"]
    return cols


FLAGS = ("primary_device", "high_short_term_activity", "declining_engagement", "support_risk",
         "cart_abandonment_risk", "retention_concern", "activity_trend")


def all_columns():
    return columns() + list(FLAGS)


def select_statement():
    """The hand-written SELECT (parameter :as_of_us)."""
    rng = ""
    p, s, c, t = [], [], [], []
    for w in WINDOWS:
        x, f = suffix(w), _in(w)
        p += [f"COUNT(*) FILTER (WHERE {f}) AS purchase_count_{x}",
              f"TOTAL(order_value) FILTER (WHERE {f}) AS total_purchase_value_{x}",
              f"COALESCE(AVG(order_value) FILTER (WHERE {f}), 0.0) AS average_order_value_{x}"]
        fw, ff = (30, _in(30)) if w is None else (w, f)  # all time: frequency over the last 30 days
        p.append(f"COUNT(*) FILTER (WHERE {ff}) / ({fw} / 30.0) AS purchase_frequency_{x}")
        s += [f"COUNT(*) FILTER (WHERE {f}) AS session_count_{x}",
              f"COALESCE(AVG(duration_seconds) FILTER (WHERE {f}), 0.0) AS average_session_duration_{x}"]
        s.append(f"COUNT(*) FILTER (WHERE {ff}) / ({fw} / 30.0) AS session_frequency_{x}")
        c += [f"COUNT(*) FILTER (WHERE {f}) AS cart_event_count_{x}",
              f"COUNT(*) FILTER (WHERE event_type = 'abandoned' AND {f}) AS abandoned_cart_count_{x}",
              f"COALESCE(AVG(event_type = 'converted') FILTER (WHERE {f}), 0.0) AS cart_conversion_ratio_{x}",
              f"TOTAL(cart_value) FILTER (WHERE event_type = 'abandoned' AND {f}) AS abandoned_cart_value_{x}"]
        t += [f"COUNT(*) FILTER (WHERE {f}) AS support_ticket_count_{x}",
              f"AVG(response_time_hours) FILTER (WHERE {f}) AS average_response_time_hours_{x}",
              f"COUNT(*) FILTER (WHERE escalated = 1 AND {f}) AS escalation_count_{x}",
              f"COALESCE(AVG(escalated * 1.0) FILTER (WHERE {f}), 0.0) AS escalation_ratio_{x}"]
    p.append("(:as_of_us - MAX(event_time_us)) / 86400000000 AS purchase_recency_days")
    p.append("MAX(event_time_us) AS last_purchase_us")

    def agg(exprs, table):
        body = ",\n        ".join(["customer_id"] + exprs)
        return (f"SELECT\n        {body}\n    FROM {table}\n    WHERE shop_id = '' AND event_time_us <= :as_of_us{rng}\n"
                f"    GROUP BY customer_id")

    out = []
    for col in columns():
        alias = ("p" if col.startswith(("purchase", "total_purchase", "average_order", "last_purchase")) else
                 "s" if col.startswith(("session", "average_session")) else
                 "c" if col.startswith(("cart", "abandoned")) else "t")
        if col in ("purchase_recency_days", "last_purchase_us") or col.startswith("average_response_time"):
            out.append(f"{alias}.{col}")
        else:
            out.append(f"COALESCE({alias}.{col}, 0) AS {col}")
    select = ",\n    ".join(["ids.customer_id AS customer_id"] + out + ["d.device_type AS primary_device"])
    flags = """
    (purchase_count_30d > 0 AND session_count_30d > 0) AS high_short_term_activity,
    (purchase_count_30d > 0 AND purchase_count_90d > 0
        AND (purchase_count_30d / 1.0) / (purchase_count_90d / 3.0) < 0.7) AS declining_engagement,
    (escalation_ratio_30d > 0.5 OR support_ticket_count_30d > 3) AS support_risk,
    (cart_conversion_ratio_30d < 0.3 AND abandoned_cart_count_30d > 2) AS cart_abandonment_risk"""
    return (
        "SELECT *,\n"
        "    (COALESCE(purchase_recency_days > 60, 0) OR declining_engagement OR support_risk\n"
        "        OR cart_abandonment_risk) AS retention_concern,\n"
        "    CASE WHEN declining_engagement THEN 'declining' WHEN high_short_term_activity THEN 'stable'\n"
        "        ELSE 'inactive' END AS activity_trend\n"
        f"FROM (SELECT *,{flags}\nFROM (\n"
        "WITH\n"
        f"ids AS (SELECT customer_id FROM all_customers WHERE shop_id = ''{rng}),\n"
        f"p AS (\n    {agg(p, 'purchases')}),\n"
        f"s AS (\n    {agg(s, 'sessions')}),\n"
        f"c AS (\n    {agg(c, 'cart_events')}),\n"
        f"t AS (\n    {agg(t, 'support_interactions')}),\n"
        "dev AS (\n    SELECT customer_id, device_type, ROW_NUMBER() OVER (PARTITION BY customer_id\n"
        "        ORDER BY COUNT(*) DESC, MIN(event_time_us), device_type) AS rank\n"
        f"    FROM sessions WHERE shop_id = '' AND event_time_us <= :as_of_us{rng}\n"
        "    GROUP BY customer_id, device_type)\n"
        f"SELECT\n    {select}\n"
        "FROM ids\n"
        "LEFT JOIN p ON p.customer_id = ids.customer_id\n"
        "LEFT JOIN s ON s.customer_id = ids.customer_id\n"
        "LEFT JOIN c ON c.customer_id = ids.customer_id\n"
        "LEFT JOIN t ON t.customer_id = ids.customer_id\n"
        "LEFT JOIN dev AS d ON d.customer_id = ids.customer_id AND d.rank = 1\n"
        "))"
    )


def shell_script(as_of_us, table="bench_handwritten"):
    """The sqlite3-shell script: the statement written into a table, as the materialisation does."""
    return (f".parameter set :as_of_us {int(as_of_us)}\n"
            f"DROP TABLE IF EXISTS {table};\n"
            f"CREATE TABLE {table} AS\n{select_statement()};\n")


# -- plain in-memory Python, the way the seed module worked ---------------------------------
class InMemoryShop:
    """Dicts of lists per customer, loaded from the database, features computed in Python."""

    def __init__(self):
        self.purchases = {}
        self.sessions = {}
        self.carts = {}
        self.support = {}

    def load(self, conn):
        for attr, sql in (
            ("purchases", "SELECT customer_id, event_time_us, order_value FROM purchases WHERE shop_id = ''"),
            ("sessions", "SELECT customer_id, event_time_us, duration_seconds, device_type "
                         "FROM sessions WHERE shop_id = ''"),
            ("carts", "SELECT customer_id, event_time_us, event_type = 'converted', cart_value "
                      "FROM cart_events WHERE shop_id = ''"),
            ("support", "SELECT customer_id, event_time_us, response_time_hours, escalated "
                        "FROM support_interactions WHERE shop_id = ''"),
        ):
            target = getattr(self, attr)
            for row in conn.execute(sql):
                target.setdefault(row[0], []).append(row[1:])
        self.customers = set(self.purchases) | set(self.sessions) | set(self.carts) | set(self.support)
        self.customers.update(r[0] for r in conn.execute("SELECT customer_id FROM customers WHERE shop_id = ''"))
        return self

    def features(self, as_of_us):
        """Yield (customer_id, row tuple in columns() order)."""
        edges = [(w, None if w is None else as_of_us - w * US_PER_DAY) for w in WINDOWS]
        lo30 = as_of_us - 30 * US_PER_DAY
        names = columns()
        at = {n: i for i, n in enumerate(names)}
        for cid in sorted(self.customers):
            ps = [e for e in self.purchases.get(cid, ()) if e[0] <= as_of_us]
            ss = [e for e in self.sessions.get(cid, ()) if e[0] <= as_of_us]
            cs = [e for e in self.carts.get(cid, ()) if e[0] <= as_of_us]
            ts = [e for e in self.support.get(cid, ()) if e[0] <= as_of_us]
            row = []
            for w, lo in edges:
                sel = ps if lo is None else [e for e in ps if e[0] >= lo]
                total = sum(e[1] for e in sel)
                row += [len(sel), total, total / len(sel) if sel else 0.0]
                row.append(len(sel) / (w / 30.0) if w is not None else sum(1 for e in ps if e[0] >= lo30))
            for w, lo in edges:
                sel = ss if lo is None else [e for e in ss if e[0] >= lo]
                row += [len(sel), sum(e[1] for e in sel) / len(sel) if sel else 0.0]
                row.append(len(sel) / (w / 30.0) if w is not None else sum(1 for e in ss if e[0] >= lo30))
            for w, lo in edges:
                sel = cs if lo is None else [e for e in cs if e[0] >= lo]
                abandoned = [e for e in sel if not e[1]]
                row += [len(sel), len(abandoned), sum(e[1] for e in sel) / len(sel) if sel else 0.0,
                        sum(e[2] for e in abandoned if e[2] is not None)]
            for w, lo in edges:
                sel = ts if lo is None else [e for e in ts if e[0] >= lo]
                rts = [e[1] for e in sel if e[1] is not None]
                esc = sum(1 for e in sel if e[2] == 1)
                row += [len(sel), sum(rts) / len(rts) if rts else None, esc, esc / len(sel) if sel else 0.0]
            last = max(e[0] for e in ps) if ps else None
            row += [None if last is None else (as_of_us - last) // US_PER_DAY, last]
            devices = {}
            for e in ss:
                n, first = devices.get(e[2], (0, e[0]))
                devices[e[2]] = (n + 1, min(first, e[0]))
            row.append(min(devices, key=lambda d: (-devices[d][0], devices[d][1], d)) if devices else None)
            v = {n: row[at[n]] for n in ("purchase_count_30d", "purchase_count_90d", "session_count_30d",
                                          "escalation_ratio_30d", "support_ticket_count_30d",
                                          "cart_conversion_ratio_30d", "abandoned_cart_count_30d",
                                          "purchase_recency_days")}
            row += _flags(v)
            yield cid, tuple(row)


class SeedStyleShop(InMemoryShop):
    """The seed module's representation: per customer, lists of event dicts with datetime values
    (as its add_* methods stored them, ~300 bytes per event), each feature a pass over the
    customer's list comparing datetimes. Same arithmetic and output as ``InMemoryShop``, which
    keeps plain tuples of integer microseconds (a faster Python than the seed module had)."""

    def load(self, conn):
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)

        def when(us):
            return epoch + timedelta(microseconds=us)

        for row in conn.execute("SELECT customer_id, event_time_us, order_value FROM purchases WHERE shop_id = ''"):
            self.purchases.setdefault(row[0], []).append({"order_value": row[2], "purchase_date": when(row[1])})
        for row in conn.execute("SELECT customer_id, event_time_us, duration_seconds, device_type "
                                "FROM sessions WHERE shop_id = ''"):
            self.sessions.setdefault(row[0], []).append(
                {"duration_seconds": row[2], "device_type": row[3], "session_date": when(row[1])})
        for row in conn.execute("SELECT customer_id, event_time_us, event_type, cart_value "
                                "FROM cart_events WHERE shop_id = ''"):
            self.carts.setdefault(row[0], []).append(
                {"event_type": row[2], "cart_value": row[3], "event_date": when(row[1])})
        for row in conn.execute("SELECT customer_id, event_time_us, response_time_hours, escalated "
                                "FROM support_interactions WHERE shop_id = ''"):
            self.support.setdefault(row[0], []).append(
                {"response_time_hours": row[2], "escalated": bool(row[3]), "interaction_date": when(row[1])})
        self.customers = set(self.purchases) | set(self.sessions) | set(self.carts) | set(self.support)
        self.customers.update(r[0] for r in conn.execute("SELECT customer_id FROM customers WHERE shop_id = ''"))
        return self

    def features(self, as_of_us):
        """Yield (customer_id, row tuple in columns() order), like InMemoryShop.features."""
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        as_of = epoch + timedelta(microseconds=as_of_us)
        starts = [(w, None if w is None else as_of - timedelta(days=w)) for w in WINDOWS]
        start30 = as_of - timedelta(days=30)
        names = columns()
        at = {n: i for i, n in enumerate(names)}
        for cid in sorted(self.customers):
            ps = [e for e in self.purchases.get(cid, ()) if e["purchase_date"] <= as_of]
            ss = [e for e in self.sessions.get(cid, ()) if e["session_date"] <= as_of]
            cs = [e for e in self.carts.get(cid, ()) if e["event_date"] <= as_of]
            ts = [e for e in self.support.get(cid, ()) if e["interaction_date"] <= as_of]
            row = []
            for w, start in starts:
                sel = ps if start is None else [e for e in ps if e["purchase_date"] >= start]
                total = sum(e["order_value"] for e in sel)
                row += [len(sel), total, total / len(sel) if sel else 0.0]
                row.append(len(sel) / (w / 30.0) if w is not None
                           else sum(1 for e in ps if e["purchase_date"] >= start30))
            for w, start in starts:
                sel = ss if start is None else [e for e in ss if e["session_date"] >= start]
                row += [len(sel), sum(e["duration_seconds"] for e in sel) / len(sel) if sel else 0.0]
                row.append(len(sel) / (w / 30.0) if w is not None
                           else sum(1 for e in ss if e["session_date"] >= start30))
            for w, start in starts:
                sel = cs if start is None else [e for e in cs if e["event_date"] >= start]
                abandoned = [e for e in sel if e["event_type"] == "abandoned"]
                converted = sum(1 for e in sel if e["event_type"] == "converted")
                row += [len(sel), len(abandoned), converted / len(sel) if sel else 0.0,
                        sum(e["cart_value"] for e in abandoned if e["cart_value"] is not None)]
            for w, start in starts:
                sel = ts if start is None else [e for e in ts if e["interaction_date"] >= start]
                rts = [e["response_time_hours"] for e in sel if e["response_time_hours"] is not None]
                esc = sum(1 for e in sel if e["escalated"])
                row += [len(sel), sum(rts) / len(rts) if rts else None, esc, esc / len(sel) if sel else 0.0]
            last = max(e["purchase_date"] for e in ps) if ps else None
            last_us = None if last is None else (last - epoch) // timedelta(microseconds=1)
            row += [None if last is None else (as_of - last) // timedelta(days=1), last_us]
            devices = {}
            for e in ss:
                n, first = devices.get(e["device_type"], (0, e["session_date"]))
                devices[e["device_type"]] = (n + 1, min(first, e["session_date"]))
            row.append(min(devices, key=lambda d: (-devices[d][0], devices[d][1], d)) if devices else None)
            v = {n: row[at[n]] for n in ("purchase_count_30d", "purchase_count_90d", "session_count_30d",
                                          "escalation_ratio_30d", "support_ticket_count_30d",
                                          "cart_conversion_ratio_30d", "abandoned_cart_count_30d",
                                          "purchase_recency_days")}
            row += _flags(v)
            yield cid, tuple(row)


def _flags(v):
    high = int(v["purchase_count_30d"] > 0 and v["session_count_30d"] > 0)
    declining = int(v["purchase_count_30d"] > 0 and v["purchase_count_90d"] > 0
                    and v["purchase_count_30d"] / (v["purchase_count_90d"] / 3.0) < 0.7)
    support = int(v["escalation_ratio_30d"] > 0.5 or v["support_ticket_count_30d"] > 3)
    cart = int(v["cart_conversion_ratio_30d"] < 0.3 and v["abandoned_cart_count_30d"] > 2)
    recency = v["purchase_recency_days"]
    concern = int((recency is not None and recency > 60) or declining or support or cart)
    trend = "declining" if declining else "stable" if high else "inactive"
    return [high, declining, support, cart, concern, trend]


def compare_materialized(conn, table="bench_handwritten", limit=2000):
    """(rows checked, mismatching rows) between the hand-written table and customer_features
    (column X_all of the reference is X there; floats to 1e-9 relative)."""
    names = all_columns()
    theirs = [n[:-4] if n.endswith("_all") else n for n in names]
    sql = (f"SELECT {', '.join('h.' + n for n in names)}, {', '.join('m.' + n for n in theirs)} "
           f"FROM {table} AS h JOIN customer_features AS m ON m.shop_id = '' AND m.customer_id = h.customer_id "
           f"ORDER BY h.customer_id LIMIT {int(limit)}")
    checked = mismatches = 0
    k = len(names)
    for row in conn.execute(sql):
        checked += 1
        a, b = row[:k], row[k:]
        if any((x is None) != (y is None) or (isinstance(x, str) and x != y)
               or (x is not None and not isinstance(x, str) and abs(x - y) > 1e-9 * max(1.0, abs(y)))
               for x, y in zip(a, b)):
            mismatches += 1
    return checked, mismatches


def compare(conn, shop, as_of_us, table="bench_handwritten", limit=None):
    """Count rows where the hand-written table and the Python reference differ (floats to 1e-6)."""
    cols = all_columns()
    sql = f"SELECT customer_id, {', '.join(cols)} FROM {table} ORDER BY customer_id"
    if limit:
        sql += f" LIMIT {int(limit)}"
    mismatches = 0
    checked = 0
    py = shop.features(as_of_us)
    for row in conn.execute(sql):
        cid, values = next(py)
        checked += 1
        if cid != row[0] or any(
                (a is None) != (b is None) or (isinstance(a, str) and a != b)
                or (a is not None and not isinstance(a, str) and abs(a - b) > 1e-6 * max(1.0, abs(b)))
                for a, b in zip(values, row[1:])):
            mismatches += 1
    return checked, mismatches


if __name__ == "__main__":  # print the statement
    import sys
    print(shell_script(int(sys.argv[1]) if len(sys.argv) > 1 else 1767225600000000))
