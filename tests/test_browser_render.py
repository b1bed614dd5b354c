"""The report and the feature browser in a real browser (issue 14 acceptance): headless Chromium
(the Debian package, /usr/bin/chromium, which .ci/run installs when missing) driven by the
playwright package, renders the quality report and a Datasette page of a real `caf serve`; a
console error fails the test, and every plot must have drawn (its screenshot region non-blank).

Skipped, with the reason, only when playwright or Chromium cannot be found.

Run as a script, it writes the README's screenshot of the report (docs/report.png) with the same
browser: python tests/test_browser_render.py
"""

import io
import os
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="the report needs the [report] extra")
pytest.importorskip("datasette", reason="caf serve needs the [serve] extra")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")

from PIL import Image  # noqa: E402  (matplotlib's dependency)

from customer_activity_features import CustomerActivityFeatures  # noqa: E402
from store import report, synthetic  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import Server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CAF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FAMILIES = ["purchase_features", "behavior_segments"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium package)")


class Browser:
    """A headless Chromium (a new empty profile: playwright's own temporary user-data-dir) whose
    pages record console errors and uncaught exceptions."""

    def __init__(self, playwright):
        self.chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        self.errors = []

    def page(self, width=1280, height=900):
        page = self.chromium.new_page(viewport={"width": width, "height": height})
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))
        return page

    def close(self):
        self.chromium.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = Browser(p)
        yield b
        b.close()


def blank(region):
    """True when a screenshot region is empty or (nearly) one colour."""
    if region.width < 20 or region.height < 20:
        return True
    grey = region.convert("L")
    histogram = grey.histogram()
    background = max(range(256), key=histogram.__getitem__)
    drawn = sum(n for level, n in enumerate(histogram) if abs(level - background) > 30)
    return drawn < 0.005 * region.width * region.height


def plots_drawn(page):
    """[(alt, drawn?)] of every img.plot of the page, from one full-page screenshot."""
    shot = Image.open(io.BytesIO(page.screenshot(full_page=True)))
    out = []
    for img in page.locator("img.plot").all():
        box = img.bounding_box()
        complete = img.evaluate("i => i.complete && i.naturalWidth > 0")
        region = shot.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]),
                            int(box["y"] + box["height"]))) if box else Image.new("RGB", (0, 0))
        out.append((img.get_attribute("alt"), complete and not blank(region)))
    return out


def write_report(path, customers=80, families=("purchase_features", "behavior_segments"), windows=(30,)):
    store = CustomerActivityFeatures()
    synthetic.populate(store, customers, seed=9)
    store.add_purchase("bad", -1, "2025-12-01")  # a rejection, for the rejections plot
    store.materialize(as_of="2025-10-01", families=families, windows=windows)
    store.materialize(as_of=synthetic.DEFAULT_END, families=families, windows=windows)
    found = report.compute(store.conn, store.shop_id, store.registry)
    Path(path).write_text(report.render(found), encoding="utf-8")
    return found


def test_the_checks_can_fail(browser, tmp_path):
    """The checks themselves: a console error is caught, a blank or empty image is not drawn."""
    page = tmp_path / "bad.html"
    page.write_text('<img class="plot" alt="blank" width="200" height="100" src="data:image/svg+xml;base64,'
                    'PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHdpZHRoPSIyMDAiIGhlaWdodD0iMTAwIi8+">'
                    '<img class="plot" alt="broken" src="data:image/png;base64,AAAA">'
                    '<script>console.error("boom")</script>')
    tab = browser.page()
    tab.goto(page.as_uri(), wait_until="load")
    assert plots_drawn(tab) == [("blank", False), ("broken", False)]
    assert any("boom" in e for e in browser.errors)
    browser.errors.clear()


def test_report_renders_every_plot(browser, tmp_path):
    found = write_report(tmp_path / "report.html")
    page = browser.page()
    page.goto((tmp_path / "report.html").as_uri(), wait_until="load")
    drawn = plots_drawn(page)
    # a plot per feature column, the events per day and the rejections
    assert len(drawn) == len(found.columns) + 2
    assert [alt for alt, ok in drawn if not ok] == []
    assert page.locator("#summary tr").count() == len(found.columns) + 1
    assert browser.errors == []


def test_datasette_pages_render(browser, tmp_path):
    db = tmp_path / "shop.db"
    with CustomerActivityFeatures(db) as store:
        synthetic.populate(store, 40, seed=8)
        store.materialize(as_of=synthetic.DEFAULT_END, families=FAMILIES, windows=(30,))
        cid = store.conn.execute("SELECT customer_id FROM customer_features LIMIT 1").fetchone()[0]
    server = Server(db)
    try:
        page = browser.page()
        page.goto(f"{server.base}/customer_features", wait_until="load")
        assert "One row per customer" in page.content()
        assert page.locator(".facet-info").count() >= 1  # the catalog's facets (customer_segment)
        assert not blank(Image.open(io.BytesIO(page.screenshot())))
        page.goto(f"{server.base}/customer?customer_id={cid}", wait_until="load")
        assert cid in page.locator("table.rows-and-columns").inner_text()
        page.goto(f"{server.base}/customer?customer_id=nobody", wait_until="load")
        assert page.locator("table.rows-and-columns tbody tr").count() == 0
        assert browser.errors == []
    finally:
        server.stop()


if __name__ == "__main__":  # the README's screenshot: python tests/test_browser_render.py [PNG]
    import tempfile

    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "report.png")
    with tempfile.TemporaryDirectory() as tmp, sync_api.sync_playwright() as p:
        b = Browser(p)
        html = Path(tmp) / "report.html"
        write_report(html, customers=2000, families=None, windows=(30, 90))
        page = b.page(width=1300, height=1500)
        page.goto(html.as_uri(), wait_until="load")
        page.screenshot(path=str(out))
        b.close()
        assert not b.errors, b.errors
    print(f"wrote {out}")
