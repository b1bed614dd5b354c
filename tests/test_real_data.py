"""The presets on the real public files in ../shared/data (skipped when absent).

Each test checks that the counts add up (read = accepted + rejected +
duplicates, every rejection recorded with its reason) and that a second load
of the same file changes nothing. The whole Online Retail file (541,909 lines)
is marked slow; the default run loads its first 30,000 lines.
"""

import gzip
import itertools
from pathlib import Path

import pytest

from customer_activity_features import CustomerActivityFeatures
from store import loaders
from tests.test_loaders import check_sum, snapshot

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RETAIL = DATA / "online_retail.csv.gz"
REES46 = DATA / "rees46_2019-10_head.csv.gz"
INCIDENTS = DATA / "incident_event_log_head.csv.gz"


def need(path):
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent")
    return path


def load_twice(kind, path, tmp_path):
    store = CustomerActivityFeatures(tmp_path / "real.db")
    report = loaders.load(store, kind, path)
    check_sum(report)
    assert report.status == "completed" and report.pending == 0
    stored = store.conn.execute("SELECT COUNT(*) FROM rejected_events WHERE load_id = ?",
                                [report.load_id]).fetchone()[0]
    assert stored == report.rejected
    before = snapshot(store)
    again = loaders.load(store, kind, path)
    assert again.status == "already_loaded" and again.load_id == report.load_id
    assert snapshot(store) == before
    return store, report


def test_rees46(tmp_path):
    store, report = load_twice("rees46", need(REES46), tmp_path)
    assert report.read == 17435
    assert report.rejected_by_reason == {"row: expected 9 columns, got 8": 1}  # the slice's cut last line
    assert report.tables["sessions"] >= 5066  # 5,066 session ids, a few shared by two users
    assert report.tables["purchases"] > 0 and report.tables["cart_events"] > 0


def test_incidents(tmp_path):
    store, report = load_twice("incidents", need(INCIDENTS), tmp_path)
    assert report.read == 5998
    assert report.tables == {"support_interactions": 890}
    callers = store.conn.execute("SELECT COUNT(DISTINCT customer_id) FROM support_interactions").fetchone()[0]
    assert callers == 639


def test_online_retail_head(tmp_path):
    head = tmp_path / "retail_head.csv.gz"
    with gzip.open(need(RETAIL), "rb") as src, gzip.open(head, "wb") as out:
        out.writelines(itertools.islice(src, 30_001))
    store, report = load_twice("online-retail", head, tmp_path)
    assert report.read == 30_000
    assert report.rejected_by_reason.get("CustomerID: is missing", 0) > 0
    assert report.tables["purchases"] > 0 and report.tables["refunds"] > 0


@pytest.mark.slow
def test_online_retail_whole_file(tmp_path):
    store, report = load_twice("online-retail", need(RETAIL), tmp_path)
    assert report.read == 541_909
    assert report.rejected_by_reason["CustomerID: is missing"] == 135_080
    assert (report.accepted, report.rejected, report.duplicates) == (401_604, 135_080, 5_225)
    assert report.tables == {"purchases": 18_536, "refunds": 3_654}
    customers = store.conn.execute(
        "SELECT COUNT(*) FROM (SELECT customer_id FROM purchases UNION SELECT customer_id FROM refunds)"
    ).fetchone()[0]
    assert customers == 4_372
