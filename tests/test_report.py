"""The feature quality report (issue 14 item 3, `caf report PATH.html`): a plot per feature
column, statistics and PSI drift computed in SQL (checked against a plain-Python oracle), one
materialisation only, an empty store. The report in a real browser: tests/test_browser_render.py."""

import math
import re
import sqlite3
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("matplotlib", reason="the report needs the [report] extra")
pytest.importorskip("jinja2", reason="the report needs the [report] extra")

from customer_activity_features import CustomerActivityFeatures  # noqa: E402
from store import report, synthetic  # noqa: E402
from store.errors import NoMaterializationError  # noqa: E402
from store.registry import Feature  # noqa: E402

from oracle_report import psi as oracle_psi  # noqa: E402

FAMILIES = ["purchase_features", "behavior_segments"]  # numeric, score, text and windowed columns
WINDOWS = (30,)  # few columns: every plot costs a matplotlib figure


class Plots(HTMLParser):
    """{card id: [img src]} of the report's feature cards, and every <script>/<link>."""

    def __init__(self):
        super().__init__()
        self.cards, self.current, self.external = {}, None, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and "card" in (attrs.get("class") or ""):
            self.current = attrs["id"]
            self.cards[self.current] = []
        if tag == "img" and self.current is not None:
            self.cards[self.current].append(attrs["src"])
        if tag in ("script", "link", "iframe") or (tag == "img" and not attrs["src"].startswith("data:")):
            self.external.append(tag)

    def handle_endtag(self, tag):
        if tag == "div":
            self.current = None


def two_snapshots(path=None, customers=120, families=FAMILIES):
    store = CustomerActivityFeatures(path)
    synthetic.populate(store, customers, seed=5)
    store.materialize(as_of="2025-07-01", families=families, windows=WINDOWS)
    store.materialize(as_of=synthetic.DEFAULT_END, families=families, windows=WINDOWS)
    return store


@pytest.fixture(scope="module")
def store():
    s = two_snapshots()
    yield s
    s.close()


def last_columns(store):
    cur = store.conn.execute("SELECT columns FROM materializations ORDER BY id DESC LIMIT 1")
    import json
    return [c for c in json.loads(cur.fetchone()[0]) if c not in ("shop_id", "customer_id", "as_of", "as_of_us")]


def test_a_plot_per_feature_column_self_contained(store):
    found = report.compute(store.conn, store.shop_id, store.registry)
    html = report.render(found)
    parser = Plots()
    parser.feed(html)
    columns = last_columns(store)
    assert [c.column for c in found.columns] == columns
    assert set(parser.cards) == {f"col-{c}" for c in columns}
    for card, sources in parser.cards.items():
        assert len(sources) == 1 and sources[0].startswith("data:image/svg+xml;base64,"), card
    assert parser.external == []  # no script, stylesheet or image from elsewhere
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    assert "Events per day" in html and "Load history" in html and "Rejections by reason" in html
    assert found.previous_as_of == "2025-07-01T00:00:00Z"


def test_statistics_match_the_rows(store):
    found = {c.column: c for c in report.compute(store.conn, store.shop_id, store.registry).columns}
    for column in ("purchase_count", "average_order_value_30d", "customer_segment", "recency_score"):
        values = [r[0] for r in store.conn.execute(f'SELECT "{column}" FROM customer_features')]
        c = found[column]
        assert c.rows == len(values)
        assert c.nulls == sum(v is None for v in values)
        assert c.zeros == sum(v == 0 for v in values if not isinstance(v, str))
        present = sorted(v for v in values if v is not None)
        if c.type in ("integer", "real") and present:
            assert c.min == present[0] and c.max == present[-1]
            for q, v in c.quantiles.items():
                assert v == present[math.floor(q * (len(present) - 1))]
        if c.histogram:
            assert sum(n for _l, _h, n in c.histogram) == len(present)
            assert len(set(present)) > report.HIST_BINS
        elif c.type in ("integer", "real"):  # few values: every one, in value order
            assert c.categories == sorted(((v, values.count(v)) for v in set(values)),
                                          key=lambda p: (p[0] is not None, p[0]))
        else:
            assert sum(n for _v, n in c.categories) == min(len(values), sum(
                sorted((values.count(v) for v in set(values)), reverse=True)[:report.TOP_VALUES]))


