"""Kill-and-resume: a load killed (SIGKILL) at random points and run again ends
with exactly the rows of an uninterrupted load.

A subprocess loads a large generated file into a database file; the test
waits until the load has started (its ``loads`` row exists), kills it after a
random delay (fixed seed), repeats, then runs the load to completion and
compares every table with an uninterrupted load of the same file.
"""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from customer_activity_features import CustomerActivityFeatures
from store import loaders
from tests.test_loaders import snapshot

ROOT = Path(__file__).resolve().parents[1]
BATCH = 1_000  # small batches: many commit points for the kills to fall between
WORKER = """
import sys
from customer_activity_features import CustomerActivityFeatures
from store import loaders
loaders.BATCH_ROWS = int(sys.argv[4])
with CustomerActivityFeatures(sys.argv[1]) as store:
    report = loaders.load(store, sys.argv[2], sys.argv[3])
    print(report.status, report.read, report.resumed)
"""
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def retail_file(path, n_lines, seed=7):
    """Invoice lines with the Online Retail mess: interleaved (non-contiguous) invoices,
    cancellations, missing customers, duplicates, zero prices, bad rows."""
    rng = random.Random(seed)
    lines = []
    open_invoices = []
    next_invoice = 500000
    while len(lines) < n_lines:
        if not open_invoices or rng.random() < 0.15:
            next_invoice += 1
            cancel = rng.random() < 0.05
            customer = "" if rng.random() < 0.2 else f"{rng.randint(12000, 12400)}.0"
            minute = next_invoice - 500000
            stamp = f"2011-{1 + minute // 40000 % 12:02d}-{1 + minute // 1440 % 28:02d} " \
                    f"{minute // 60 % 24:02d}:{minute % 60:02d}:00"
            open_invoices.append((("C" if cancel else "") + str(next_invoice), customer, stamp, cancel))
            if len(open_invoices) > 4:
                open_invoices.pop(0)
        invoice, customer, stamp, cancel = rng.choice(open_invoices)
        qty = rng.randint(1, 12) * (-1 if cancel else 1)
        price = rng.choice(["0", "0.85", "1.25", "2.55", "12.75"])
        line = f"{invoice},{rng.randint(20000, 20100)},ITEM {rng.randint(1, 50)},{qty},{stamp},{price},{customer},UK"
        if rng.random() < 0.01:
            line = line.replace(stamp, "31-31-2011 99:99")
        if rng.random() < 0.005:
            line = line.rsplit(",", 2)[0]
        lines.append(line)
        if rng.random() < 0.01:
            lines.append(line)  # exact duplicate
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


def purchases_file(path, n_lines, seed=8):
    rng = random.Random(seed)
    rows = []
    for i in range(n_lines):
        value = rng.choice(["10", "2.5", "-1", "x", "99.99"])
        order = f"o{rng.randint(0, n_lines)}"  # repeated order ids are duplicates
        rows.append(f"c{rng.randint(0, 500)},{value},2024-{1 + i % 12:02d}-01T00:00:00Z,{order}")
    path.write_text("customer_id,order_value,purchase_date,order_id\n" + "\n".join(rows) + "\n")
    return path


def load_started(db, min_rows=0):
    """True once the load's row exists (with more than min_rows rows committed)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            row = conn.execute("SELECT MAX(rows_read) FROM loads").fetchone()
            return row[0] is not None and row[0] > min_rows
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def run_worker(db, kind, source):
    return subprocess.Popen([sys.executable, "-c", WORKER, str(db), kind, str(source), str(BATCH)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_and_resume(tmp_path, kind, source, kills, seed):
    reference = CustomerActivityFeatures(tmp_path / "reference.db")
    started = time.monotonic()
    expected_report = loaders.load(reference, kind, source)  # default batch size: the result must not depend on it
    duration = time.monotonic() - started
    expected = snapshot(reference)
    reference.close()

    rng = random.Random(seed)
    db = tmp_path / "killed.db"
    interrupted = mid_load = 0
    for attempt in range(kills):
        proc = run_worker(db, kind, source)
        deadline = time.monotonic() + 60
        # the first kill waits for a committed batch (so at least one resume starts mid-file);
        # the others only for the load to start, then a random delay
        min_rows = 0 if attempt == 0 else -1
        while not load_started(db, min_rows) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3 if attempt == 0 else 0.9) * duration)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            interrupted += 1
        proc.communicate(timeout=60)
        with CustomerActivityFeatures(db) as peek:
            status = peek.conn.execute("SELECT status, rows_read FROM loads").fetchone()
        if status is not None and status[0] == "running" and status[1] > 0:
            mid_load += 1  # killed with some batches committed: the next run resumes
        if status is not None and status[0] == "completed":
            break
    proc = run_worker(db, kind, source)
    out, err = proc.communicate(timeout=300)
    assert out.split()[0] in ("completed", "already_loaded")  # the latter when a 'killed' run finished first
    assert proc.returncode == 0, err
    with CustomerActivityFeatures(db) as store:
        assert snapshot(store) == expected
        (load,) = loaders.list_loads(store)
        assert load["status"] == "completed"
        assert load["rows_read"] == expected_report.read
        assert load["rows_accepted"] + load["rows_rejected"] + load["rows_duplicate"] == load["rows_read"]
        for staging in loaders.STAGING_TABLES:
            assert store.conn.execute(f"SELECT COUNT(*) FROM {staging}").fetchone()[0] == 0
    assert interrupted >= 1 and mid_load >= 1
    return interrupted


@pytest.mark.parametrize("kind,make,n", [("online-retail", retail_file, 60_000), ("purchases", purchases_file, 20_000)])
def test_kill_and_resume(tmp_path, kind, make, n):
    source = make(tmp_path / "big.csv", n)
    kill_and_resume(tmp_path, kind, source, kills=3, seed=20240501)


@pytest.mark.long
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_and_resume_many(tmp_path, seed):
    source = retail_file(tmp_path / "big.csv", 150_000, seed=seed)
    kill_and_resume(tmp_path, "online-retail", source, kills=12, seed=seed)
