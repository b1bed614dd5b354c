"""How rows move between the store and DuckDB (issue 13, item 3): each way in a fresh process.

    python -m benchmarks.engine_transfer W/shop.db [--repeat 2]

Reads (the shop's rows of every table a materialisation of every family reads, into a new
DuckDB database in memory):

* ``python``: fetched through the store's sqlite3 connection 50,000 rows at a time, each batch
  turned into an Arrow record batch and appended (``copy_to_duckdb(..., through_connection=True)``;
  what a store without a file does);
* ``adbc``: read by SQLite itself into Arrow through the ADBC SQLite driver over a read-only
  connection to the file (``copy_to_duckdb``, what ``materialize(engine="duckdb")`` does).

Writes (the rows of ``customer_features``, every stored column, from a DuckDB table back into
the store's ``customer_features_new`` inside a write transaction, rolled back):

* ``executemany``: DuckDB's rows as Python tuples, ``executemany`` of one INSERT;
* ``adbc``: DuckDB's rows as Arrow batches, bulk-ingested by the ADBC SQLite driver into a
  scratch SQLite file of the same table definition, attached and copied in one INSERT ... SELECT
  (what ``materialize(engine="duckdb")`` does).

Prints wall and CPU seconds and the process's peak RSS of each, as JSON lines and a table.
"""

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _store(db):
    sys.path.insert(0, str(ROOT))
    from customer_activity_features import CustomerActivityFeatures
    return CustomerActivityFeatures(db)


def run_one(db, kind, way):
    from store import engines, plan as _plan
    from store.runs import NEW_TABLE

    store = _store(db)
    conn = store.conn
    plan = _plan.Plan(conn)
    schemas = engines.input_schemas(conn, plan)
    dcon = engines.duckdb_connection(temp_directory=tempfile.gettempdir())
    out = {"kind": kind, "way": way}
    if kind == "read":
        t0, c0 = time.perf_counter(), time.process_time()
        counts = engines.copy_to_duckdb(conn, dcon, store.shop_id, schemas, through_connection=(way == "python"))
        out.update(seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0, rows=sum(counts.values()))
    else:
        stored = list(plan.stored_names)
        # DuckDB holds the stored rows (copied in, not timed), as after a materialisation
        table = "customer_features_stored"
        engines.copy_to_duckdb(conn, dcon, store.shop_id, {table: engines.table_schema(conn, table)})
        select = "SELECT " + ", ".join(f'"{n}"' for n in stored) + " FROM customer_features_stored ORDER BY customer_id"
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"DROP TABLE IF EXISTS {NEW_TABLE}")
        conn.execute(plan.create_sql(NEW_TABLE))
        t0, c0 = time.perf_counter(), time.process_time()
        with contextlib.ExitStack() as cleanup:
            if way == "executemany":
                cur = dcon.execute(select)
                insert = plan.insert_values_sql(NEW_TABLE)
                while True:
                    batch = cur.fetchmany(engines.BATCH_ROWS)
                    if not batch:
                        break
                    conn.executemany(insert, batch)
            else:
                from store import scratch
                engines.write_batches(conn, cleanup, scratch.run_dir(cleanup), plan, NEW_TABLE,
                                      dcon.sql(select).to_arrow_reader(engines.BATCH_ROWS))
            out.update(seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
                       rows=conn.execute(f"SELECT COUNT(*) FROM {NEW_TABLE}").fetchone()[0])
            conn.execute("ROLLBACK")
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dcon.close()
    store.close()
    return out


WAYS = (("read", "python"), ("read", "adbc"), ("write", "executemany"), ("write", "adbc"))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.engine_transfer")
    ap.add_argument("db", help="a store with a materialised customer_features (e.g. W/shop.db of benchmarks run --keep)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--one", nargs=2, metavar=("KIND", "WAY"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.db, *args.one)))
        return
    results = []
    for _ in range(args.repeat):
        for kind, way in WAYS:  # alternated, each in a fresh process
            proc = subprocess.run([sys.executable, "-m", "benchmarks.engine_transfer", args.db, "--one", kind, way],
                                  capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                sys.exit(f"{kind} {way} failed: {proc.stderr.strip().splitlines()[-1:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    print("\n| step | way | rows | wall s | CPU s | peak RSS MB |\n|---|---|---|---|---|---|")
    for kind, way in WAYS:
        mine = [r for r in results if r["kind"] == kind and r["way"] == way]
        print(f"| {kind} | {way} | {mine[0]['rows']:,} | " + ", ".join(f"{r['seconds']:.2f}" for r in mine) + " | "
              + ", ".join(f"{r['cpu_seconds']:.2f}" for r in mine) + " | "
              + ", ".join(f"{r['peak_rss_mb']:.0f}" for r in mine) + " |")


if __name__ == "__main__":
    main()
