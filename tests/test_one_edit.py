"""Issue 12 acceptance: adding a column to a built-in family is one edit in one SQL file.

A copy of the package whose sql/purchases.sql has one more commented column (max_order_value)
and no other change has that column everywhere a seed feature is: get_all_features (as a key
after total_purchase_value, typed, NULL as None), get_cohort_features, iter_features,
features_at (every window), materialize (customer_features: all time and every window),
refresh, export (the CSV header), catalog() and feature_catalog, `caf catalog` and
get_cohort_summary. The plain-Python expectations below are its oracle.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMN = ("    -- max_order_value: The largest order value in the window.; real, currency units; NULL when none\n"
          "    MAX(p.order_value) FILTER (WHERE :window_us IS NULL\n"
          "        OR p.event_time_us >= t.as_of_us - :window_us) AS max_order_value,\n")

SCRIPT = r"""
import csv, json, sys
from click.testing import CliRunner
from customer_activity_features import CustomerActivityFeatures
from store.cli import cli

out, db = sys.argv[1], sys.argv[2]
AS_OF = "2025-06-01T00:00:00Z"
got = {}
with CustomerActivityFeatures(db) as s:
    s.add_purchase("a", 10.0, "2025-05-01T00:00:00Z")
    s.add_purchase("a", 70.0, "2025-05-10T00:00:00Z")
    s.add_purchase("a", 40.0, "2025-05-30T00:00:00Z")
    s.add_session("b", 60.0, "mobile", "2025-05-30T00:00:00Z")
    f = s.get_all_features("a", as_of=AS_OF)
    got["keys"] = list(f)
    got["all"] = [f["max_order_value"], s.get_all_features("a", 7, as_of=AS_OF)["max_order_value"],
                  s.get_all_features("b", as_of=AS_OF)["max_order_value"]]
    got["type"] = type(f["max_order_value"]).__name__
    cohort = s.get_cohort_features(["a", "b"], 7, as_of=AS_OF)
    got["cohort"] = [cohort["a"]["max_order_value"], cohort["b"]["max_order_value"]]
    got["iter"] = {cid: v["max_order_value"] for cid, v in s.iter_features(as_of=AS_OF)}
    got["summary"] = s.get_cohort_summary(["a", "b"], as_of=AS_OF)["aggregates"].get("max_order_value")
    (row,) = s.features_at([("a", AS_OF)])
    got["features_at"] = [row.get("max_order_value"), row.get("max_order_value_7d"), row.get("max_order_value_30d")]
    s.materialize(as_of=AS_OF, windows=(7, 30))
    got["materialize"] = s.conn.execute(
        "SELECT max_order_value, max_order_value_7d, max_order_value_30d FROM customer_features "
        "WHERE customer_id = 'a'").fetchall()
    s.add_purchase("a", 90.0, "2025-06-01T12:00:00Z")
    s.refresh(as_of="2025-06-02T00:00:00Z")
    got["refresh"] = s.conn.execute(
        "SELECT max_order_value, max_order_value_7d FROM customer_features WHERE customer_id = 'a'").fetchall()
    s.export(out)
    with open(out, newline="") as fh:
        got["export"] = {r["customer_id"]: r["max_order_value_30d"] for r in csv.DictReader(fh)}
    got["catalog"] = [(r["query"], r["materialize"]) for r in s.catalog() if r["name"] == "max_order_value"]
    got["feature_catalog"] = s.conn.execute(
        "SELECT query, materialized FROM feature_catalog WHERE name = 'max_order_value'").fetchall()
shown = CliRunner().invoke(cli, ["--db", db, "catalog", "max_order_value"])
got["caf catalog"] = [shown.exit_code, "The largest order value in the window." in shown.output]
listed = CliRunner().invoke(cli, ["--db", db, "catalog"])
got["caf catalog list"] = "max_order_value" in listed.output
print(json.dumps(got))
"""


def test_one_commented_column_in_purchases_sql_reaches_every_reader_and_writer(tmp_path):
    copy = tmp_path / "pkg"
    for name in ("store", "sql", "migrations"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "customer_activity_features.py", copy)
    family = copy / "sql" / "purchases.sql"
    text = family.read_text(encoding="utf-8")
    assert "    -- purchase_count_short:" in text
    family.write_text(text.replace("    -- purchase_count_short:", COLUMN + "    -- purchase_count_short:", 1),
                      encoding="utf-8")
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "out.csv"), str(tmp_path / "s.db")],
                            cwd=copy, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.strip().splitlines()[-1])
    keys = got["keys"]
    assert keys[keys.index("total_purchase_value") + 1] == "max_order_value", keys
    assert got["all"] == [70.0, 40.0, None] and got["type"] == "float"
    assert got["cohort"] == [40.0, None]
    assert got["iter"] == {"a": 70.0, "b": None}
    assert got["summary"] == 70.0  # the mean over a (70.0); b has no value
    assert got["features_at"] == [70.0, 40.0, 70.0]
    assert got["materialize"] == [[70.0, 40.0, 70.0]]
    assert got["refresh"] == [[90.0, 90.0]]
    assert got["export"] == {"a": "90.0", "b": ""}
    assert got["catalog"] == [["purchase_features", "windowed"]]
    assert got["feature_catalog"] == [["purchase_features", "windowed"]]
    assert got["caf catalog"] == [0, True] and got["caf catalog list"] is True
