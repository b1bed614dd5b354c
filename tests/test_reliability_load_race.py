"""Two loads of the same source at once (issue 11, item 5).

Before the fix, a second ``caf load`` of a file that another process was
loading took the first's ``running`` row for an interrupted load and "resumed"
it: both processes then wrote the row's counters, which ended wrong (accepted
0, every row a duplicate), and later runs repeated those counts as "already
loaded". Now a load claims its source for as long as it runs (a ``flock`` on a
lock file, released by the kernel when the process ends, even by SIGKILL):

* a second load waits for the first, then reports ``already_loaded`` with the
  first's counts (``--no-wait`` / ``wait=False``: ``LoadInProgressError`` at once);
* a killed first load does not block anything: the waiting load resumes it;
* whatever the interleaving, the ``loads`` row and every table equal those of
  one uninterrupted load, and no lock file is left behind.

Real processes throughout: ``python -m store load`` (the CLI) and a worker
calling ``store.load`` (the API). Default (online-retail, the preset of the
report): a gated run (deterministic overlap), a kill, two free races, two
threads. ``pytest -m long``: the same for the ``purchases`` kind too, and 15
rounds of three racing processes with random starts and random kills per kind.
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from customer_activity_features import CustomerActivityFeatures, LoadInProgressError
from store import loaders
from store.errors import LoadError, ReadOnlyStoreError
from store.locks import FileLock
from tests.test_load_resume import load_started, retail_file
from tests.test_loaders import snapshot

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from reliability_workers import write_dump  # noqa: E402

# The API worker: store.load, the report as JSON on stdout. With a GATE path it stops after its
# first committed batch (creating GATE.ready) until GATE exists: a deterministic overlap.
WORKER = r"""
import json, os, sys, time
from customer_activity_features import CustomerActivityFeatures
from store import loaders
db, kind, source, batch, gate = sys.argv[1:6]
loaders.BATCH_ROWS = int(batch)
def progress(report):
    if report.status == "waiting":
        print("waiting for", json.dumps(report.waiting_for), file=sys.stderr, flush=True)
    elif gate != "-" and not os.path.exists(gate + ".ready"):
        open(gate + ".ready", "w").close()
        while not os.path.exists(gate):
            time.sleep(0.01)
with CustomerActivityFeatures(db) as store:
    report = store.load(kind, source, progress=progress)
