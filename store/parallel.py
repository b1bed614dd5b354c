"""Materialisation on every core (``materialize(workers=N)``): the parent's side.

The writer cuts the shop's customers into ranges (``partition_bounds``), starts one worker
process per range (``python -m store.partition``, see store/partition.py for the worker's
side and how it dies with its parent), and copies the rows each worker computed into the new
table (``write_partitioned``), all inside its one write transaction.
"""

import json
import numbers
import os
import subprocess
import sys
import tempfile

from . import localtime, scratch
from .errors import StoreError
from .plan import attach
from .resources import query
from .runs import NEW_TABLE

MAX_WORKERS = 64


def check_workers(workers):
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be a whole number in 1..{MAX_WORKERS}, got {workers!r}")
    return int(workers)


def partition_bounds(conn, shop_id, workers):
    """``workers`` customer-id ranges [lo, hi) of about equal size, or None when the shop is too
    small to split. The cut points are quantiles of the purchasing customers (one ordered pass
    of the purchases key); the ranges cover every id whatever the cut points are."""
    n = conn.execute(query("partition_customer_count"), {"shop_id": shop_id}).fetchone()[0]
    if n < 2 * workers:
        return None
    cuts = [conn.execute(query("partition_customer_at"), {"shop_id": shop_id, "offset": n * i // workers}
                         ).fetchone()[0] for i in range(1, workers)]
    cuts = sorted(set(cuts))
    return list(zip([""] + cuts, cuts + [None]))


def write_partitioned(conn, cleanup, plan, path, shop_id, as_of_us, bounds, params):
    """Compute the customer ranges ``bounds`` in parallel worker processes and insert their rows.

    The caller holds the write transaction (BEGIN IMMEDIATE) from before the workers start to
    after the rows are in: no other writer can commit meanwhile, so every worker's read-only
    connection sees the same committed state as this connection. Each worker (``python -m
    store.partition``, a fresh interpreter: no fork of this process and its connections)
    fills ``target`` with its range, stages every family into a scratch file of its own
    (no journal) and joins them into the range's rows; this connection, the single writer,
    attaches the files and copies each range's rows in customer order. Returns the number
    of targets.

    Scratch files go into one directory of this run (``store.scratch.make_dir``, owner
    recorded), made after removing the stale ones of runs whose process is gone
    (``store.scratch.sweep_stale``). ``cleanup`` (an ExitStack closed after COMMIT or
    ROLLBACK) detaches the files and deletes the directory. Workers die with this process
    (store/partition.py: they read a stdin pipe only this process holds the other end of,
    and more); if this function is left by an exception (a worker failed, KeyboardInterrupt)
    the workers still running are stopped and waited for before the directory goes.
    """
    workdir = scratch.run_dir(cleanup)
    jobs = []
    try:
        for i, (lo, hi) in enumerate(bounds):
            task = {"db": str(path), "scratch": os.path.join(workdir, f"part{i}.db"), "shop_id": shop_id,
                    "as_of_us": as_of_us, "windows": list(plan.windows), "families": list(plan.family_names),
                    "feature_files": list(plan.reg.files),
                    "lo": lo, "hi": hi, "timezone": localtime.installed(conn) or "UTC",
                    "parent_pid": os.getpid()}
            jobs.append((task, _start_worker(task)))
        failures = []
        for _, proc in jobs:
            if proc.wait() != 0:
                failures.append(_last_error_line(proc))
    except BaseException:
        _stop_workers([proc for _, proc in jobs])
        raise
    finally:
        for _, proc in jobs:
            _close_worker_files(proc)
    if failures:
        raise StoreError("a materialize worker failed: " + "; ".join(failures))
    recomputed = 0
    for i, (task, _) in enumerate(jobs):
        schema = attach(conn, cleanup, task["scratch"], f"part{i}")
        # same definition on both sides: SQLite copies the records without decoding them
        conn.execute(f"INSERT INTO main.{NEW_TABLE} SELECT * FROM {schema}.{NEW_TABLE}")
        recomputed += conn.execute(f"SELECT COUNT(*) FROM {schema}.target").fetchone()[0]
    return recomputed


WORKER_STOP_WAIT_S = 5


def _start_worker(task):
    """A worker process: this interpreter, this package first on its path. Its stdin is a pipe
    this process never writes to (the worker takes its end-of-file as this process's death);
    its stderr goes to an anonymous temporary file (read when it fails); stdout is unused."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([package_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    err = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "store.partition", json.dumps(task)], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
    except BaseException:
        err.close()
        raise
    proc.caf_stderr = err
    return proc


def _last_error_line(proc):
    err = getattr(proc, "caf_stderr", None)
    text = ""
    if err is not None:
        err.seek(0)
        text = err.read().decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else f"exit {proc.returncode}"


def _stop_workers(procs):
    """Stop the workers still running: SIGTERM (they delete their scratch), SIGKILL after
    ``WORKER_STOP_WAIT_S``; waits for each."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(WORKER_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _close_worker_files(proc):
    for f in (proc.stdin, getattr(proc, "caf_stderr", None)):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
