"""Headline ratios, the targets of issue 6, and the printed / Markdown tables."""

# Steps that are the store's own work (the RSS target applies to these); the
# references (raw executemany, sqlite-utils, the sqlite3 shell, in-memory Python)
# are reported but not held to it.
STORE_STEPS = ("ingest_api", "ingest_fast", "single_add", "dump_loader", "materialize", "parallel",
               "refresh", "lookups", "capped")


def _get(doc, step, key):
    r = doc["steps"].get(step) or {}
    if "skipped" in r or "error" in r:
        return None
    return r.get(key)


def _why(doc, *steps):
    for s in steps:
        r = doc["steps"].get(s)
        if r is None:
            return f"{s}: not run"
        if "skipped" in r:
            return f"{s}: {r['skipped']}"
        if "error" in r:
            return f"{s}: ERROR {r['error']}"
    return "not measured"


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def headline(doc):
    """[{measure, value, unit, target, op, status, note}]"""
    s = doc["steps"]
    rows = []

    def add(measure, value, unit, op, target, why_steps, note="", note_if_skipped=None):
        if value is None:
            status, note = "skipped", note_if_skipped or _why(doc, *why_steps)
        elif target is None:  # a reference figure shown for information, no target
            status = "info"
        else:
            ok = value >= target if op == ">=" else value <= target
            status = "pass" if ok else "miss"
        rows.append({"measure": measure, "value": value, "unit": unit, "op": op, "target": target,
                     "status": status, "note": note})

    add("bulk ingest / raw executemany, same schema",
        _ratio(_get(doc, "ingest_api", "events_per_s"), _get(doc, "ingest_raw", "events_per_s")),
        "ratio", ">=", 0.8, ("ingest_api", "ingest_raw"))
    fast = _get(doc, "ingest_fast", "events_per_s")
    add("large first load (fast path)", fast, "events/s", ">=", 400_000, ("ingest_fast",),
        "" if doc["customers"] >= 1_000_000 else "target is for 1,000,000 customers")
    add("single add_* calls, file database", _get(doc, "single_add", "calls_per_s"), "calls/s", ">=", 50_000,
        ("single_add",))
    add("online-retail load / sqlite-utils insert of the CSV",
        _ratio(_get(doc, "dump_loader", "lines_per_s"), _get(doc, "dump_sqlite_utils", "lines_per_s")),
        "ratio", ">=", 1.0, ("dump_loader", "dump_sqlite_utils"),
        "wall clock; CPU-time ratio: {}".format(_fmt(_ratio(_get(doc, "dump_loader", "lines_per_cpu_s"),
                                                           _get(doc, "dump_sqlite_utils", "lines_per_cpu_s")))))
    mat = _get(doc, "materialize", "seconds")
    hand = _get(doc, "handwritten_sql", "seconds")
    add("hand-written single SQL time / materialize time (one core)", _ratio(hand, mat), "ratio", ">=", 0.8,
        ("materialize", "handwritten_sql"))
    par = _get(doc, "parallel", "seconds")
    add("hand-written single SQL time / materialize time (all cores)", _ratio(hand, par), "ratio", ">=", 1.6,
        ("parallel", "handwritten_sql"),
        f"materialize(workers={_get(doc, 'parallel', 'workers')})" if par is not None else "")
    add("in-memory Python (load + compute) / materialize", _ratio(_get(doc, "python_memory", "seconds"), mat),
        "ratio", ">=", 2.0, ("materialize", "python_memory"),
        "seed-style dicts of event dicts; tuples-of-integers Python: {}".format(
            _fmt(_ratio(_get(doc, "python_memory", "tuples_seconds"), mat))))
    for label, key in (("pandas", "pandas"), ("DuckDB", "duckdb")):
        variant = (s.get("dataframes", {}).get("variants") or {}).get(key) or {}
        add(f"{label} (load + compute) / materialize", _ratio(_get(doc, "dataframes", f"{key}_seconds"), mat),
            "ratio", "", None, ("materialize", "dataframes"), "no target; reference only",
            note_if_skipped=None if mat is None else variant.get("skipped"))
    add("full materialize / refresh after 1% change", _get(doc, "refresh", "full_over_refresh"), "ratio", ">=", 20,
        ("refresh",))
    add("get_all_features p50", _get(doc, "lookups", "get_all_features_p50_us"), "us", "<=", 150, ("lookups",),
        "" if doc["customers"] >= 1_000_000 else "target is for 1,000,000 customers")
    row = _get(doc, "lookups", "materialized_row_p50_us")
    add("one materialised row p50", row, "us", "<=", 30, ("lookups",),
        "" if row is not None else (s.get("lookups", {}).get("materialized_row") or {}).get("skipped", ""))
    if row is None and rows[-1]["status"] == "skipped":
        rows[-1]["note"] = (s.get("lookups", {}).get("materialized_row") or {}).get("skipped", rows[-1]["note"])
    add("100-customer cohort (get_cohort_features) p50", _get(doc, "lookups", "cohort_100_p50_ms"), "ms", "<=", 3.0,
        ("lookups",))
    add("materialize every family, engine='sqlite' / engine='duckdb' (end to end)",
        _get(doc, "engines", "sqlite_over_duckdb"), "ratio", ">=", 3.0, ("engines",),
        "" if doc["customers"] >= 1_000_000 else "target is for 1,000,000 customers")
    rss = {k: v.get("peak_rss_mb") for k, v in s.items() if k in STORE_STEPS and v.get("peak_rss_mb")}
    worst = max(rss, key=rss.get) if rss else None
    add("peak RSS of any store step", rss[worst] if worst else None, "MB", "<=", 150, STORE_STEPS,
        f"largest: {worst}" if worst else "")
    return rows