def test_psi_of_the_store_matches_the_oracle(store):
    found = report.compute(store.conn, store.shop_id, store.registry)
    for c in found.columns:
        current = [r[0] for r in store.conn.execute(f'SELECT "{c.column}" FROM customer_features')]
        previous = [r[0] for r in store.conn.execute(f'SELECT "{c.column}" FROM customer_features_previous')]
        expected = oracle_psi(previous, current, numeric=c.type in ("integer", "real"))
        assert c.psi == pytest.approx(expected, rel=1e-9, abs=1e-12), c.column
        assert c.drift == report.drift_label(c.psi)


values = st.one_of(st.none(), st.integers(-5, 5), st.floats(-1e3, 1e3, allow_nan=False, width=32))


@settings(max_examples=60, deadline=None)
@given(previous=st.lists(values, min_size=1, max_size=60), current=st.lists(values, min_size=1, max_size=60))
def test_psi_property(previous, current):
    """Any two snapshots of a numeric column: the SQL bins and PSI equal the oracle's."""
    conn = sqlite3.connect(":memory:")
    for table in ("customer_features", "customer_features_previous"):
        conn.execute(f"CREATE TABLE {table} (shop_id TEXT, customer_id TEXT, x REAL)")
    conn.executemany("INSERT INTO customer_features VALUES ('', ?, ?)", [(str(i), v) for i, v in enumerate(current)])
    conn.executemany("INSERT INTO customer_features_previous VALUES ('', ?, ?)",
                     [(str(i), v) for i, v in enumerate(previous)])
    feature = Feature("x", "real", "units", "all time", "NULL", "x.", "q")
    report.prepare(conn)
    c = report.column_report(conn, "", "x", feature, None, {"x"}, True)
    assert c.psi == pytest.approx(oracle_psi(previous, current), rel=1e-9, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(previous=st.lists(st.sampled_from([None, "a", "b", "c", "d"]), min_size=1, max_size=40),
       current=st.lists(st.sampled_from([None, "a", "b", "c", "e"]), min_size=1, max_size=40))
def test_psi_property_categorical(previous, current):
    conn = sqlite3.connect(":memory:")
    for table in ("customer_features", "customer_features_previous"):
        conn.execute(f"CREATE TABLE {table} (shop_id TEXT, customer_id TEXT, x TEXT)")
    conn.executemany("INSERT INTO customer_features VALUES ('', ?, ?)", [(str(i), v) for i, v in enumerate(current)])
    conn.executemany("INSERT INTO customer_features_previous VALUES ('', ?, ?)",
                     [(str(i), v) for i, v in enumerate(previous)])
    report.prepare(conn)
    c = report.column_report(conn, "", "x", Feature("x", "text", "label", "all time", "NULL", "x.", "q"),
                             None, {"x"}, True)
    assert c.psi == pytest.approx(oracle_psi(previous, current, numeric=False), rel=1e-9, abs=1e-12)


def test_identical_snapshots_do_not_drift():
    store = CustomerActivityFeatures()
    synthetic.populate(store, 60, seed=2)
    store.materialize(as_of=synthetic.DEFAULT_END, families=FAMILIES, windows=WINDOWS)
    store.materialize(as_of=synthetic.DEFAULT_END, families=FAMILIES, windows=WINDOWS)
    found = report.compute(store.conn, store.shop_id, store.registry)
    assert found.drifted == [] and all(c.psi == 0 and c.drift == "stable" for c in found.columns)


def test_one_materialisation_only():
    store = CustomerActivityFeatures()
    synthetic.populate(store, 40, seed=4)
    store.materialize(as_of=synthetic.DEFAULT_END, families=["purchase_features"], windows=WINDOWS)
    found = report.compute(store.conn, store.shop_id, store.registry)
    assert found.previous_as_of is None and all(c.psi is None for c in found.columns)
    html = report.render(found)
    assert 'id="no-previous"' in html and "No previous materialisation" in html


def test_previous_snapshot_of_another_shop_is_not_this_shops(tmp_path):
    """customer_features_previous holds the shop's rows from before the last materialize of any
    shop; a shop absent from it has no previous snapshot."""
    path = tmp_path / "s.db"
    a = CustomerActivityFeatures(path, shop_id="a")
    synthetic.populate(a, 30, seed=1)
    a.materialize(as_of=synthetic.DEFAULT_END, families=["purchase_features"], windows=WINDOWS)
    b = CustomerActivityFeatures(path, shop_id="b")
    synthetic.populate(b, 30, seed=2)
    b.materialize(as_of=synthetic.DEFAULT_END, families=["purchase_features"], windows=WINDOWS)
    assert report.compute(b.conn, "b", b.registry).previous_as_of is None
    assert report.compute(a.conn, "a", a.registry).previous_as_of == "2026-01-01T00:00:00Z"


def test_views_of_customer_features_keep_reading_the_current_table(tmp_path):
    """Keeping the replaced table (a RENAME) must not move a user's view to the previous one."""
    store = CustomerActivityFeatures(tmp_path / "v.db")
    synthetic.populate(store, 20, seed=1)
    store.materialize(as_of="2025-07-01", families=["purchase_features"], windows=WINDOWS)
    store.conn.execute("CREATE VIEW my_view AS SELECT customer_id, as_of FROM customer_features")
    store.materialize(as_of=synthetic.DEFAULT_END, families=["purchase_features"], windows=WINDOWS)
    store.materialize(as_of=synthetic.DEFAULT_END, families=["purchase_features"], windows=WINDOWS)
    assert {r[0] for r in store.conn.execute("SELECT as_of FROM my_view")} == {"2026-01-01T00:00:00Z"}
    assert "customer_features_previous" not in store.conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'my_view'").fetchone()[0]
    assert store.conn.execute("PRAGMA legacy_alter_table").fetchone()[0] == 0
    store.close()


def test_empty_store_is_a_clear_error(tmp_path):
    store = CustomerActivityFeatures()
    with pytest.raises(NoMaterializationError, match="no materialisation"):
        report.compute(store.conn, store.shop_id, store.registry)
    db = tmp_path / "empty.db"
    subprocess.run([sys.executable, "-m", "store", "--db", str(db), "init"], check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-m", "store", "--db", str(db), "report", str(tmp_path / "r.html")],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip() == ("Error: nothing to report: shop '' has no materialisation yet "
                                  "(run 'caf materialize' first)")
    assert not (tmp_path / "r.html").exists()


def test_cli_writes_the_report(tmp_path):
    db = tmp_path / "shop.db"
    two_snapshots(db, customers=40, families=["purchase_features"]).close()
    out = subprocess.run([sys.executable, "-m", "store", "--db", str(db), "report", str(tmp_path / "q.html"),
                          "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    import json
    summary = json.loads(out.stdout)
    assert summary["previous_as_of"] == "2025-07-01T00:00:00Z" and summary["columns"] >= 5
    html = (tmp_path / "q.html").read_text()
    assert html.count('class="card"') == summary["columns"]
    refused = subprocess.run([sys.executable, "-m", "store", "--db", str(db), "report", str(db)],
                             capture_output=True, text=True)
    assert refused.returncode == 1 and "refusing to write" in refused.stderr
    assert re.search(r"Traceback", refused.stderr) is None
