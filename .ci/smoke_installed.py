"""Smoke test of a real (non-editable) install, run from outside the source tree.

Checks that the library imports from site-packages, finds its sql/ and
migrations/ inside the installed package, creates a file database, computes
features, and that `sqlite-utils migrate --list` with the installed
migrations.py sees every step applied.
"""

import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import customer_activity_features as caf
import store
from store.resources import resource_dir

site = Path(sysconfig.get_paths()["purelib"]).resolve()
for module in (caf, store):
    assert Path(module.__file__).resolve().is_relative_to(site), module.__file__
for name in ("sql", "migrations"):
    assert resource_dir(name).resolve().is_relative_to(site), resource_dir(name)

with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "smoke.db"
    with caf.CustomerActivityFeatures(path) as s:
        assert s.add_purchase("c1", 20.0, "2024-05-01T10:00:00Z")
        assert s.add_purchase("c1", 30.0, "2024-05-20T10:00:00Z")
        assert s.add_session("c1", 120, "mobile", "2024-05-21T10:00:00Z")
        assert not s.add_purchase("", 5.0)
    with caf.CustomerActivityFeatures(path) as s:
        features = s.get_all_features("c1", as_of="2024-06-01T00:00:00Z")
        assert features["total_purchase_value"] == 50.0, features
        assert features["purchase_recency_days"] == 11, features
        assert features["primary_device"] == "mobile", features
    with caf.CustomerActivityFeatures(path) as s:  # worker processes run the installed package
        for i in range(10):
            s.add_purchase(f"w{i}", 1.0 + i, "2024-05-02T10:00:00Z")
        one = s.materialize(as_of="2024-06-01T00:00:00Z")
        rows = s.conn.execute("SELECT * FROM customer_features ORDER BY customer_id").fetchall()
        two = s.materialize(as_of="2024-06-01T00:00:00Z", workers=2)
        assert s.conn.execute("SELECT * FROM customer_features ORDER BY customer_id").fetchall() == rows
        assert one["rows"] == two["rows"] == 11, (one, two)
        try:  # the core install has no [duckdb] extra: a clear error naming it, nothing changed
            import duckdb  # noqa: F401
        except ImportError:
            try:
                s.materialize(as_of="2024-06-01T00:00:00Z", engine="duckdb")
                raise AssertionError("engine='duckdb' ran without the [duckdb] extra")
            except caf.EngineError as exc:
                assert "[duckdb]" in str(exc), exc
            assert s.conn.execute("SELECT * FROM customer_features ORDER BY customer_id").fetchall() == rows
    listing = subprocess.run(
        [str(Path(sys.executable).parent / "sqlite-utils"), "migrate", str(path),
         str(resource_dir("migrations") / "migrations.py"), "--list"],
        check=True, capture_output=True, text=True).stdout
    assert "(none)" in listing.split("Pending:")[1], listing
    cli = Path(sys.executable).parent / "caf"
    if cli.exists():
        subprocess.run([str(cli), "--help"], check=True, capture_output=True)
print("installed wheel OK:", caf.__file__)
