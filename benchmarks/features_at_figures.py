"""features_at figures (issue 12 item 4): point-in-time rows of every column.

    python -m benchmarks.features_at_figures --customers 10000 --pairs 10000 --cutoffs 100 [--db PATH]
    python -m benchmarks.features_at_figures ... --families purchase_features --families sequence_features
    python -m benchmarks.features_at_figures ... --sort        # the same pairs sorted by cutoff

Builds a seeded synthetic shop (``store.synthetic``, 365 days up to 2026-01-01) into a
file store (or reuses ``--db``), then, in a fresh subprocess per measurement (so each peak
RSS is its own), times ``features_at`` over ``--pairs`` pairs: random customers of the shop
(seeded), cutoffs drawn from ``--cutoffs`` distinct instants spread over the year, the pairs
given as a generator and every row consumed (not kept). Printed: seconds, rows per second,
peak RSS of the process (``ru_maxrss``) and its RSS after opening the store; beside it one
``materialize`` at one cutoff (every customer), for scale.
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
END_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, store.synthetic.DEFAULT_END
DAY_US = 86_400_000_000


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(args):
    """Runs in the subprocess: one measurement, printed as one JSON line."""
    from customer_activity_features import CustomerActivityFeatures
    from store import synthetic, timeutil

    with CustomerActivityFeatures(args.db, read_only=args.what != "materialize") as store:
        opened = _rss_mb()
        rng = random.Random(0)
        cutoffs = sorted(END_US - rng.randrange(365 * DAY_US) for _ in range(args.cutoffs))
        families = args.families or None

        def pairs():
            r = random.Random(1)
            if args.sort:  # the same pairs, sorted by cutoff (held in memory first: not for huge inputs)
                drawn = sorted(((r.randrange(args.customers), r.choice(cutoffs)) for _ in range(args.pairs)),
                               key=lambda p: p[1])
            else:
                drawn = ((r.randrange(args.customers), r.choice(cutoffs)) for _ in range(args.pairs))
            for index, cutoff in drawn:
                yield synthetic.customer_id(index), timeutil.from_us(cutoff)

        start = time.perf_counter()
        rows = columns = 0
        if args.what == "features_at":
            for row in store.features_at(pairs(), families=families):
                rows += 1
                columns = len(row)
        elif args.what == "legacy":
            import warnings
            warnings.simplefilter("ignore", DeprecationWarning)
            for _ in store.features_at(pairs(), days=None):
                rows += 1
        else:
            result = store.materialize(as_of=timeutil.from_us(cutoffs[len(cutoffs) // 2]), families=families)
            rows, columns = result["rows"], result["columns"]
        seconds = time.perf_counter() - start
    print(json.dumps({"what": args.what, "seconds": round(seconds, 2), "rows": rows, "columns": columns,
                      "rows_per_s": round(rows / seconds) if seconds else None,
                      "peak_rss_mb": round(_rss_mb(), 1), "rss_after_open_mb": round(opened, 1)}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--cutoffs", type=int, default=100)
    parser.add_argument("--families", action="append", default=[])
    parser.add_argument("--db")
    parser.add_argument("--sort", action="store_true", help="give the pairs sorted by cutoff")
    parser.add_argument("--only", default="features_at,materialize")
    parser.add_argument("--what", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.what:
        return _measure(args)
    sys.path.insert(0, str(ROOT))
    from customer_activity_features import CustomerActivityFeatures
    from store import synthetic

    with tempfile.TemporaryDirectory(prefix="caf-features-at-") as tmp:
        db = args.db or os.path.join(tmp, "shop.db")
        if not args.db or not os.path.exists(db):
            start = time.perf_counter()
            with CustomerActivityFeatures(db) as store:
                synthetic.populate(store, args.customers)
            print(f"built {args.customers:,} customers in {time.perf_counter() - start:.1f} s: {db}")
        for what in args.only.split(","):
            cmd = [sys.executable, "-m", "benchmarks.features_at_figures", "--what", what, "--db", db,
                   "--customers", str(args.customers), "--pairs", str(args.pairs), "--cutoffs", str(args.cutoffs)]
            for fam in args.families:
                cmd += ["--families", fam]
            if args.sort:
                cmd.append("--sort")
            out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
            print(out.strip())


if __name__ == "__main__":
    main()
