"""Subprocess entry points for the reliability tests (crash, concurrency).

Run as ``python tests/reliability_workers.py MODE ARGS...``; every mode is
deterministic, so a killed run can be re-run and compared with an
uninterrupted one. Side files record what was *committed*: a line is appended
(and fsynced) only after the transaction holding it has committed, so after a
SIGKILL everything named in the side file must be in the database.

Modes:

* ``single DB LOG N [RESUME]``: N single ``add_purchase`` calls (order ids
  P000000..), ``flush()`` after every ``SINGLE_BATCH`` calls, then the batch
  number is logged; RESUME=1 starts after the last logged batch.
* ``bulk DB LOG CUSTOMERS BATCH [RESUME]``: the synthetic shop of CUSTOMERS
  customers through the bulk methods, kind by kind; after every committed
  batch the kind and the number of records offered so far are logged;
  RESUME=1 skips what the log says is committed.
* ``rounds DB LOG ROUNDS``: the concurrency writer; each round is one bulk
  batch of ROUND_SIZE purchases (value 1.0, one per cohort customer) followed
  by one bulk batch of sessions; the round number is logged after both.
* ``reader DB OUT SECONDS``: the concurrency reader; for SECONDS it reads the
  cohort's features and appends one JSON line per answer to OUT.
* ``writer2 DB TAG N``: a writer for the two-writers test: N single
  ``add_purchase`` calls with ids TAG-i, flushing every 100, plus a bulk load
  of N purchases with ids TAG-bulk-i.
* ``open DB``: opens the store (migrating a fresh file) and closes it.
* ``loader DB LOG FILE BATCH``: ``store.load('purchases', FILE)`` with
  BATCH rows per committed batch; ``report.read`` is logged after each.
* ``materialize DB LOG AS_OF1,AS_OF2 TIMES``: ``store.materialize`` TIMES
  times, alternating the as_of values; each finished run's as_of is logged.
"""

import itertools
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from customer_activity_features import CustomerActivityFeatures  # noqa: E402
from store import synthetic  # noqa: E402

SINGLE_BATCH = 200
COHORT = tuple(f"R{i:02d}" for i in range(10))
ROUND_SIZE = len(COHORT)
AS_OF = "2030-01-01T00:00:00Z"
BULK_KINDS = (("purchase", "add_purchases"), ("session", "add_sessions"),
              ("cart_event", "add_cart_events"), ("support_interaction", "add_support_interactions"))


