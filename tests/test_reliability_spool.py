"""Standard-input spools leave nothing behind (issue 11, item 6, the spool half).

``caf load KIND -`` spools standard input to a temporary file (hashed on the way,
so the load is identified and resumable). That file used to have a name in the
temp directory and was removed only when the load ended normally: every killed
load left its whole input there. The spool now has no name (O_TMPFILE, or
unlinked as soon as it is created; the open handle keeps it alive), so a load
killed with SIGKILL, mid-load, leaves the temp directory as it was, and piping
the same bytes again resumes the load.
"""

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from customer_activity_features import CustomerActivityFeatures
from store import loaders
from tests.test_load_resume import load_started

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from reliability_workers import write_dump  # noqa: E402


def stdin_load(db, source, tmpdir, *extra):
    env = dict(os.environ, TMPDIR=str(tmpdir))
    with open(source, "rb") as stdin:
        return subprocess.Popen([sys.executable, "-m", "store", "--db", str(db), "load", "purchases", "-",
                                 "--format", "csv", "--json", *extra],
                                cwd=ROOT, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)


def test_killed_stdin_load_leaves_no_spool_and_resumes(tmp_path):
    source = tmp_path / "orders.csv"
    write_dump(source, 120_000)  # about 5 MB, 6 batches: the load runs long enough to be killed mid-way
    expected = {"read": 120_000, "accepted": 108_000, "rejected": 12_000, "duplicates": 0}  # every 10th rejected
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    db = tmp_path / "stdin.db"
    proc = stdin_load(db, source, spool_dir)
    deadline = time.monotonic() + 120
    while not load_started(db, 0) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, f"the load ended before it could be killed: {proc.communicate()}"
    assert os.listdir(spool_dir) == []  # the whole input is spooled, and has no name
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert os.listdir(spool_dir) == [], "a killed stdin load left its spool behind"
    with CustomerActivityFeatures(db) as store:
        (row,) = loaders.list_loads(store)
        assert row["status"] == "running" and 0 < row["rows_read"] < expected["read"]
    # the same bytes piped again: the load continues where it stopped
    out, err = stdin_load(db, source, spool_dir).communicate(timeout=300)
    report = json.loads(out)
    assert report["status"] == "completed" and report["resumed"], (report, err)
    assert {k: report[k] for k in expected} == expected
    assert os.listdir(spool_dir) == []


def test_spooled_stream_and_gzip_stream_leave_nothing(tmp_path, monkeypatch):
    """The API with file objects (plain and gzip bytes, and text): same rows as the file, temp dir untouched."""
    import gzip

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    source = tmp_path / "orders.csv"
    write_dump(source, 3_000)
    data = source.read_bytes()
    with CustomerActivityFeatures() as store:
        by_path = loaders.load(store, "purchases", source)
    for stream in (io.BytesIO(data), io.BytesIO(gzip.compress(data)), io.StringIO(data.decode())):
        before = sorted(os.listdir(tmp_path))
        with CustomerActivityFeatures() as store:
            report = loaders.load(store, "purchases", stream, fmt="csv")
        assert (report.read, report.accepted, report.rejected) == (by_path.read, by_path.accepted,
                                                                   by_path.rejected)
        assert sorted(os.listdir(tmp_path)) == before
