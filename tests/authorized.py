"""What a statement touches, as SQLite's authorizer sees it when the statement is prepared."""

import sqlite3

from store.db import authorized_actions


def customer_features_columns(conn, sql, params):
    """{sqlite3.SQLITE_UPDATE: columns, sqlite3.SQLITE_READ: columns} of customer_features (or its
    stored rows, customer_features_stored) that
    ``sql`` writes and reads (prepared through EXPLAIN: nothing is run)."""
    seen = {sqlite3.SQLITE_UPDATE: set(), sqlite3.SQLITE_READ: set()}
    for action, table, column, _db in authorized_actions(conn, sql, params):
        # an UPDATE writes the stored rows under the view; a read is of the view's columns
        if action in seen and table == "customer_features" or (
                action == sqlite3.SQLITE_UPDATE and table == "customer_features_stored"):
            seen[action].add(column)
    return seen
