"""The seed API is unchanged (issue 12 acceptance): every public method and helper keeps its
name, its parameters (name, kind, order, default) and the shape of what it returns.

The two fixtures were written by this module run as a script against the code before the
feature-family work (commit 8f7bee7), from outside the source tree:

    PYTHONPATH=<checkout of 8f7bee7> python tests/test_api_unchanged.py signatures > tests/fixtures/api_signatures.json
    PYTHONPATH=<checkout of 8f7bee7> python tests/test_api_unchanged.py shapes > tests/fixtures/api_shapes.json

A later release may add methods, and keyword-only parameters with a default (callers that do
not pass them see no change); it may not rename, remove, reorder (keyword-only ones excepted)
or re-default a parameter, nor change a result's keys, their order or their value types. The
deliberate exceptions are listed in ``CHANGED_DEFAULTS`` with the issue that changed them.
"""

import inspect
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
AS_OF = "2026-01-01T00:00:00Z"
# (callable, parameter): why its default changed on purpose.
CHANGED_DEFAULTS = {
    ("CustomerActivityFeatures.rfm_summary", "include_zero_values"):
        "issue 11 item 13: zero-value purchases count by default, as in lifetimes",
    ("CustomerActivityFeatures.calibration_and_holdout", "include_zero_values"):
        "issue 11 item 13: zero-value purchases count by default, as in lifetimes",
    ("CustomerActivityFeatures.features_at", "days"):
        "issue 12 item 4: flat rows by default; days= (any value, None too) gives the former tuples "
        "for one release, with a DeprecationWarning",
}
_KEYWORD = "KEYWORD_ONLY"


def signatures():
    """{qualified name: [[parameter, kind, default repr], ...]} of every public callable."""
    import customer_activity_features as caf

    out = {}
    for name in ("calculate_purchase_features", "calculate_session_features"):
        out[name] = _params(getattr(caf, name))
    for name, member in inspect.getmembers(caf.CustomerActivityFeatures):
        if not name.startswith("_") and callable(member):
            out[f"CustomerActivityFeatures.{name}"] = _params(member)
    return out


def _params(fn):
    return [[p.name, p.kind.name, None if p.default is inspect.Parameter.empty else repr(p.default)]
            for p in inspect.signature(fn).parameters.values()]


def _shape(value):
    """The type shape of a result: dict keys in order with their values' shapes, the first two
    items of a list or tuple, else the type's name."""
    if isinstance(value, dict):
        return {"dict": [[str(k), _shape(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [_shape(v) for v in value[:2]]}
    return type(value).__name__


def shapes():
    """{call: shape of its result} on a small synthetic shop (the same every run)."""
    import customer_activity_features as caf
    from store import synthetic

    out = {}
    with tempfile.TemporaryDirectory() as d:
        with caf.CustomerActivityFeatures(os.path.join(d, "s.db")) as store:
            synthetic.populate(store, 40)
            one = synthetic.customer_id(3)
            ids = [synthetic.customer_id(i) for i in range(5)]
            for name in sorted(dir(store)):
                if name.startswith("get_"):
                    arg = ids if name.startswith("get_cohort") else one
                    out[name] = _shape(getattr(store, name)(arg, as_of=AS_OF))
            out["iter_features"] = _shape(list(store.iter_features(ids, as_of=AS_OF)))
            out["rfm_summary"] = _shape(store.rfm_summary(AS_OF))
            out["calibration_and_holdout"] = _shape(store.calibration_and_holdout("2025-10-01T00:00:00Z", AS_OF))
            out["catalog"] = _shape(store.catalog()[:1])
            out["materialize"] = _shape(store.materialize(as_of=AS_OF))
            out["refresh"] = _shape(store.refresh(as_of="2026-01-02T00:00:00Z"))
            out["export"] = _shape(store.export(os.path.join(d, "x.csv")))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                out["features_at(days=None)"] = _shape(list(store.features_at([(one, AS_OF)], days=None)))
            out["materialize_families"] = _shape(caf.CustomerActivityFeatures.materialize_families())
    out["calculate_purchase_features"] = _shape(caf.calculate_purchase_features(
        [{"customer_id": "a", "order_value": 10.0, "purchase_date": "2025-12-30T00:00:00Z"}], as_of=AS_OF))
    out["calculate_session_features"] = _shape(caf.calculate_session_features(
        [{"customer_id": "a", "duration_seconds": 10, "device_type": "mobile",
          "session_date": "2025-12-30T00:00:00Z"}], as_of=AS_OF))
    return out


def _fixture(name):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_every_method_keeps_its_parameters():
    before, now = _fixture("api_signatures.json"), signatures()
    problems = []
    for name, old in before.items():
        if name not in now:
            problems.append(f"{name}: removed")
            continue
        new = now[name]
        positional = [p[:2] for p in new if p[1] != _KEYWORD]
        if positional != [p[:2] for p in old if p[1] != _KEYWORD]:
            problems.append(f"{name}: positional parameters {old} became {new}")
            continue
        kept = {p[0]: p for p in new}
        for param, kind, was in old:
            if param not in kept or kept[param][1] != kind:
                problems.append(f"{name}: parameter {param} removed or of another kind")
            elif kept[param][2] != was and (name, param) not in CHANGED_DEFAULTS:
                problems.append(f"{name}({param}): default {was} became {kept[param][2]}")
        known = {p[0] for p in old}
        for param, kind, default in new:
            if param not in known and (kind != _KEYWORD or default is None):
                problems.append(f"{name}: new parameter {param} is not keyword-only with a default")
    assert not problems, "\n".join(problems)


def test_every_result_keeps_its_shape():
    before, now = _fixture("api_shapes.json"), shapes()
    changed = [name for name in before if now.get(name) != before[name]]
    assert not changed, "results whose keys, key order or value types changed: " + ", ".join(changed)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "shapes"
    json.dump(signatures() if which == "signatures" else shapes(), sys.stdout, indent=1)
    sys.stdout.write("\n")
