"""Crash safety: writer processes killed with SIGKILL at random (seeded) moments.

After every kill: ``PRAGMA integrity_check`` is ok, every event of a batch the
worker logged as committed is stored exactly once, what is stored is a whole
prefix of the stream (whole batches for bulk loads), and a final re-run ends
with exactly the rows of an uninterrupted run. The default run kills each
scenario a few times; ``pytest -m long`` kills each at least 20 times.

The figures of the last long run are in docs/reliability.md; a run prints its
own with ``-s`` (lines starting with ``RELIABILITY``).
"""

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import reliability_workers as workers

WORKER = Path(workers.__file__).resolve()
EVENT_TABLES = ("purchases", "sessions", "cart_events", "support_interactions")
TABLE_OF_KIND = dict(zip(("purchase", "session", "cart_event", "support_interaction"), EVENT_TABLES))
ID_KEY = {"purchase": "order_id", "session": "session_id", "cart_event": "cart_id",
          "support_interaction": "ticket_id"}


# -- helpers shared with the other reliability tests ---------------------------------
def spawn(mode, *args):
    return subprocess.Popen([sys.executable, str(WORKER), mode, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(proc):
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"worker did not start: {line!r}\n{err}")


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{err}"
    return out


def integrity(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


def table_digest(path, tables=EVENT_TABLES):
    """{table: sha256 of every row in key order} (customers: without updated_at)."""
    conn = sqlite3.connect(path)
    digests = {}
    try:
        for table in tables:
            h = hashlib.sha256()
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY shop_id, event_id")  # noqa: S608 fixed names
            for row in rows:
                h.update(repr(row).encode())
            digests[table] = h.hexdigest()
        h = hashlib.sha256()
        for row in conn.execute("SELECT shop_id, customer_id, metadata FROM customers ORDER BY 1, 2"):
            h.update(repr(row).encode())
        digests["customers"] = h.hexdigest()
    finally:
        conn.close()
    return digests


def read_log(path):
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [line.split() for line in handle if line.endswith("\n")]


def kill_at_random(proc, rng, low, high):
    """SIGKILL the worker after a random delay; True when it was still running."""
    wait_ready(proc)
    try:
        proc.wait(timeout=rng.uniform(low, high))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        return True
    proc.communicate()
    return False


# -- the single add_* stream ----------------------------------------------------------
def check_single(path, log, n_total):
    assert integrity(path) == [("ok",)]
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT customer_id, order_value, event_time_us, event_id FROM purchases ORDER BY event_id").fetchall()
        assert conn.execute("SELECT count(*) FROM rejected_events").fetchone()[0] == 0
    finally:
        conn.close()
    stored = len(rows)
    committed_batches = [int(x[0]) for x in read_log(log)]
    must_have = (max(committed_batches) + 1) * workers.SINGLE_BATCH if committed_batches else 0
    assert stored >= must_have, f"committed batch lost: {stored} rows stored, {must_have} committed"
    # exactly the first `stored` events, each once, with their values: a prefix of the stream
    ids = [r[3] for r in rows]
    assert ids == [f"P{i:06d}" for i in range(stored)]
    from store import timeutil
    for i, (customer, value, when_us, _) in enumerate(rows):
        c, v, w, _ = workers.single_event(i)
        assert (customer, value, when_us) == (c, v, timeutil.to_us(w))
    return stored


def crash_single(tmp_path, kills, n_total, seed, delay):
    """Kill runs (70% resuming after the last logged batch, 30% offering everything again);
    a database that reaches the end of the stream is checked and replaced by a fresh one, so
    every kill lands in a load still in progress."""
    rng = random.Random(seed)
    killed, attempts, cycles, stored = 0, 0, 0, []
    path, log = tmp_path / "crash0.db", tmp_path / "crash0.log"
    while killed < kills:
        attempts += 1
        assert attempts < kills * 4, "the worker keeps finishing before the kill"
        resume = 1 if rng.random() < 0.7 else 0
        if kill_at_random(spawn("single", path, log, n_total, resume), rng, *delay):
            killed += 1
        n = check_single(path, log, n_total)  # exact rows: what an uninterrupted run writes, as far as it got
        stored.append(n)
        if n == n_total:
            cycles += 1
            path, log = tmp_path / f"crash{cycles}.db", tmp_path / f"crash{cycles}.log"
    finish(spawn("single", path, log, n_total, 0))  # re-run: everything offered again
    assert check_single(path, log, n_total) == n_total
    print(f"RELIABILITY crash single: kills={killed} rows_lost=0 completed_databases={cycles + 1} "
          f"stored_after_kills={stored}")
    return killed


def test_crash_single_calls(tmp_path):
    crash_single(tmp_path, kills=3, n_total=25_000, seed=11, delay=(0.05, 0.5))


@pytest.mark.long
def test_crash_single_calls_long(tmp_path):
    assert crash_single(tmp_path, kills=20, n_total=60_000, seed=12, delay=(0.05, 2.0)) >= 20


# -- bulk loads ----------------------------------------------------------------------------
def expected_ids(customers):
    return {kind: [record[ID_KEY[kind]] for record in workers.bulk_stream(kind, customers)]
            for kind, _ in workers.BULK_KINDS}


def check_bulk(path, log, ids, batch):
    assert integrity(path) == [("ok",)]
    logged = {}
    for kind, offered in read_log(log):
        logged[kind] = max(logged.get(kind, 0), int(offered))
    conn = sqlite3.connect(path)
    counts = {}
    try:
        previous_complete = True
        for kind, _ in workers.BULK_KINDS:
            stored = [r[0] for r in conn.execute(
                f"SELECT event_id FROM {TABLE_OF_KIND[kind]}")]  # noqa: S608 fixed names
            n = len(stored)
            counts[kind] = n
            assert len(set(stored)) == n, f"{kind}: an event stored twice"
            assert n >= logged.get(kind, 0), f"{kind}: committed batch lost ({n} < {logged[kind]})"
            assert n % batch == 0 or n == len(ids[kind]), f"{kind}: part of a batch stored ({n} rows)"
            assert set(stored) == set(ids[kind][:n]), f"{kind}: stored rows are not the stream's first batches"
            if n:
                assert previous_complete, f"{kind} stored before the previous kind finished"
            previous_complete = n == len(ids[kind])
        assert conn.execute("SELECT count(*) FROM rejected_events").fetchone()[0] == 0
    finally:
        conn.close()
    return counts


def crash_bulk(tmp_path, kills, customers, batch, seed, delay):
    ref = tmp_path / "ref.db"
    finish(spawn("bulk", ref, tmp_path / "ref.log", customers, batch))
    reference = table_digest(ref)
    ids = expected_ids(customers)
    totals = {kind: len(v) for kind, v in ids.items()}
    rng = random.Random(seed)
    killed, attempts, cycles, seen = 0, 0, 0, []
    path, log = tmp_path / "crash0.db", tmp_path / "crash0.log"
    while killed < kills:
        attempts += 1
        assert attempts < kills * 4, "the worker keeps finishing before the kill"
        resume = 1 if rng.random() < 0.7 else 0
        if kill_at_random(spawn("bulk", path, log, customers, batch, resume), rng, *delay):
            killed += 1
        counts = check_bulk(path, log, ids, batch)
        seen.append(sum(counts.values()))
        if counts == totals:  # complete: exactly the rows of an uninterrupted load; start a fresh one
            assert table_digest(path) == reference
            cycles += 1
            path, log = tmp_path / f"crash{cycles}.db", tmp_path / f"crash{cycles}.log"
    finish(spawn("bulk", path, log, customers, batch, 0))  # re-run: everything offered again
    assert check_bulk(path, log, ids, batch) == totals
    assert table_digest(path) == reference
    print(f"RELIABILITY crash bulk: kills={killed} rows_lost=0 events={sum(totals.values())} "
          f"completed_databases={cycles + 1} stored_after_kills={seen}")
    return killed


def test_crash_bulk_load(tmp_path):
    crash_bulk(tmp_path, kills=3, customers=1500, batch=1000, seed=21, delay=(0.05, 0.5))


@pytest.mark.long
def test_crash_bulk_load_long(tmp_path):
    assert crash_bulk(tmp_path, kills=20, customers=5000, batch=2000, seed=22, delay=(0.05, 2.0)) >= 20


# -- a dump load through store.loaders ---------------------------------------------------
def check_loader(path, log, rows, batch):
    assert integrity(path) == [("ok",)]
    logged = max((int(x[0]) for x in read_log(log)), default=0)
    conn = sqlite3.connect(path)
    try:
        stored = [r[0] for r in conn.execute("SELECT event_id FROM purchases")]
        rejected = conn.execute("SELECT count(*) FROM rejected_events").fetchone()[0]
        loads = conn.execute("SELECT count(*) FROM loads").fetchone()[0]
    finally:
        conn.close()
    assert len(set(stored)) == len(stored)
    assert loads <= 1, "a resumed load must continue its loads row, not start another"
    # the committed rows are the first n rows of the file, n a whole number of batches (or all)
    valid = [r[3] for r in rows if r[1] >= 0]
    candidates = [k for k in range(0, len(rows) + batch, batch)
                  if sum(1 for r in rows[:k] if r[1] >= 0) == len(stored)]
    n = next((k for k in candidates if set(stored) == {r[3] for r in rows[:k] if r[1] >= 0}), None)
    assert n is not None, f"stored rows are not whole batches of the file ({len(stored)} stored)"
    n = min(n, len(rows))
    assert n >= logged, f"committed batch lost: {n} rows stored, {logged} logged"
    # each rejection recorded once, however many times the load was resumed
    assert rejected == sum(1 for r in rows[:n] if r[1] < 0)
    return n, len(valid)


def crash_loader(tmp_path, kills, n_rows, batch, seed, delay):
    dump = tmp_path / "dump.csv"
    workers.write_dump(dump, n_rows)
    rows = list(workers.loader_rows(n_rows))
    ref = tmp_path / "ref.db"
    proc = spawn("loader", ref, tmp_path / "ref.log", dump, batch)
    wait_ready(proc)
    began = time.monotonic()
    finish(proc)
    # Kill within the time a whole load takes on this machine now (a busy machine makes it
    # longer, a quiet one shorter), so that kills land inside the load, not after it.
    delay = (delay[0], max(2 * delay[0], min(delay[1], time.monotonic() - began)))
    reference = table_digest(ref)

    def completed(path):
        assert table_digest(path) == reference
        conn = sqlite3.connect(path)
        status = conn.execute("SELECT status, rows_read, rows_accepted, rows_rejected FROM loads").fetchall()
        conn.close()
        assert status == [("completed", n_rows, n_rows - n_rows // 10, n_rows // 10)]

    rng = random.Random(seed)
    killed, attempts, cycles, seen = 0, 0, 0, []
    path, log = tmp_path / "crash0.db", tmp_path / "crash0.log"
    while killed < kills:
        attempts += 1
        assert attempts < kills * 10, "the loader keeps finishing before the kill"
        if kill_at_random(spawn("loader", path, log, dump, batch), rng, *delay):
            killed += 1
        n = check_loader(path, log, rows, batch)[0]
        seen.append(n)
        if n == n_rows:  # every row is in: check it, then start a fresh database
            # a kill can land after the last batch and before the load is marked completed:
            # running the load again (a resume, or "already loaded") must complete it
            finish(spawn("loader", path, log, dump, batch))
            completed(path)
            cycles += 1
            path, log = tmp_path / f"crash{cycles}.db", tmp_path / f"crash{cycles}.log"
    finish(spawn("loader", path, log, dump, batch))
    assert check_loader(path, log, rows, batch)[0] == n_rows
    completed(path)
    print(f"RELIABILITY crash loader: kills={killed} rows_lost=0 rows={n_rows} completed_databases={cycles + 1} "
          f"rows_after_kills={seen}")
    return killed


def test_crash_dump_load(tmp_path):
    crash_loader(tmp_path, kills=3, n_rows=20_000, batch=1000, seed=31, delay=(0.05, 0.8))


@pytest.mark.long
def test_crash_dump_load_long(tmp_path):
    assert crash_loader(tmp_path, kills=20, n_rows=60_000, batch=2000, seed=32, delay=(0.05, 2.0)) >= 20


# -- materialize ----------------------------------------------------------------------------
MATERIALIZE_AS_OF = ("2025-07-01T00:00:00Z", "2026-01-01T00:00:00Z")


def snapshot_digest(path):
    conn = sqlite3.connect(path)
    try:
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'customer_features'").fetchone()
        if not exists:
            return None
        h = hashlib.sha256()
        for row in conn.execute("SELECT * FROM customer_features ORDER BY shop_id, customer_id"):
            h.update(repr(row).encode())
        as_ofs = [r[0] for r in conn.execute("SELECT DISTINCT as_of_us FROM customer_features")]
        return h.hexdigest(), as_ofs
    finally:
        conn.close()


def crash_materialize(tmp_path, kills, customers, seed, delay):
    path = tmp_path / "mat.db"
    finish(spawn("bulk", path, tmp_path / "load.log", customers, 5000))
    # the snapshot of each as_of, materialized once into the loaded store: the first as_of in a
    # copy; the second in the store itself, whose snapshot it is when the kills begin
    ref = tmp_path / f"ref-{MATERIALIZE_AS_OF[0][:7]}.db"
    ref.write_bytes(path.read_bytes())
    finish(spawn("materialize", ref, tmp_path / "ref.log", MATERIALIZE_AS_OF[0], 1))
    log = tmp_path / "mat.log"
    finish(spawn("materialize", path, log, MATERIALIZE_AS_OF[1], 1))  # the previous snapshot: the other as_of
    expected = {snapshot_digest(ref)[0]: MATERIALIZE_AS_OF[0], snapshot_digest(path)[0]: MATERIALIZE_AS_OF[1]}
    assert len(expected) == 2, "the two as_of values give the same snapshot"
    rng = random.Random(seed)
    killed, attempts, seen, mid_run = 0, 0, [], 0
    while killed < kills:
        attempts += 1
        assert attempts < kills * 3, "materialize keeps finishing before the kill"
        order = rng.sample(MATERIALIZE_AS_OF, len(MATERIALIZE_AS_OF))  # each run starts with either as_of
        if kill_at_random(spawn("materialize", path, log, ",".join(order), 1000), rng, *delay):
            killed += 1
        assert integrity(path) == [("ok",)]
        state = snapshot_digest(path)
        assert state is not None and state[0] in expected, f"customer_features is neither snapshot: {state}"
        assert len(state[1]) == 1, "rows of two snapshots mixed"
        last = read_log(log)[-1]
        if last[0] == "done":
            assert expected[state[0]] == last[1], "the last finished materialize is not the snapshot"
        else:
            mid_run += 1  # killed inside materialize: the snapshot is the previous one
        seen.append(expected[state[0]][:7])
    print(f"RELIABILITY crash materialize: kills={killed} killed_inside_materialize={mid_run} mixed_snapshots=0 "
          f"snapshots_after_kills={seen}")
    return killed


def test_crash_materialize(tmp_path):
    crash_materialize(tmp_path, kills=3, customers=600, seed=41, delay=(0.05, 1.5))


@pytest.mark.long
def test_crash_materialize_long(tmp_path):
    assert crash_materialize(tmp_path, kills=20, customers=4000, seed=42, delay=(0.05, 3.0)) >= 20
