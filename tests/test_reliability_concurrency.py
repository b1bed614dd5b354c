"""Concurrency: one writer loading while three reader processes compute features.

No ``database is locked`` (or any other error) reaches a caller; each reader's
event counts never go backwards; every answer is consistent with a committed
state (the writer commits whole rounds of one purchase per cohort customer, so
a consistent snapshot shows the same purchase total for every customer, and the
sessions of the round in flight at most one behind). Two writer processes at
once are serialised, not failed; several processes opening a fresh file at once
all succeed (the schema migration is serialised too).

Default: about 3 seconds of reads; ``pytest -m long``: 30 seconds.
"""

import json
import sqlite3

import pytest

from test_reliability_crash import finish, integrity, spawn, wait_ready


def run_readers(tmp_path, seconds, rounds):
    path = tmp_path / "conc.db"
    finish(spawn("open", path))  # create the schema first: the readers only read
    writer = spawn("rounds", path, tmp_path / "rounds.log", rounds)
    wait_ready(writer)
    readers = [spawn("reader", path, tmp_path / f"reader{i}.jsonl", seconds) for i in range(3)]
    for proc in readers:
        finish(proc, timeout=seconds + 120)
    writer_done = writer.poll() is not None
    if not writer_done:
        writer.kill()
        writer.communicate()
    else:
        finish(writer)
    answers = 0
    max_seen = 0
    for i in range(3):
        last = -1
        with open(tmp_path / f"reader{i}.jsonl") as handle:
            for line in handle:
                answer = json.loads(line)
                assert "error" not in answer, f"reader {i}: {answer['error']}"
                purchases = answer["purchases"]
                # whole committed rounds: every cohort customer has the same number of purchases
                assert len(set(purchases)) == 1, f"reader {i} saw part of a round: {purchases}"
                count = purchases[0]
                assert count == int(count)
                # sessions of a round commit after its purchases: equal, or one round behind
                for s in answer["sessions"]:
                    assert s in (count, count - 1), f"sessions {answer['sessions']} vs purchases {count}"
                assert count >= last, f"reader {i}: event count went backwards ({last} -> {count})"
                assert answer["single"] >= count  # read after the cohort: never older
                assert answer["summary_total"] >= count
                last = count
                answers += 1
        max_seen = max(max_seen, last)
    assert integrity(path) == [("ok",)]
    conn = sqlite3.connect(path)
    stored = conn.execute("SELECT count(*) FROM purchases").fetchone()[0]
    conn.close()
    assert stored % 10 == 0 and stored >= max_seen * 10
    assert answers > 0 and max_seen > 0, "the readers never saw the writer's data"
    print(f"RELIABILITY concurrency: seconds={seconds} readers=3 reads_served={answers} "
          f"errors=0 rounds_committed={stored // 10} writer_finished={writer_done}")
    return answers


def test_readers_during_writes(tmp_path):
    run_readers(tmp_path, seconds=3, rounds=100_000)


@pytest.mark.long
def test_readers_during_writes_long(tmp_path):
    run_readers(tmp_path, seconds=30, rounds=1_000_000)


def test_two_writers_serialised(tmp_path):
    path = tmp_path / "two.db"
    finish(spawn("open", path))
    n = 3000
    procs = [spawn("writer2", path, tag, n) for tag in ("A", "B")]
    for proc in procs:
        out = finish(proc)
        assert "done" in out
    conn = sqlite3.connect(path)
    try:
        for tag in ("A", "B"):
            count = conn.execute("SELECT count(*) FROM purchases WHERE event_id LIKE ?", [f"{tag}-%"]).fetchone()[0]
            assert count == 2 * n
    finally:
        conn.close()
    assert integrity(path) == [("ok",)]


def test_concurrent_first_open(tmp_path):
    """Several processes creating the same fresh database: all succeed, schema applied once."""
    path = tmp_path / "fresh.db"
    procs = [spawn("open", path) for _ in range(4)]
    for proc in procs:
        finish(proc)
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations")]
    finally:
        conn.close()
    assert len(names) == len(set(names)) and names
