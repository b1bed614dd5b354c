"""The days on which each customer had events (the table ``event_days``, migration 0008).

``refresh`` finds the customers whose events crossed a window edge between two ``as_of``
(``refresh_hits`` in sql/materialize.sql) from the rows of the days those edges crossed,
each checked against its events by one seek, instead of walking every event of the shop:
the event tables have no index on time, and one would slow ingest down (benchmarks/README.md,
issue 15). The table is kept by the runs: before a run consumes the shop's change log
(``store.runs.finish``), ``sync`` adds the days of the events of the customers it lists.
So it lists every day with events of every customer not in the log; a day whose events were
deleted or moved may stay listed, which costs a seek and changes no result.
"""

from .db import quote_identifier
from .ingest import KINDS
from .resources import query

# The event tables: every kind of event the store ingests (store.ingest.KINDS), each with
# shop_id, customer_id and event_time_us, and the change log's triggers.
EVENT_TABLES = tuple(sorted(kind.table for kind in KINDS.values()))


def events_sql(name, table, allowed=EVENT_TABLES):
    """The named query ``name`` of sql/materialize.sql over the event table ``table`` (a name of
    ``allowed``), which the query reads as the CTE ``refresh_events``. SQLite flattens the CTE
    into the query, so it reads the table's index as if the query named the table."""
    events = quote_identifier(table, allowed)
    return (f"WITH refresh_events AS (SELECT shop_id, customer_id, event_time_us FROM main.{events})\n"
            + query(name))


def sync(conn, shop_id):
    """Add to event_days the days of the events of the customers logged in changed_customers for
    ``shop_id``, every event table (``event_days_changed``); the caller then consumes the log in
    the same transaction."""
    for table in EVENT_TABLES:
        conn.execute(events_sql("event_days_changed", table), {"shop_id": shop_id, "events_table": table})
