"""Benchmark harness (issue 6).

    python -m benchmarks run --customers 100000          # full run, results in benchmarks/results/
    python -m benchmarks run --customers 2000 --smoke    # CI: checks the harness end to end, asserts no timing

Generates a seeded synthetic shop (store.synthetic), loads it into a file
database, runs every measurement (each step in its own subprocess, so peak RSS
is per step), prints a table and writes ``<date>-<customers>.json`` plus
``<date>-<customers>.md``. Every headline figure is a ratio to a reference
measured in the same run on the same data.
"""

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from . import report

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
DATA_DIR = ROOT.parent / "shared" / "data"
AS_OF_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, the end of the synthetic year

# Order matters: ingest_api builds the shop every later step reads; handwritten_sql
# runs before python_memory (which checks its answers against the hand-written table).
ORDER = ("generate", "ingest_api", "ingest_raw", "ingest_fast", "single_add", "dump_loader",
         "dump_sqlite_utils", "materialize", "handwritten_sql", "python_memory", "dataframes",
         "parallel", "lookups", "capped", "refresh", "engines")


# Steps that may import optional libraries from --reference-libs (pandas, DuckDB). Only these
# get it on their path: with numpy importable, sqlite-utils imports it in every process (+40 MB
# RSS and a larger address space), which would distort the store's own steps.
REFERENCE_LIB_STEPS = ("dataframes",)


def run_step(name, cfg, timeout):
    t0 = time.perf_counter()
    env = dict(os.environ)
    if name in REFERENCE_LIB_STEPS and cfg.get("reference_libs"):
        env["PYTHONPATH"] = os.pathsep.join([cfg["reference_libs"]] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH")
                                                                       else []))
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.steps", name, json.dumps(cfg)],
                              cwd=str(ROOT), capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)[-800:],
                "wall_seconds": time.perf_counter() - t0}
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    result = json.loads(lines[-1])
    result["wall_seconds"] = time.perf_counter() - t0
    return result


def machine():
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    shell = shutil.which("sqlite3")
    return {
        "nproc": os.cpu_count(), "memory_gb": mem, "platform": platform.platform(),
        "python": platform.python_version(), "sqlite_python_module": sqlite3.sqlite_version,
        "sqlite3_shell": subprocess.run([shell, "--version"], capture_output=True, text=True).stdout.split()[0]
        if shell else None,
    }


