"""RFM/T figures over the whole online_retail dump (issue 5 acceptance: under 10 seconds).

    .venv/bin/python benchmarks/rfm_figures.py [--db PATH] [--keep]
    .venv/bin/python benchmarks/rfm_figures.py --timezone-mechanism

Loads /work/shared/data/online_retail.csv.gz (``../shared/data`` from the repo
root) into a fresh file store through the bulk API, with a throwaway
aggregation (one purchase per invoice: the sum of quantity * unit price of its
lines; cancellations, invoices 'C...', and lines without a customer are left
out, as are invoices whose total is negative), then times:

* rfm_summary for freq D, W and h, in a UTC store and in a Europe/London store
  (the invoice times are naive UK wall-clock times: they are read as
  Europe/London, so both stores hold the same instants);
* calibration_and_holdout;
* the sequence_features family for every customer (one cohort statement).

Every timed call streams all its rows (consumed, not kept). Prints the figures.
"""

import argparse
import csv
import gzip
import io
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from customer_activity_features import CustomerActivityFeatures  # noqa: E402
from store import timeutil  # noqa: E402
from store.features import compose  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
LONDON = ZoneInfo("Europe/London")


def invoices(path, counts):
    """One purchase dict per invoice, streamed (the dump lists an invoice's lines together)."""
    with gzip.open(path, "rb") as raw:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"))
        current, lines = None, []
        for row in reader:
            counts["lines"] += 1
            if row["InvoiceNo"] != current:
                if lines:
                    yield from _purchase(current, lines, counts)
                current, lines = row["InvoiceNo"], []
            lines.append(row)
        if lines:
            yield from _purchase(current, lines, counts)


