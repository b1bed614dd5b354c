"""Plain-Python oracle of the quality report's drift (store/report.py): the population stability
index of one column between two snapshots, binned as docs/report.md says, from lists of values."""

import math

PSI_BINS = 10
PSI_FLOOR = 1e-4
TOP_VALUES = 20


def _bins(previous, numeric):
    """A function value -> bin, built from the previous snapshot's values."""
    present = sorted(v for v in previous if v is not None)
    if numeric and len(set(present)) > PSI_BINS:
        edges = sorted({present[math.floor(k / PSI_BINS * (len(present) - 1))] for k in range(1, PSI_BINS)})

        def numeric_bin(v):
            if v is None:
                return "null"
            for i, edge in enumerate(edges):
                if v <= edge:
                    return i
            return len(edges)
        return numeric_bin
    counts = {}
    for v in previous:
        counts[v] = counts.get(v, 0) + 1
    # (the oracle's callers keep to at most TOP_VALUES distinct values: no tie to break)
    top = set(sorted(counts, key=lambda v: -counts[v])[:TOP_VALUES])

    def value_bin(v):
        if v is None:
            return "null"
        return v if v in top else "(other)"
    return value_bin


def psi(previous, current, numeric=True):
    if not previous or not current:
        return None
    to_bin = _bins(previous, numeric)
    expected, actual = {}, {}
    for v in previous:
        expected[to_bin(v)] = expected.get(to_bin(v), 0) + 1
    for v in current:
        actual[to_bin(v)] = actual.get(to_bin(v), 0) + 1
    total = 0.0
    for b in set(expected) | set(actual):
        e = max(expected.get(b, 0) / len(previous), PSI_FLOOR)
        a = max(actual.get(b, 0) / len(current), PSI_FLOOR)
        total += (a - e) * math.log(a / e)
    return total