def _fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int) or (isinstance(v, float) and abs(v) >= 1000):
        return f"{v:,.0f}"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def _target(h):
    return "-" if h["target"] is None else f"{h['op']} {_fmt(h['target'])}"


def step_rows(doc):
    """[(step, main figure, seconds, peak RSS MB, note)] for every step."""
    out = []
    keys = ("events_per_s", "calls_per_s", "lines_per_s", "customers_per_s", "full_over_refresh",
            "get_all_features_p50_us", "events")
    for name, r in doc["steps"].items():
        if "skipped" in r:
            out.append((name, "skipped", "-", _fmt(r.get("peak_rss_mb")), r["skipped"][:110]))
            continue
        if "error" in r and name != "capped":
            out.append((name, "ERROR", "-", "-", r["error"][:110]))
            continue
        key = next((k for k in keys if k in r), None)
        fig = f"{_fmt(r[key])} {key}" if key else ""
        secs = r.get("seconds", r.get("refresh_seconds", r.get("step_wall_seconds")))
        note = r.get("method", "")
        if name == "capped":
            fig = f"ok={r.get('ok')} cap {r['cap_mb']:.0f} MB vs db {r['db_mb']:.0f} MB"
            note = f"materialize: {r.get('materialize', r.get('error', '?'))}; iter_features: {r.get('iter_features', '?')}"
        if name == "lookups":
            fig = (f"p50 {_fmt(r.get('get_all_features_p50_us'))} us, p99 {_fmt(r.get('get_all_features_p99_us'))} us; "
                   f"row p50 {_fmt(r.get('materialized_row_p50_us'))} us; cohort {_fmt(r.get('cohort_100_p50_ms'))} ms")
        if name == "python_memory" and r.get("agreement_with_handwritten_sql"):
            note += "; vs hand-written SQL: {rows_checked} rows, {mismatches} mismatches".format(
                **r["agreement_with_handwritten_sql"])
        if name == "handwritten_sql" and r.get("agreement_with_materialize"):
            note = "vs materialize: {rows_checked} rows, {mismatches} mismatches".format(
                **r["agreement_with_materialize"])
        extra = r.get("child_rss_mb")
        rss = _fmt(r.get("peak_rss_mb")) + (f" (child {_fmt(extra)})" if extra else "")
        out.append((name, fig, _fmt(secs), rss, note[:110]))
    return out


def table(doc):
    lines = [f"\ncustomers {doc['customers']:,} | seed {doc['seed']} | repeat {doc['repeat']} (median; "
             f"ingest/materialize/refresh {doc.get('heavy_repeat', doc['repeat'])}) | "
             f"{doc['machine']['nproc']} cores, {doc['machine']['memory_gb']} GB | python {doc['machine']['python']}"
             f" | sqlite {doc['machine']['sqlite_python_module']}", "",
             f"{'measure':<60}{'value':>14} {'unit':<9}{'target':>12}  status"]
    for h in doc["headline"]:
        lines.append(f"{h['measure']:<60}{_fmt(h['value']):>14} {h['unit']:<9}{_target(h):>12}"
                     f"  {h['status']}{'  (' + h['note'] + ')' if h['note'] else ''}")
    lines += ["", f"{'step':<20}{'figure':<58}{'s':>9}{'peak RSS MB':>22}"]
    for name, fig, secs, rss, note in step_rows(doc):
        lines.append(f"{name:<20}{fig:<58}{secs:>9}{rss:>22}  {note}")
    return "\n".join(lines)


def markdown(doc):
    m = doc["machine"]
    out = [f"# Benchmark: {doc['customers']:,} customers ({doc['date']})", "",
           f"Command: `{doc['command']}`; seed {doc['seed']}; each figure the median of {doc['repeat']} run(s) "
           f"(ingest, materialize, refresh: {doc.get('heavy_repeat', doc['repeat'])}); "
           f"total {doc['total_seconds']:.0f} s.", "",
           f"Machine: {m['nproc']} cores, {m['memory_gb']} GB, {m['platform']}, Python {m['python']}, "
           f"SQLite {m['sqlite_python_module']} (module) / {m['sqlite3_shell']} (shell).", "",
           "| measure | value | unit | target | status | note |", "|---|---:|---|---|---|---|"]
    for h in doc["headline"]:
        out.append(f"| {h['measure']} | {_fmt(h['value'])} | {h['unit']} | {_target(h)} | "
                   f"{h['status']} | {h['note']} |")
    out += ["", "| step | figure | seconds | peak RSS MB | note |", "|---|---|---:|---:|---|"]
    for row in step_rows(doc):
        out.append("| " + " | ".join(str(x).replace("|", "/") for x in row) + " |")
    return "\n".join(out) + "\n"