def _purchase(invoice, lines, counts):
    counts["invoices"] += 1
    if invoice.startswith("C"):
        counts["cancellations"] += 1
        return
    customer = lines[0]["CustomerID"].strip()
    if not customer:
        counts["no_customer"] += 1
        return
    if customer.endswith(".0"):  # 17850.0 -> 17850
        customer = customer[:-2]
    total = sum(float(r["Quantity"]) * float(r["UnitPrice"]) for r in lines)
    if total < 0:
        counts["negative_total"] += 1
        return
    when = datetime.strptime(lines[0]["InvoiceDate"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=LONDON)
    counts["purchases"] += 1
    yield {"customer_id": customer, "order_value": round(total, 2), "purchase_date": when,
           "order_id": invoice}


def timed(label, fn):
    start = time.perf_counter()
    rows = 0
    for _ in fn():
        rows += 1
    elapsed = time.perf_counter() - start
    print(f"  {label:<58} {elapsed:7.3f} s  {rows:>7,} rows")
    return elapsed


def timezone_mechanism(n=1_000_000):
    """ns per row of the local-time mechanisms, on n synthetic purchases (docs/rfm.md figures)."""
    import random
    import sqlite3

    from store import localtime

    conn = sqlite3.connect(":memory:")
    conn.isolation_level = None
    conn.execute("CREATE TABLE p (customer_id TEXT, event_time_us INTEGER, v REAL, "
                 "PRIMARY KEY (customer_id, event_time_us)) WITHOUT ROWID")
    rnd = random.Random(1)
    conn.execute("BEGIN")
    conn.executemany("INSERT OR IGNORE INTO p VALUES (?, ?, 1.0)", (
        (str(rnd.randrange(50_000)), rnd.randrange(1_262_304_000, 1_420_070_400) * 10**6 + rnd.randrange(10**6))
        for _ in range(n)))
    conn.execute("COMMIT")
    rows = conn.execute("SELECT COUNT(*) FROM p").fetchone()[0]
    x = "event_time_us"
    seek = (f"(SELECT o.offset_us FROM temp.caf_tz_offsets AS o WHERE o.start_us <= {x} "
            "ORDER BY o.start_us DESC LIMIT 1)")
    variants = {
        "no conversion (baseline)": x,
        "offsets table, correlated seek per row": f"({x} + {seek})",
        # the idiom of sql/localtime.sql (purchase_local_time), spelled here over the table p
        "COALESCE(fixed offset, seek)  [chosen idiom]": f"({x} + COALESCE((SELECT fixed_offset_us FROM temp.caf_tz), "
                                                        f"{seek}))",
        "caf_local_us() Python function": f"caf_local_us({x})",
    }
    print(f"local-time mechanisms, {rows:,} rows, "
          "SELECT customer_id, COUNT(DISTINCT local_day) ... GROUP BY customer_id (best of 2):")
    for tz in ("UTC", "America/New_York"):
        localtime.install(conn, tz)
        for label, expr in variants.items():
            sql = f"SELECT customer_id, COUNT(DISTINCT ({expr}) / 86400000000) FROM p GROUP BY customer_id"
            best = None
            for _ in range(2):
                start = time.perf_counter()
                for _ in conn.execute(sql):
                    pass
                elapsed = time.perf_counter() - start
                best = elapsed if best is None else min(best, elapsed)
            print(f"  {tz:<17} {label:<46} {best:6.3f} s  {best / rows * 1e9:5.0f} ns/row")
    conn.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="store file (default: a temporary file)")
    parser.add_argument("--keep", action="store_true", help="keep the store file")
    parser.add_argument("--timezone-mechanism", action="store_true",
                        help="only time the local-time mechanisms on 1M synthetic rows")
    args = parser.parse_args(argv)
    if args.timezone_mechanism:
        timezone_mechanism()
        return 0
    if not DATA.exists():
        print(f"skipped: {DATA} is absent")
        return 0
    tmp = None
    if args.db:
        db = Path(args.db)
    else:
        tmp = tempfile.TemporaryDirectory()
        db = Path(tmp.name) / "online_retail.db"
    if db.exists():
        db.unlink()

    counts = dict.fromkeys(("lines", "invoices", "cancellations", "no_customer", "negative_total",
                            "purchases"), 0)
    start = time.perf_counter()
    with CustomerActivityFeatures(db) as store:
        result = store.add_purchases(invoices(DATA, counts), batch_size=5000)
    load_s = time.perf_counter() - start
    print(f"online_retail: {counts['lines']:,} lines, {counts['invoices']:,} invoices "
          f"({counts['cancellations']:,} cancellations, {counts['no_customer']:,} without customer, "
          f"{counts['negative_total']:,} negative) -> {counts['purchases']:,} purchases offered")
    print(f"bulk load: {result} in {load_s:.2f} s")

    figures = {}
    for tz in ("UTC", "Europe/London"):
        with CustomerActivityFeatures(db, timezone=tz) as store:
            print(f"store timezone {tz}:")
            for freq in ("D", "W", "h"):
                figures[(tz, freq)] = timed(f"rfm_summary(freq={freq!r})",
                                            lambda: store.rfm_summary(freq=freq))
            timed("rfm_summary('2011-12-09', freq='D', include_first=True)",
                  lambda: store.rfm_summary("2011-12-09T23:59:59Z", include_first=True))
            timed("calibration_and_holdout('2011-06-30', '2011-12-09', freq='D')",
                  lambda: store.calibration_and_holdout("2011-06-30T23:59:59Z", "2011-12-09T23:59:59Z"))
    with CustomerActivityFeatures(db) as store:
        as_of = timeutil.to_us("2011-12-10T00:00:00Z")
        target = ("target AS (SELECT ROW_NUMBER() OVER (ORDER BY customer_id) AS target_id, customer_id, "
                  ":as_of_us AS as_of_us "
                  "FROM (SELECT DISTINCT customer_id FROM purchases WHERE shop_id = :shop_id))")
        sql = compose("sequence_features", (), target)
        timed("sequence_features, every customer (one statement)",
              lambda: store.conn.execute(sql, {"shop_id": store.shop_id, "as_of_us": as_of}))
        sample = next(store.rfm_summary(freq="D"))
        print(f"first row (UTC, D): {sample}")
    worst = max(figures.values())
    print(f"slowest full RFM summary: {worst:.3f} s (acceptance: under 10 s)")
    if args.keep:
        print(f"store kept at {db}")
    elif tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