def run(args):
    started = datetime.now(timezone.utc)
    own_workdir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="caf-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.repeat:
        repeat = heavy = args.repeat
    elif args.smoke:
        repeat = heavy = 1
    else:
        repeat = 3 if args.customers < 50_000 else 2 if args.customers <= 200_000 else 1
        heavy = repeat if args.customers < 50_000 else 1
    cfg = {
        "customers": args.customers, "seed": args.seed, "repeat": repeat, "heavy_repeat": heavy,
        "dump_repeat": 1 if args.smoke else min(repeat, 2),
        "workdir": str(workdir), "db": str(workdir / "shop.db"), "as_of_us": AS_OF_US,
        "smoke": args.smoke, "data_dir": str(Path(args.data_dir) if args.data_dir else DATA_DIR),
        "as_cap_bytes": args.as_cap_mb * 2**20,
        "dump_lines": 20_000 if args.smoke else (args.dump_lines or None),
        "reference_libs": str(Path(args.reference_libs).resolve()) if args.reference_libs else None,
    }
    steps = [s for s in ORDER if not args.only or s in args.only.split(",") or s == "generate"]
    results = {}
    timeout = args.step_timeout or max(600, args.customers // 100)
    print(f"benchmark: {args.customers:,} customers, seed {args.seed}, repeat {repeat} "
          f"(ingest/materialize/refresh: {heavy}), workdir {workdir}",
          file=sys.stderr)
    try:
        for name in steps:
            t0 = time.perf_counter()
            print(f"  {name} ...", end="", file=sys.stderr, flush=True)
            results[name] = run_step(name, cfg, timeout)
            status = ("skipped" if "skipped" in results[name] else
                      "ERROR " + results[name]["error"] if "error" in results[name] else "ok")
            print(f" {time.perf_counter() - t0:.1f} s {status}", file=sys.stderr, flush=True)
    finally:
        if own_workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    finished = datetime.now(timezone.utc)
    doc = {
        "date": started.strftime("%Y-%m-%d"), "started": started.isoformat(timespec="seconds"),
        "total_seconds": (finished - started).total_seconds(),
        "command": "python -m benchmarks " + " ".join(args.argv),
        "customers": args.customers, "seed": args.seed, "repeat": repeat, "heavy_repeat": heavy,
        "step_timeout_s": timeout, "smoke": args.smoke,
        "as_of_us": AS_OF_US, "machine": machine(), "steps": results,
    }
    doc["headline"] = report.headline(doc)
    out_dir = Path(args.output) if args.output else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{doc['date']}-{args.customers}" + ("-smoke" if args.smoke else "")
    previous = out_dir / f"{stem}.json"
    if args.only and previous.exists():  # a partial re-run updates the day's full run
        old = json.loads(previous.read_text())
        rerun = sorted(k for k in results if k != "generate")
        old["steps"].update({k: results[k] for k in rerun})
        old.setdefault("reruns", []).append({"steps": rerun, "command": doc["command"],
                                             "started": doc["started"]})
        doc = old
        doc["headline"] = report.headline(doc)
    (out_dir / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    markdown = report.markdown(doc)
    (out_dir / f"{stem}.md").write_text(markdown)
    print(report.table(doc))
    print(f"\nwrote {out_dir / (stem + '.json')} and {stem}.md ({doc['total_seconds']:.0f} s)")
    if args.smoke:
        errors = {k: v["error"] for k, v in results.items() if "error" in v}
        if errors:
            print("SMOKE FAILED: " + json.dumps(errors, indent=2), file=sys.stderr)
            return 1
        agreement = results.get("python_memory", {}).get("agreement_with_handwritten_sql")
        if agreement and agreement["mismatches"]:
            print(f"SMOKE FAILED: the Python and SQL references disagree: {agreement}", file=sys.stderr)
            return 1
        frames = results.get("dataframes", {}).get("agreement_with_handwritten_sql") or {}
        bad = {k: v for k, v in frames.items() if v and (v["mismatches"] or v["missing"])}
        if bad:
            print(f"SMOKE FAILED: a dataframe reference disagrees with SQL: {bad}", file=sys.stderr)
            return 1
        engines = results.get("engines", {})
        if engines.get("mismatched_cells"):
            print(f"SMOKE FAILED: materialize(engine='duckdb') differs from engine='sqlite' in "
                  f"{engines['mismatched_cells']} cells", file=sys.stderr)
            return 1
        against = results.get("handwritten_sql", {}).get("agreement_with_materialize")
        if against and against["mismatches"]:
            print(f"SMOKE FAILED: materialize disagrees with the hand-written SQL: {against}", file=sys.stderr)
            return 1
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the benchmark suite")
    r.add_argument("--customers", type=int, default=100_000)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--repeat", type=int, default=0, help="runs per measurement (median); default 3 below "
                   "50,000 customers, 2 up to 200,000, 1 above and in smoke mode; the ingest, materialize "
                   "and refresh steps run once from 50,000 customers up")
    r.add_argument("--step-timeout", type=int, default=0,
                   help="seconds before a step is abandoned (recorded as an error); default max(600, customers/100)")
    r.add_argument("--smoke", action="store_true", help="CI mode: fail on any step error; assert no timing")
    r.add_argument("--output", help="directory for the JSON and Markdown results (default benchmarks/results)")
    r.add_argument("--workdir", help="where the databases go (default: a temporary directory)")
    r.add_argument("--keep", action="store_true", help="keep the temporary databases")
    r.add_argument("--only", help="comma-separated step names (generate always runs)")
    r.add_argument("--data-dir", help="where online_retail.csv.gz is (default ../shared/data)")
    r.add_argument("--dump-lines", type=int, default=100_000,
                   help="lines of online_retail.csv.gz both dump loaders read (0 = the whole file; smoke: 20,000)")
    r.add_argument("--as-cap-mb", type=int, default=128, help="RLIMIT_AS of the capped step, MB")
    r.add_argument("--reference-libs", metavar="DIR",
                   help="a directory with pandas and duckdb (pip install --target DIR pandas duckdb), put on the "
                        "path of the dataframes step only; never a dependency of the project")
    args = ap.parse_args(argv)
    args.argv = argv
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
