"""The feature quality report (``caf report PATH.html``, ``CustomerActivityFeatures.report``).

``compute(conn, shop_id, reg)`` measures, set-based in SQL (sql/report.sql), for every feature
column of the shop's last materialisation: rows, NULL and zero rates, min, quantiles, max, a
histogram (or the most frequent values of a categorical column), and the drift against the
previous materialisation (``customer_features_previous``, the table the last full
``materialize`` replaced) as a population stability index; then the events per day per kind,
the rejections by reason and the load history (sql/browser.sql, the queries the browser shows).
``render(result)`` turns that into one self-contained HTML page: plots drawn by matplotlib as
SVG, inlined as ``data:`` images, no script, no network.

Drift (``psi``): PSI = sum over bins of (a - e) * ln(a / e), e the previous snapshot's share of
the shop's rows in the bin, a the last one's, each share floored at ``PSI_FLOOR`` (an empty bin
would be infinite). The bins: NULL is a bin of its own; a numeric column with more than
``PSI_BINS`` distinct previous values is cut at the previous snapshot's deciles (the values at
ranks floor(k/10 * (n - 1)), k = 1..9, duplicates dropped: bin i holds edge[i-1] < v <= edge[i],
the last bin everything above); any other column (text, flags, few values) has one bin per
value, the ``TOP_VALUES`` most frequent previous values, every other value in one "other" bin.
A feature has drifted when PSI > ``PSI_DRIFTED`` (0.2), moved when PSI > ``PSI_MOVED`` (0.1):
the usual rule of thumb for PSI on deciles.

Memory does not grow with the number of customers: one column's values are copied into a
temporary table at a time, and only aggregates (at most ``HIST_BINS`` bins, ``TOP_VALUES``
values, the days of the event history) come back to Python.
"""

import base64
import io
import math
from dataclasses import dataclass, field

from . import catalog, ingest, timeutil
from .db import begin_read, commit, quote_identifier, rollback
from .errors import NoMaterializationError, require_extra
from .plan import DEFAULT_WINDOWS, Plan, run_families
from .resources import query
from .runs import PREVIOUS_TABLE, TABLE, last_run, table_columns, table_exists

PSI_BINS = 10          # deciles of the previous snapshot
PSI_FLOOR = 1e-4       # the smallest share a bin counts with
PSI_DRIFTED = 0.2      # PSI above this: drifted
PSI_MOVED = 0.1        # PSI above this (and not drifted): moved
TOP_VALUES = 20        # values of a categorical column shown, and binned for drift
HIST_BINS = 30         # equal-width bins of a numeric column's histogram
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
DAY_US = 86_400_000_000
NULL_BIN = ("NULL",)  # the NULL bin's key (a value of no column)
OTHER = "(other)"


@dataclass
class ColumnReport:
    column: str
    feature: str
    type: str
    unit: str
    meaning: str
    window: object
    rows: int = 0
    nulls: int = 0
    zeros: int = 0
    min: object = None
    max: object = None
    mean: object = None
    distinct: int = 0
    quantiles: dict = field(default_factory=dict)
    histogram: list = field(default_factory=list)       # [(low, high, n)] (numeric)
    categories: list = field(default_factory=list)      # [(value, n)] (categorical)
    previous_histogram: list = field(default_factory=list)
    previous_categories: list = field(default_factory=list)
    psi: object = None                                   # None: no previous snapshot
    drift: str = "no previous snapshot"

    @property
    def null_rate(self):
        return self.nulls / self.rows if self.rows else None

    @property
    def zero_rate(self):
        return self.zeros / self.rows if self.rows else None


@dataclass
class Report:
    shop_id: str
    as_of: str
    rows: int
    columns: list
    previous_as_of: object            # None: no previous snapshot of the shop
    previous_rows: int
    events_per_day: dict              # {table: [(day ISO, n)]}
    rejections: list                  # rows of browser_rejections_by_reason
    rejection_columns: list
    loads: list                       # rows of browser_load_history
    load_columns: list
    generated_at: str = ""

    @property
    def drifted(self):
        return [c.column for c in self.columns if c.psi is not None and c.psi > PSI_DRIFTED]


def feature_columns(conn, shop_id, reg=None):
    """[(column, Feature, window days or None)]: the feature columns of ``customer_features``
    as the shop's last materialisation made them (the defaults when there is none)."""
    run = last_run(conn, shop_id)
    plan = Plan(conn, run["windows"] if run else DEFAULT_WINDOWS, run_families(run, reg) if run else None, reg)
    records = catalog.by_name(reg)
    out = []
    for column, _sqltype, _table, name in plan.columns:
        out.append((column, records[name], None if column == name else int(column[len(name) + 1:-1])))
    return out


