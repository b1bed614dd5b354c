"""The feature registry read from the family files of sql/ gives the records the store had
before it was read from them (tests/fixtures/catalog_records.json, frozen from the hand-written
Python lists of store/catalog.py and store/behavior.py before they were removed)."""

import json
from pathlib import Path

from customer_activity_features import CustomerActivityFeatures
from store import catalog

FROZEN = json.loads((Path(__file__).parent / "fixtures" / "catalog_records.json").read_text(encoding="utf-8"))


def _family_record(fam):
    record = {k: (list(v) if isinstance(v, tuple) else v) for k, v in fam.__dict__.items()}
    record["refresh_all"] = None if fam.refresh_all is None else fam.refresh_all.__name__.lstrip("_").replace(
        "behavior_", "")
    return record


def test_feature_records_equal_the_frozen_records():
    assert [f.as_record() for f in catalog.features()] == FROZEN["features"]


def test_family_records_equal_the_frozen_records():
    assert [_family_record(f) for f in catalog.FAMILIES] == FROZEN["families"]


def test_catalog_api_and_table_give_the_frozen_records():
    with CustomerActivityFeatures() as store:
        assert store.catalog() == FROZEN["features"]
        rows = store.conn.execute("SELECT name, type, unit, window_rule, null_rule, meaning, query, materialized, "
                                  "added_by, position FROM feature_catalog ORDER BY position").fetchall()
    assert [tuple(r) for r in rows] == [
        (f["name"], f["type"], f["unit"], f["window_rule"], f["null_rule"], f["meaning"], f["query"],
         f["materialize"] or "", f["added_by"], i) for i, f in enumerate(FROZEN["features"])]