print(json.dumps(report.as_dict()))
"""
COUNTS = ("read", "accepted", "rejected", "duplicates")


def api_worker(db, kind, source, *, batch=20_000, gate=None):
    return subprocess.Popen([sys.executable, "-c", WORKER, str(db), kind, str(source), str(batch),
                             str(gate) if gate else "-"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cli_load(db, kind, source, *extra):
    return subprocess.Popen([sys.executable, "-m", "store", "--db", str(db), "load", kind, str(source),
                             "--json", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def report_of(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"load failed ({proc.returncode}):\n{err}"
    return json.loads(out[out.index("{"):]), err


def lock_files(directory):
    return sorted(p.name for p in Path(directory).iterdir() if "-lock-" in p.name)


@pytest.fixture(scope="module", params=["online-retail", pytest.param("purchases", marks=pytest.mark.long)])
def reference(request, tmp_path_factory):
    """(kind, source, report of an uninterrupted load, snapshot of its database)."""
    kind = request.param
    tmp = tmp_path_factory.mktemp(kind)
    source = tmp / "big.csv"
    if kind == "purchases":
        write_dump(source, 60_000)  # every 10th row rejected
    else:
        retail_file(source, 60_000)
    with CustomerActivityFeatures(tmp / "reference.db") as store:
        report = loaders.load(store, kind, source)
        expected = snapshot(store)
    return kind, source, report, expected


def counts(report):
    return {k: report[k] for k in COUNTS}


def expected_counts(reference_report):
    return {k: getattr(reference_report, k) for k in COUNTS}


def check_database(db, expected, ref_report):
    with CustomerActivityFeatures(db) as store:
        assert snapshot(store) == expected
        (row,) = loaders.list_loads(store)
    assert row["status"] == "completed"
    assert (row["rows_read"], row["rows_accepted"], row["rows_rejected"], row["rows_duplicate"]) == (
        ref_report.read, ref_report.accepted, ref_report.rejected, ref_report.duplicates)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    assert lock_files(db.parent) == []


def wait_for(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError(f"worker ended before {path}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.01)


def test_second_load_waits_for_the_first_then_reports_already_loaded(tmp_path, reference):
    kind, source, ref_report, expected = reference
    db, gate = tmp_path / "race.db", tmp_path / "gate"
    first = api_worker(db, kind, source, batch=1_000, gate=gate)
    try:
        wait_for(str(gate) + ".ready", first)  # the first load has committed a batch and holds on
        # refused at once, naming the first process; nothing done
        refused = subprocess.run([sys.executable, "-m", "store", "--db", str(db), "load", kind, str(source),
                                  "--no-wait"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1, (refused.stdout, refused.stderr)
        assert refused.stderr.startswith("Error: ") and refused.stderr.count("\n") == 1, refused.stderr
        assert f"pid {first.pid}" in refused.stderr and "being loaded" in refused.stderr
        with CustomerActivityFeatures(db) as store:  # the API: wait=False and a wait that runs out
            for wait in (False, 0.3):
                with pytest.raises(LoadInProgressError) as caught:
                    store.load(kind, source, wait=wait)
                assert caught.value.holder["pid"] == first.pid
            assert [r["status"] for r in loaders.list_loads(store)] == ["running"]
        # waits: the CLI says so on stderr and is still waiting while the first holds on
        second = cli_load(db, kind, source)
        line = second.stderr.readline()
        assert "waiting for it to finish" in line and f"pid {first.pid}" in line, line
        time.sleep(0.5)
        assert second.poll() is None, "the second load did not wait"
        gate.touch()
        done, _ = report_of(first)
        assert done["status"] == "completed" and not done["resumed"]
        assert counts(done) == expected_counts(ref_report)
        waited, _ = report_of(second)
        assert waited["status"] == "already_loaded", waited
        assert counts(waited["previous"]) == expected_counts(ref_report)
        assert waited["previous"]["tables"] == ref_report.tables
    finally:
        gate.touch()
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    check_database(db, expected, ref_report)
    # the text summary of an already loaded file gives the first load's counts
    again = subprocess.run([sys.executable, "-m", "store", "--db", str(db), "load", kind, str(source)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "already loaded" in again.stdout
    assert f"{ref_report.read:,} read, {ref_report.accepted:,} accepted" in again.stdout, again.stdout


def test_killed_first_load_is_resumed_by_the_waiting_one(tmp_path, reference):
    kind, source, ref_report, expected = reference
    db, gate = tmp_path / "race.db", tmp_path / "gate"
    first = api_worker(db, kind, source, batch=1_000, gate=gate)
    wait_for(str(gate) + ".ready", first)
    second = api_worker(db, kind, source)
    line = second.stderr.readline()
    assert line.startswith("waiting for") and json.loads(line.split(" ", 2)[2])["pid"] == first.pid, line
    os.kill(first.pid, signal.SIGKILL)  # dies holding the claim: the kernel releases it
    first.communicate()
    resumed, _ = report_of(second)
    assert resumed["status"] == "completed" and resumed["resumed"], resumed
    assert counts(resumed) == expected_counts(ref_report)
    check_database(db, expected, ref_report)


def claim_holder(db):
    """The pid recorded in the database's load lock file, or None."""
    for name in lock_files(db.parent):
        holder = FileLock(db.parent / name).holder()
        if holder.get("pid"):
            return holder["pid"]
    return None


def race(tmp_path, reference, rng, n_procs, kill_chance, max_delay):
    """One round: n_procs loads of the same file into a fresh database, started at random
    moments (CLI and API, some --no-wait); perhaps the process holding the claim is killed
    (SIGKILL) mid-load, after a random number of committed rows; then one more load.
    Returns what happened."""
    kind, source, ref_report, expected = reference
    db = tmp_path / f"race{rng.randrange(10**9)}.db"
    procs = []
    for i in range(n_procs):
        time.sleep(rng.uniform(0, max_delay))
        how = rng.choice(("cli", "api", "cli-no-wait")) if i else "cli"
        if how == "api":
            proc = api_worker(db, kind, source, batch=rng.choice((1_000, 5_000, 20_000)))
        else:
            proc = cli_load(db, kind, source, *(["--no-wait"] if how == "cli-no-wait" else []))
        procs.append((how, proc))
    killed = None
    if rng.random() < kill_chance:
        min_rows = rng.choice((-1, 0, 10_000, 30_000))
        deadline = time.monotonic() + 60
        while (not load_started(db, min_rows) and time.monotonic() < deadline
               and any(p.poll() is None for _, p in procs)):
            time.sleep(0.005)
        holder = claim_holder(db)
        for i, (_, proc) in enumerate(procs):
            if proc.pid == holder and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed = i
    stats = {"completed": 0, "already_loaded": 0, "refused": 0, "waited": 0, "resumed": 0,
             "killed": int(killed is not None), "final_resumed": 0}
    for i, (how, proc) in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        if i == killed:
            continue
        if how == "cli-no-wait" and proc.returncode == 1:
            assert "being loaded" in err and err.count("\n") == 1, err
            stats["refused"] += 1
            continue
        assert proc.returncode == 0, err
        report = json.loads(out[out.index("{"):])
        stats["waited"] += "waiting" in err
        stats[report["status"]] += 1
        stats["resumed"] += bool(report["resumed"])
        if report["status"] == "completed":
            assert counts(report) == expected_counts(ref_report), (how, report)
        else:
            assert report["status"] == "already_loaded", report
            assert counts(report["previous"]) == expected_counts(ref_report), (how, report)
    assert stats["completed"] == (1 if killed is None else stats["resumed"]) <= 1, stats
    final, _ = report_of(cli_load(db, kind, source))  # finishes a load whose every run was killed
    assert final["status"] in ("already_loaded", "completed")
    stats["final_resumed"] = int(final["resumed"])
    if final["status"] == "completed":
        assert counts(final) == expected_counts(ref_report)
    check_database(db, expected, ref_report)
    return stats