def psi(expected, actual):
    """The population stability index of two {bin: rows} counts (see the module's docstring)."""
    e_total, a_total = sum(expected.values()), sum(actual.values())
    if not e_total or not a_total:
        return None
    total = 0.0
    for b in set(expected) | set(actual):
        e = max(expected.get(b, 0) / e_total, PSI_FLOOR)
        a = max(actual.get(b, 0) / a_total, PSI_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def drift_label(value):
    if value is None:
        return "no previous snapshot"
    if value > PSI_DRIFTED:
        return "drifted"
    if value > PSI_MOVED:
        return "moved"
    return "stable"


def _one(conn, name, params):
    cur = conn.execute(query(name), params)
    return dict(zip([d[0] for d in cur.description], cur.fetchone()))


def _quantile(conn, snapshot, present, q):
    if not present:
        return None
    return conn.execute(query("report_value_at"), {"snapshot": snapshot, "rank": math.floor(q * (present - 1))}).fetchone()[0]


def _histogram(conn, snapshot, low, high):
    width = (high - low) / HIST_BINS if high > low else 1.0
    counts = {b: n for b, n in conn.execute(query("report_histogram"), {"snapshot": snapshot, "low": float(low),
                                                                        "width": float(width), "bins": HIST_BINS})}
    return [(low + b * width, low + (b + 1) * width, counts.get(b, 0)) for b in range(HIST_BINS)]


def _categories(conn, snapshot):
    return [(v, n) for v, n in conn.execute(query("report_categories"), {"snapshot": snapshot, "limit": TOP_VALUES})]


def _value_counts(conn, snapshot):
    return [(v, n) for v, n in conn.execute(query("report_value_counts"), {"snapshot": snapshot,
                                                                           "limit": HIST_BINS + 1})]


def _drift(conn, report, previous_stats):
    """PSI of the column in report_values (snapshot 1 the reference), binned as documented."""
    numeric = report.type in ("integer", "real") and previous_stats["distinct_values"] > PSI_BINS
    counts = {0: {}, 1: {}}
    if numeric:
        conn.execute(query("report_clear_edges"))
        edges = sorted({_quantile(conn, 1, previous_stats["present"], k / PSI_BINS) for k in range(1, PSI_BINS)})
        for i, edge in enumerate(edges):
            conn.execute(query("report_insert_edge"), {"bin": i, "upper": edge})
        for snapshot, b, n in conn.execute(query("report_binned"), {"bins": len(edges)}):
            counts[snapshot][NULL_BIN if b == -1 else b] = n
    else:
        top = {v for v, _n in _categories(conn, 1)}
        for snapshot, v, n in conn.execute(query("report_by_value")):
            key = NULL_BIN if v is None else (v if v in top else OTHER)
            counts[snapshot][key] = counts[snapshot].get(key, 0) + n
    return psi(counts[1], counts[0])


def prepare(conn):
    """Create the report's temporary tables on ``conn`` (once per connection)."""
    for name in ("report_create_values", "report_create_edges"):
        conn.execute(query(name))


def column_report(conn, shop_id, column, feature, window, allowed, previous):
    """The ``ColumnReport`` of one column of ``customer_features`` (``previous``: compare with
    ``customer_features_previous``); ``allowed``: the column names that may be read."""
    report = ColumnReport(column, feature.name, feature.type, feature.unit, feature.meaning, window)
    conn.execute(query("report_drop_index"))
    conn.execute(query("report_clear"))
    name = quote_identifier(column, allowed)
    conn.execute(f"INSERT INTO temp.report_values (snapshot, v) SELECT 0, {name} FROM main.{TABLE} "
                 "WHERE shop_id = ?", [shop_id])
    if previous:
        conn.execute(f"INSERT INTO temp.report_values (snapshot, v) SELECT 1, {name} FROM main.{PREVIOUS_TABLE} "
                     "WHERE shop_id = ?", [shop_id])
    conn.execute(query("report_index_values"))
    stats = _one(conn, "report_column_stats", {"snapshot": 0})
    report.rows, report.nulls, report.zeros = stats["rows"], stats["rows"] - stats["present"], stats["zeros"]
    report.min, report.max, report.mean = stats["min"], stats["max"], stats["mean"]
    report.distinct = stats["distinct_values"]
    numeric = feature.type in ("integer", "real")
    if numeric:
        report.quantiles = {q: _quantile(conn, 0, stats["present"], q) for q in QUANTILES}
    if numeric and stats["distinct_values"] > HIST_BINS:
        report.histogram = _histogram(conn, 0, stats["min"], stats["max"])
    elif numeric:
        report.categories = _value_counts(conn, 0)
    else:
        report.categories = _categories(conn, 0)
    if previous:
        previous_stats = _one(conn, "report_column_stats", {"snapshot": 1})
        if report.histogram and previous_stats["present"]:
            report.previous_histogram = _histogram(conn, 1, stats["min"], stats["max"])
        elif report.categories:
            report.previous_categories = (_value_counts if numeric else _categories)(conn, 1)
        report.psi = _drift(conn, report, previous_stats)
        report.drift = drift_label(report.psi)
    return report


def compute(conn, shop_id="", reg=None, *, columns=None):
    """The report's figures (a ``Report``) for the shop's last materialisation; ``columns``
    limits the feature columns (None: every one). Raises NoMaterializationError when the shop
    has none. One read snapshot; temporary tables only."""
    run = last_run(conn, shop_id)
    if run is None or not table_exists(conn, TABLE):
        raise NoMaterializationError(f"nothing to report: shop {shop_id!r} has no materialisation yet "
                                     "(run 'caf materialize' first)")
    prepare(conn)
    begin_read(conn)
    try:
        present = set(table_columns(conn, TABLE))
        chosen = [(c, f, w) for c, f, w in feature_columns(conn, shop_id, reg) if c in present
                  and (columns is None or c in columns)]
        rows = conn.execute(f"SELECT COUNT(*) FROM main.{TABLE} WHERE shop_id = ?", [shop_id]).fetchone()[0]
        previous_as_of, previous_rows = None, 0
        previous_columns = set(table_columns(conn, PREVIOUS_TABLE))
        if previous_columns:
            found = conn.execute(f"SELECT MIN(as_of), COUNT(*) FROM main.{PREVIOUS_TABLE} WHERE shop_id = ?",
                                 [shop_id]).fetchone()
            previous_as_of, previous_rows = found if found[1] else (None, 0)
        allowed = {c for c, _f, _w in chosen}
        reports = [column_report(conn, shop_id, c, f, w, allowed, previous_rows > 0 and c in previous_columns)
                   for c, f, w in chosen]
        conn.execute(query("report_clear"))
        events = {}
        tables = tuple(kind.table for kind in ingest.KINDS.values())
        for table in tables:
            if not table_exists(conn, table):
                continue
            cur = conn.execute(f"SELECT event_time_us / {DAY_US} AS day, COUNT(*) FROM main."
                               f"{quote_identifier(table, tables)} WHERE shop_id = ? GROUP BY day ORDER BY day",
                               [shop_id])
            days = [(timeutil.iso(day * DAY_US)[:10], n) for day, n in cur]
            if days:
                events[table] = days
        rejections = conn.execute(query("browser_rejections_by_reason"), {"shop": shop_id})
        rejection_columns = [d[0] for d in rejections.description]
        rejection_rows = list(rejections)  # at most 200 (LIMIT in the query)
        loads = conn.execute(query("browser_load_history"), {"shop": shop_id})
        load_columns = [d[0] for d in loads.description]
        load_rows = list(loads)  # at most 200
        commit(conn)
    except BaseException:
        rollback(conn)
        raise
    return Report(shop_id, run["as_of"], rows, reports, previous_as_of, previous_rows, events,
                  rejection_rows, rejection_columns, load_rows, load_columns, timeutil.iso(timeutil.now_us()))


# -- rendering ------------------------------------------------------------------------------
def _libraries():
    jinja2, matplotlib = require_extra("report", ("jinja2", "matplotlib"), "caf report")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return jinja2, matplotlib, plt


def check_installed():
    """Raise MissingExtraError naming the extra when matplotlib or jinja2 is missing."""
    _libraries()


def _svg(plt, fig):
    """A figure as a data: URL of its SVG (an <img> of its own: no id shared between plots)."""
    out = io.BytesIO()
    fig.savefig(out, format="svg")
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _label(value):
    if value is None:
        return "(null)"
    return str(value)


def _column_plot(plt, col):
    fig, ax = plt.subplots(figsize=(4.2, 2.2))
    if col.histogram:
        lows = [low for low, _h, _n in col.histogram]
        widths = [high - low for low, high, _n in col.histogram]
        ax.bar(lows, [n for _l, _h, n in col.histogram], width=widths, align="edge", color="#4C72B0",
               label="last")
        if col.previous_histogram:
            edges = lows + [col.histogram[-1][1]]
            ax.stairs([n for _l, _h, n in col.previous_histogram], edges, color="#DD8452", linewidth=1.5,
                      label="previous")
            ax.legend(fontsize=7, frameon=False)
        ax.set_ylabel("customers", fontsize=8)
    elif col.type in ("integer", "real"):  # few distinct values: one bar per value, in value order
        labels = [_label(v) for v, _n in col.categories]
        x = list(range(len(labels)))
        shift = 0.2 if col.previous_categories else 0.0
        ax.bar([i - shift for i in x], [n for _v, n in col.categories], width=0.4 if shift else 0.8,
               color="#4C72B0", label="last")
        if col.previous_categories:
            previous = {_label(v): n for v, n in col.previous_categories}
            ax.bar([i + shift for i in x], [previous.get(label, 0) for label in labels], width=0.4,
                   color="#DD8452", label="previous")
            ax.legend(fontsize=7, frameon=False)
        ax.set_xticks(x, labels, fontsize=7, rotation=90 if len(labels) > 12 else 0)
        ax.set_ylabel("customers", fontsize=8)
    else:
        labels = [_label(v) for v, _n in col.categories]
        y = list(range(len(labels)))
        ax.barh(y, [n for _v, n in col.categories], color="#4C72B0", height=0.6 if col.previous_categories else 0.8,
                label="last")
        if col.previous_categories:
            previous = {_label(v): n for v, n in col.previous_categories}
            ax.barh([i + 0.35 for i in y], [previous.get(label, 0) for label in labels], height=0.3,
                    color="#DD8452", label="previous")
            ax.legend(fontsize=7, frameon=False)
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("customers", fontsize=8)
    ax.set_title(col.column, fontsize=9)
    ax.tick_params(labelsize=7)
    fig.subplots_adjust(left=0.3 if col.type in ("text", "boolean") else 0.16, right=0.97, bottom=0.2, top=0.88)
    return _svg(plt, fig)


def _events_plot(plt, events):
    from datetime import date

    fig, ax = plt.subplots(figsize=(8, 2.8))
    for table, days in events.items():
        ax.plot([date.fromisoformat(d) for d, _n in days], [n for _d, n in days], label=table, linewidth=1)
    ax.set_ylabel("events per day", fontsize=8)
    ax.legend(fontsize=7, frameon=False, ncol=4)
    ax.tick_params(labelsize=7)
    fig.autofmt_xdate()
    return _svg(plt, fig)


def _rejections_plot(plt, rows):
    fig, ax = plt.subplots(figsize=(8, 0.3 * min(len(rows), 15) + 0.8))
    shown = rows[:15]
    labels = [f"{kind}: {reason}"[:70] for kind, reason, *_ in shown]
    ax.barh(range(len(shown)), [r[2] for r in shown], color="#C44E52")
    ax.set_yticks(range(len(shown)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("rejected rows", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.subplots_adjust(left=0.45, right=0.97)
    return _svg(plt, fig)


def _number(value):
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value or math.isinf(value):
            return str(value)
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _percent(value):
    return "–" if value is None else f"{100 * value:.1f}%"


TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Feature quality report: shop {{ shop_label }}, as of {{ r.as_of }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.82em; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ddd; padding: 6px; width: 440px; }
.card p { font-size: 0.78em; margin: 2px 0; }
.drifted { color: #b00; font-weight: bold; } .moved { color: #b60; } .stable { color: #070; }
.note { font-size: 0.85em; color: #555; }
</style></head><body>
<h1>Feature quality report</h1>
<p>Shop {{ shop_label }}: {{ "{:,}".format(r.rows) }} customers in the last materialisation, as of {{ r.as_of }};
{{ r.columns|length }} feature columns. Generated {{ r.generated_at }}.</p>

<h2>Drift against the previous materialisation</h2>
{% if r.previous_as_of is none %}
<p class="note" id="no-previous">No previous materialisation of this shop to compare with: drift needs two
(the previous snapshot is kept by the next <code>caf materialize</code>).</p>
{% else %}
<p>Previous snapshot as of {{ r.previous_as_of }} ({{ "{:,}".format(r.previous_rows) }} customers).
{{ r.drifted|length }} drifted column(s){% if r.drifted %}: {{ r.drifted|join(", ") }}{% endif %}.</p>
<p class="note">Population stability index, PSI = &Sigma; (a &minus; e) &middot; ln(a / e), a and e the last and
previous shares of customers per bin (floored at {{ floor }}). Bins: NULL, then the previous snapshot's deciles
for a numeric column with more than {{ psi_bins }} distinct values, else one bin per value (the {{ top }} most
frequent, the rest together). Drifted: PSI &gt; {{ drifted }}; moved: PSI &gt; {{ moved }}.</p>
{% endif %}

<h2>Features</h2>
<div class="grid">
{% for c, plot in columns %}<div class="card" id="col-{{ c.column }}">
<img class="plot" alt="distribution of {{ c.column }}" src="{{ plot }}" width="420">
<p>{{ c.meaning }} <i>({{ c.type }}, {{ c.unit }}{% if c.window %}, last {{ c.window }} days{% endif %})</i></p>
<p>nulls {{ pct(c.null_rate) }} &middot; zeros {{ pct(c.zero_rate) }} &middot; min {{ num(c.min) }} &middot;
{% for q, v in c.quantiles.items() %}p{{ (q * 100)|round|int }} {{ num(v) }} &middot; {% endfor %}max {{ num(c.max) }}
&middot; distinct {{ num(c.distinct) }}{% if c.psi is not none %} &middot; PSI {{ num(c.psi) }}
<span class="{{ c.drift }}">{{ c.drift }}</span>{% endif %}</p>
</div>
{% endfor %}</div>

<h2>Summary table</h2>
<table id="summary"><tr><th class="l">column</th><th>nulls</th><th>zeros</th><th>min</th><th>p5</th><th>p25</th>
<th>median</th><th>p75</th><th>p95</th><th>max</th><th>PSI</th><th class="l">drift</th></tr>
{% for c in r.columns %}<tr><td class="l"><a href="#col-{{ c.column }}">{{ c.column }}</a></td>
<td>{{ pct(c.null_rate) }}</td><td>{{ pct(c.zero_rate) }}</td><td>{{ num(c.min) }}</td>
<td>{{ num(c.quantiles.get(0.05)) }}</td><td>{{ num(c.quantiles.get(0.25)) }}</td><td>{{ num(c.quantiles.get(0.5)) }}</td>
<td>{{ num(c.quantiles.get(0.75)) }}</td><td>{{ num(c.quantiles.get(0.95)) }}</td><td>{{ num(c.max) }}</td>
<td>{{ num(c.psi) }}</td><td class="l {{ c.drift.split()[0] }}">{{ c.drift }}</td></tr>
{% endfor %}</table>

<h2>Events per day</h2>
{% if events_plot %}<img class="plot" alt="events per day per kind" src="{{ events_plot }}">
{% else %}<p class="note">No events.</p>{% endif %}

<h2>Rejections by reason</h2>
{% if r.rejections %}<img class="plot" alt="rejections by reason" src="{{ rejections_plot }}">
<table><tr>{% for h in r.rejection_columns %}<th class="l">{{ h }}</th>{% endfor %}</tr>
{% for row in r.rejections %}<tr>{% for v in row %}<td class="l">{{ num(v) }}</td>{% endfor %}</tr>{% endfor %}
</table>{% else %}<p class="note">No rejected events.</p>{% endif %}

<h2>Load history</h2>
{% if r.loads %}<table><tr>{% for h in r.load_columns %}<th class="l">{{ h }}</th>{% endfor %}</tr>
{% for row in r.loads %}<tr>{% for v in row %}<td class="l">{{ num(v) }}</td>{% endfor %}</tr>{% endfor %}
</table>{% else %}<p class="note">No file loads (events added through the API are not file loads).</p>{% endif %}
</body></html>
"""


def render(report):
    """The report as one self-contained HTML page (text)."""
    jinja2, matplotlib, plt = _libraries()
    with matplotlib.rc_context({"svg.hashsalt": "caf-report", "svg.fonttype": "none"}):
        columns = [(c, _column_plot(plt, c)) for c in report.columns]
        events_plot = _events_plot(plt, report.events_per_day) if report.events_per_day else None
        rejections_plot = _rejections_plot(plt, report.rejections) if report.rejections else None
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE).render(
        r=report, columns=columns, events_plot=events_plot, rejections_plot=rejections_plot,
        shop_label=repr(report.shop_id), num=_number, pct=_percent, floor=PSI_FLOOR, psi_bins=PSI_BINS,
        top=TOP_VALUES, drifted=PSI_DRIFTED, moved=PSI_MOVED)