def log_line(handle, text):
    handle.write(text + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def single_event(i):
    """The i-th event of the single-call stream (deterministic)."""
    return (f"C{i % 37:03d}", round(1 + (i * 7919 % 10_000) / 100, 2),
            f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z", f"P{i:06d}")


def logged_lines(log):
    if not os.path.exists(log):
        return []
    with open(log) as handle:
        return [line.split() for line in handle if line.endswith("\n")]


def run_single(db, log, n, resume="0"):
    """With resume=1 the stream restarts after the last logged batch (a producer resuming from
    its checkpoint); with resume=0 it is offered again from the start (duplicates)."""
    n = int(n)
    start = 0
    if resume == "1":
        batches = [int(x[0]) for x in logged_lines(log)]
        start = (max(batches) + 1) * SINGLE_BATCH if batches else 0
    with CustomerActivityFeatures(db) as store, open(log, "a") as out:
        print("ready", flush=True)
        for i in range(start, n):
            customer, value, when, order_id = single_event(i)
            store.add_purchase(customer, value, when, order_id=order_id)
            if (i + 1) % SINGLE_BATCH == 0:
                store.flush()
                log_line(out, str((i + 1) // SINGLE_BATCH - 1))
    print("done", flush=True)


def bulk_stream(kind, customers):
    return synthetic.events(kind, int(customers), seed=7)


def run_bulk(db, log, customers, batch, resume="0"):
    """With resume=1 each kind's stream restarts after its last logged batch."""
    batch = int(batch)
    done = {}
    if resume == "1":
        for kind, offered in logged_lines(log):
            done[kind] = max(done.get(kind, 0), int(offered))
    with CustomerActivityFeatures(db) as store, open(log, "a") as out:
        print("ready", flush=True)
        for kind, method in BULK_KINDS:
            skip = done.get(kind, 0)

            def progress(result, kind=kind, skip=skip):
                log_line(out, f"{kind} {skip + result.offered}")
            records = itertools.islice(bulk_stream(kind, customers), skip, None)
            getattr(store, method)(records, batch_size=batch, progress=progress)
    print("done", flush=True)


def run_rounds(db, log, rounds):
    with CustomerActivityFeatures(db) as store, open(log, "a") as out:
        print("ready", flush=True)
        for r in range(int(rounds)):
            when = "2029-12-20T00:00:00Z"
            store.add_purchases([{"customer_id": c, "order_value": 1.0, "purchase_date": when,
                                  "order_id": f"RP-{r}-{c}"} for c in COHORT])
            store.add_sessions([{"customer_id": c, "duration_seconds": 60.0, "device_type": "mobile",
                                 "session_date": when, "session_id": f"RS-{r}-{c}"} for c in COHORT])
            log_line(out, str(r))
    print("done", flush=True)


def run_reader(db, out_path, seconds):
    deadline = time.monotonic() + float(seconds)
    errors = 0
    with CustomerActivityFeatures(db) as store, open(out_path, "a") as out:
        print("ready", flush=True)
        while time.monotonic() < deadline:
            try:
                cohort = store.get_cohort_features(COHORT, as_of=AS_OF)
                single = store.get_total_purchase_value(COHORT[0], as_of=AS_OF)
                summary = store.get_cohort_summary(COHORT, as_of=AS_OF)
            except Exception as exc:  # reported to the test, which fails on any
                errors += 1
                out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
                continue
            out.write(json.dumps({
                "purchases": [cohort[c]["total_purchase_value"] for c in COHORT],
                "sessions": [cohort[c]["session_frequency"] for c in COHORT],
                "single": single,
                "summary_total": summary["aggregates"].get("total_purchase_value", 0.0),
            }) + "\n")
    print("done", errors, flush=True)


def run_writer2(db, tag, n):
    n = int(n)
    with CustomerActivityFeatures(db) as store:
        print("ready", flush=True)
        for i in range(n):
            store.add_purchase(f"{tag}-c{i % 5}", 1.0, "2025-01-01T00:00:00Z", order_id=f"{tag}-{i}")
            if i % 100 == 99:
                store.flush()
        result = store.add_purchases(
            ({"customer_id": f"{tag}-c{i % 5}", "order_value": 2.0, "purchase_date": "2025-01-02T00:00:00Z",
              "order_id": f"{tag}-bulk-{i}"} for i in range(n)), batch_size=500)
        assert result.accepted == n, result.as_dict()
    print("done", flush=True)


def run_open(db):
    with CustomerActivityFeatures(db) as store:
        store.get_total_purchase_value("x", as_of=AS_OF)
    print("done", flush=True)


def loader_rows(n):
    """Rows of the generated purchases dump: every 10th row is invalid (negative value)."""
    for i in range(int(n)):
        value = -1.0 if i % 10 == 9 else round(1 + (i * 37 % 500) / 10, 2)
        yield (f"L{i % 97:03d}", value, f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:30:00Z", f"LO{i:07d}")


def write_dump(path, n):
    with open(path, "w") as out:
        out.write("customer_id,order_value,purchase_date,order_id\n")
        for row in loader_rows(n):
            out.write(",".join(map(str, row)) + "\n")


def run_loader(db, log, path, batch):
    from store import loaders
    loaders.BATCH_ROWS = int(batch)  # many small batches: many places to be killed
    with CustomerActivityFeatures(db) as store, open(log, "a") as out:
        print("ready", flush=True)

        def progress(report):
            log_line(out, str(report.read))
        store.load("purchases", path, progress=progress)
    print("done", flush=True)


def run_materialize(db, log, as_ofs, times):
    as_ofs = as_ofs.split(",")
    with CustomerActivityFeatures(db) as store, open(log, "a") as out:
        print("ready", flush=True)
        for i in range(int(times)):
            as_of = as_ofs[i % len(as_ofs)]
            log_line(out, f"begin {as_of}")
            store.materialize(as_of=as_of)
            log_line(out, f"done {as_of}")
    print("done", flush=True)


MODES = {"single": run_single, "bulk": run_bulk, "rounds": run_rounds, "reader": run_reader,
         "writer2": run_writer2, "open": run_open, "loader": run_loader, "materialize": run_materialize}

if __name__ == "__main__":
    MODES[sys.argv[1]](*sys.argv[2:])
