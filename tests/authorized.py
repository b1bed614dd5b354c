"""What a statement touches, as SQLite's authorizer sees it when the statement is prepared."""

import sqlite3


def customer_features_columns(conn, sql, params):
    """{sqlite3.SQLITE_UPDATE: columns, sqlite3.SQLITE_READ: columns} of customer_features that
    ``sql`` writes and reads (prepared through EXPLAIN: nothing is run)."""
    seen = {sqlite3.SQLITE_UPDATE: set(), sqlite3.SQLITE_READ: set()}

    def authorizer(action, table, column, db, trigger):
        if action in seen and table == "customer_features":
            seen[action].add(column)
        return sqlite3.SQLITE_OK

    conn.set_authorizer(authorizer)
    try:
        conn.execute("EXPLAIN " + sql, params).fetchall()
    finally:
        conn.set_authorizer(None)
    return seen
