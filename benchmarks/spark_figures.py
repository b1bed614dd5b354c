"""Spark local[2] figures (docs/scale-out.md): an enriched synthetic shop of N customers, then
``export_events`` (SQLite -> Parquet), ``materialize_on_spark`` written to Parquet, and
``import_features`` (Parquet -> customer_features), each timed (wall and this process's CPU;
Spark's own work is in its JVM, so its wall time is the figure), with ``materialize()`` on SQLite
of the same shop for comparison and the cells compared. Prints one JSON document.

    python -m benchmarks.spark_figures --customers 100000 [--db /tmp/spark100k.db] [--keep]

Needs the [spark] extra and Java. Memory: peak RSS of this process (the driver's Python side;
the JVM's heap is Spark's default, 1 GB driver memory in local mode).
"""

import argparse
import json
import math
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from customer_activity_features import CustomerActivityFeatures, materialize_on_spark
from store import synthetic

AS_OF = "2026-01-01T00:00:00Z"


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, round(time.perf_counter() - wall, 2), round(time.process_time() - cpu, 2)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--db", default=None, help="reuse (or create) this store file")
    p.add_argument("--timezone", default="UTC")
    p.add_argument("--buckets", type=int, default=16)
    p.add_argument("--keep", action="store_true", help="keep the export and the output")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caf-spark-"))
    db = Path(args.db) if args.db else work / "shop.db"
    figures = {"customers": args.customers, "timezone": args.timezone, "buckets": args.buckets,
               "cores": os.cpu_count(), "load_average_start": os.getloadavg()}
    fresh = not db.exists()
    with CustomerActivityFeatures(str(db), timezone=args.timezone) as store:
        if fresh:
            _, figures["populate_s"], _ = timed(lambda: synthetic.populate_enriched(store, args.customers))
        figures["events"] = sum(store.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in
                                ("purchases", "sessions", "cart_events", "support_interactions", "refunds",
                                 "interactions", "purchase_attributions"))
        manifest, figures["export_s"], figures["export_cpu_s"] = timed(
            lambda: store.export_events(work / "events", buckets=args.buckets))
        figures["export_mb"] = round(sum(f.stat().st_size for f in (work / "events").rglob("*") if f.is_file())
                                     / 1e6, 1)
        _, figures["sqlite_materialize_s"], figures["sqlite_materialize_cpu_s"] = timed(
            lambda: store.materialize(as_of=AS_OF))
        expected = {r[1]: r for r in store.conn.execute("SELECT * FROM customer_features")}

        from pyspark.sql import SparkSession

        session, figures["spark_session_s"], _ = timed(lambda: (
            SparkSession.builder.master("local[2]").config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "8").getOrCreate()))
        session.sparkContext.setLogLevel("ERROR")
        _, figures["spark_materialize_s"], _ = timed(lambda: materialize_on_spark(
            session, work / "events", as_of=AS_OF).write.parquet(str(work / "features")))
        result, figures["import_s"], figures["import_cpu_s"] = timed(lambda: store.import_features(work / "features"))
        figures["rows"] = result["rows"]
        bad = cells = 0
        for row in store.conn.execute("SELECT * FROM customer_features"):
            for a, b in zip(expected[row[1]], row):
                cells += 1
                if isinstance(a, float) and isinstance(b, float):
                    bad += not (a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b)) or (math.isnan(a) and math.isnan(b)))
                else:
                    bad += a != b
        figures["cells"], figures["mismatched_cells"] = cells, bad
        session.stop()
    figures["end_to_end_s"] = round(figures["export_s"] + figures["spark_materialize_s"] + figures["import_s"], 2)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures["load_average_end"] = os.getloadavg()
    print(json.dumps(figures, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
