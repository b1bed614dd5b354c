"""Export of the feature rows to a file (``export``: CSV, NDJSON or Parquet) or an Arrow table
(``to_arrow``): the materialised table when its last snapshot is the one asked for, else the same
rows computed on the fly by a ``Plan`` (``feature_rows``); streamed row by row (Parquet and
Arrow: a record batch at a time, ``store.frames``), never written onto the database or its side
files."""

import contextlib
import csv
import json
import math

from . import frames, timeutil
from .db import automatic_indexes, begin_read, check_output_file, commit, quote_identifier
from .errors import UnknownNameError
from .plan import TARGETS, Plan, all_customers_params, check_windows, fill_targets, run_families
from .resources import query
from .runs import TABLE, last_run, table_columns

EXPORT_FORMATS = ("csv", "ndjson", "parquet")  # parquet: the extra [pandas]


def _json_value(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _end_export(conn, plan, staged, began):
    if staged:
        plan.unstage(conn, staged)
    conn.execute(f"DROP TABLE IF EXISTS {TARGETS}")
    if began and conn.in_transaction:
        commit(conn)  # only temp tables were written


@contextlib.contextmanager
def feature_rows(conn, shop_id, as_of_us=None, windows=None, reg=None):
    """The shop's feature rows as an open cursor, in customer id order: yields ``(plan, cursor,
    as_of_us, source)``. The materialized table when its last snapshot is at ``as_of_us`` (or
    ``as_of_us`` is None and a snapshot exists; ``source`` 'materialized'); otherwise the same
    rows computed at ``as_of_us`` (None = now; 'computed') from one read snapshot, the staged
    tables dropped when the block ends. The cursor's columns are ``plan.column_names``."""
    run = last_run(conn, shop_id)
    windows = check_windows(windows if windows is not None else (run["windows"] if run else None))
    plan = Plan(conn, windows, run_families(run, reg) if run else None, reg)
    use_table = (run is not None and run["columns"] == plan.column_names
                 and table_columns(conn, TABLE) == plan.column_names
                 and (as_of_us is None or as_of_us == run["as_of_us"]))
    staged = None
    began = False
    if use_table:
        as_of_us = run["as_of_us"]
        cols = ", ".join(quote_identifier(c, set(plan.column_names)) for c in plan.column_names)
        cursor = conn.execute(f"SELECT {cols} FROM {TABLE} WHERE shop_id = ? ORDER BY customer_id", [shop_id])
    else:
        if as_of_us is None:
            as_of_us = timeutil.now_us()
        if not conn.in_transaction:  # one read snapshot for every statement below
            begin_read(conn)
            began = True
        try:
            fill_targets(conn, query("fill_targets_all_customers"), all_customers_params(shop_id, as_of_us))
            params = plan.params(shop_id, as_of_us)
            with automatic_indexes(conn):
                staged = plan.stage(conn, params)
            cursor = conn.execute(plan.staged_select_sql(), params)
        except BaseException:
            _end_export(conn, plan, staged, began)
            raise
    try:
        yield plan, cursor, as_of_us, "materialized" if use_table else "computed"
    finally:
        cursor.close()
        if not use_table:
            _end_export(conn, plan, staged, began)


def export(conn, shop_id, path, *, format="csv", as_of_us=None, windows=None, reg=None):
    """Stream the shop's feature rows to ``path`` (csv, ndjson or parquet); returns a summary dict.

    Reads the materialized table when its last snapshot is at ``as_of_us`` (or
    ``as_of_us`` is None and a snapshot exists); otherwise computes the same
    rows on the fly at ``as_of_us`` (None = now). Memory does not grow with
    the number of rows: rows go from the cursor to the file one at a time
    (parquet: one record batch of ``store.frames.BATCH_ROWS`` rows at a time, typed as
    the catalog says; needs the extra ``[pandas]``, checked before anything is read).
    """
    if format not in EXPORT_FORMATS:
        raise UnknownNameError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    check_output_file(conn, path)  # never the database (or its -wal/-shm/-journal) itself
    if format == "parquet":
        frames.require_parquet()
    with feature_rows(conn, shop_id, as_of_us, windows, reg) as (plan, cursor, as_of_us, source):
        names = plan.column_names
        if format == "parquet":
            count = frames.write_parquet(path, frames.column_types(plan, reg), frames.cursor_rows(cursor))
        else:
            count = 0
            with open(path, "w", newline="", encoding="utf-8") as out:
                if format == "csv":
                    writer = csv.writer(out)
                    writer.writerow(names)
                    for row in cursor:
                        writer.writerow(row)
                        count += 1
                else:
                    for row in cursor:
                        out.write(json.dumps(dict(zip(names, map(_json_value, row))), ensure_ascii=False))
                        out.write("\n")
                        count += 1
    return {"path": str(path), "format": format, "rows": count, "as_of": timeutil.iso(as_of_us),
            "source": source, "columns": len(names)}


def to_arrow(conn, shop_id, as_of_us=None, windows=None, reg=None):
    """The rows ``export`` writes, as an Arrow table typed as the catalog says (``store.frames``),
    built one record batch at a time."""
    pa, _ = frames.require("to_arrow()")
    with feature_rows(conn, shop_id, as_of_us, windows, reg) as (plan, cursor, _, _):
        return frames.table(pa, frames.column_types(plan, reg), frames.cursor_rows(cursor))