def test_concurrent_loads_race(tmp_path, reference):
    """Two processes (CLI and API) started at once, twice: one loads, the other waits."""
    kind, source, ref_report, expected = reference
    for _ in range(2):
        db = tmp_path / f"free{_}.db"
        procs = [cli_load(db, kind, source), api_worker(db, kind, source, batch=5_000)]
        reports = [report_of(p)[0] for p in procs]
        assert sorted(r["status"] for r in reports) == ["already_loaded", "completed"], reports
        for r in reports:
            got = counts(r) if r["status"] == "completed" else counts(r["previous"])
            assert got == expected_counts(ref_report), r
        check_database(db, expected, ref_report)


def test_two_stores_in_one_process(tmp_path, reference):
    """Two store objects on one file in one process (two threads): the claim is per open file,
    not per process, so they are serialised too."""
    kind, source, ref_report, expected = reference
    db = tmp_path / "threads.db"
    CustomerActivityFeatures(db).close()
    reports, errors = [], []

    def run():
        try:
            with CustomerActivityFeatures(db) as store:
                reports.append(store.load(kind, source))
        except Exception as exc:  # reported below
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    assert sorted(r.status for r in reports) == ["already_loaded", "completed"]
    for r in reports:
        got = r.as_dict() if r.status == "completed" else r.previous
        assert counts(got) == expected_counts(ref_report)
    check_database(db, expected, ref_report)


def test_file_lock(tmp_path):
    path = tmp_path / "x.db-lock-test"
    first, second = FileLock(path), FileLock(path)
    assert first.try_acquire()
    assert not second.try_acquire()  # exclusive, even within one process
    assert second.holder()["pid"] == os.getpid() and second.holder()["since"]
    seen = []
    assert not second.acquire(wait=0.1, on_busy=seen.append)
    assert seen and seen[0]["pid"] == os.getpid()
    first.release()
    assert not path.exists()  # the holder removes its file
    assert second.acquire(wait=False)
    second.release()
    assert second.holder() == {}
    with CustomerActivityFeatures() as store:
        for wait in ("yes", -1, None):
            with pytest.raises(LoadError, match="wait must be"):
                store.load("purchases", path, wait=wait)


def test_lock_file_that_cannot_be_created(tmp_path, monkeypatch):
    """A directory where the lock file cannot be created (no write permission, read-only mount)
    stops the load before any row with ReadOnlyStoreError; another OS error is a LoadError."""
    import errno

    source = tmp_path / "orders.csv"
    write_dump(source, 10)
    db = tmp_path / "perm.db"
    for error, expected in ((errno.EACCES, ReadOnlyStoreError), (errno.EROFS, ReadOnlyStoreError),
                            (errno.ENOSPC, LoadError)):
        def refuse(self, error=error):
            raise OSError(error, os.strerror(error), self.path)
        monkeypatch.setattr(FileLock, "try_acquire", refuse)
        with CustomerActivityFeatures(db) as store:
            with pytest.raises(expected, match="lock file"):
                store.load("purchases", source)
            assert loaders.list_loads(store) == []


@pytest.mark.long
def test_concurrent_loads_race_long(tmp_path, reference):
    rng = random.Random(20261121)
    totals = {}
    rounds = 15
    for _ in range(rounds):
        stats = race(tmp_path, reference, rng, n_procs=3, kill_chance=0.5, max_delay=0.4)
        for k, v in stats.items():
            totals[k] = totals.get(k, 0) + v
    print(f"\nRELIABILITY load race ({reference[0]}, {reference[2].read:,} rows): rounds={rounds} "
          f"processes={3 * rounds} completed={totals['completed']} already_loaded={totals['already_loaded']} "
          f"waited={totals['waited']} refused={totals['refused']} killed={totals['killed']} "
          f"resumed_by_a_waiting_load={totals['resumed']} resumed_by_the_next_run={totals['final_resumed']} "
          f"wrong_counts=0 lock_files_left=0")
