"""Loader throughput on the real Online Retail file, next to `sqlite-utils insert` of the same raw CSV.

    .venv/bin/python benchmarks/loader_figures.py [--repeat N]

Prints, for each of N rounds (default 2), in one run:

* ``caf-loader``: ``store.loaders.load(store, "online-retail", online_retail.csv.gz)``
  into a fresh database file, end to end (hashing, gunzip, CSV parsing,
  validation, staging, per-invoice aggregation into purchases and refunds,
  rejections with payloads, the loads row);
* ``sqlite-utils``: ``gunzip -c online_retail.csv.gz | sqlite-utils insert x.db lines - --csv``
  into a fresh database file (raw rows as text, no validation, no aggregation).

Wall seconds, CPU seconds (user + system of the process doing the work) and
input lines per second (541,909 lines / wall seconds). The machine's load
average is printed too: on a shared machine wall time stretches while CPU
time does not.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from customer_activity_features import CustomerActivityFeatures  # noqa: E402
from store import loaders  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
LINES = 541_909


def cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_loader(workdir):
    db = workdir / "loader.db"
    store = CustomerActivityFeatures(db)
    cpu0, t0 = cpu_self(), time.perf_counter()
    report = loaders.load(store, "online-retail", DATA)
    wall, cpu = time.perf_counter() - t0, cpu_self() - cpu0
    store.close()
    assert report.read == LINES, report
    return wall, cpu, report


def run_sqlite_utils(workdir):
    exe = Path(sys.executable).with_name("sqlite-utils")
    if not exe.exists():
        exe = shutil.which("sqlite-utils")
    db = workdir / "sqlite_utils.db"
    cpu0, t0 = cpu_children(), time.perf_counter()
    gunzip = subprocess.Popen(["gunzip", "-c", str(DATA)], stdout=subprocess.PIPE)
    insert = subprocess.run([str(exe), "insert", str(db), "lines", "-", "--csv"], stdin=gunzip.stdout,
                            capture_output=True, text=True)
    gunzip.stdout.close()
    gunzip.wait()
    wall, cpu = time.perf_counter() - t0, cpu_children() - cpu0
    if insert.returncode != 0:
        raise SystemExit(f"sqlite-utils insert failed: {insert.stderr}")
    return wall, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} is absent: nothing to measure")
    print(f"file: {DATA} ({DATA.stat().st_size:,} bytes, {LINES:,} lines); python {sys.version.split()[0]}")
    print(f"{'round':>5}  {'what':<13} {'wall s':>7} {'cpu s':>7} {'lines/s (wall)':>15} {'lines/s (cpu)':>14}  load avg")
    for round_no in range(1, args.repeat + 1):
        with tempfile.TemporaryDirectory(prefix="caf-bench-") as tmp:
            tmp = Path(tmp)
            wall, cpu, report = run_loader(tmp)
            print(f"{round_no:>5}  {'caf-loader':<13} {wall:7.2f} {cpu:7.2f} {LINES / wall:15,.0f} "
                  f"{LINES / cpu:14,.0f}  {os.getloadavg()[0]:.1f}")
            wall, cpu = run_sqlite_utils(tmp)
            print(f"{round_no:>5}  {'sqlite-utils':<13} {wall:7.2f} {cpu:7.2f} {LINES / wall:15,.0f} "
                  f"{LINES / cpu:14,.0f}  {os.getloadavg()[0]:.1f}")
    print(f"loader result: read {report.read:,} = accepted {report.accepted:,} + rejected {report.rejected:,} "
          f"+ duplicates {report.duplicates:,}; tables {report.tables}; rejected by reason "
          f"{report.rejected_by_reason}")


if __name__ == "__main__":
    main()
