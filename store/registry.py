"""The feature registry, read from the family files of ``sql/``.

A feature family is one named query of ``sql/`` whose header line is ``-- family: NAME``
(instead of ``-- name: NAME``). The comment lines right after that header say what the
store needs to know about it, one ``-- key: value`` line each; the first line that is not
one of these keys ends the header::

    -- family: purchase_features
    -- order: 10                  where its records come in the catalog (and its columns in
                                  customer_features), smallest first; required
    -- tables: purchases          the event tables it reads (comma-separated; may be empty)
    -- requires: a, b             named queries of sql/ it reads as CTEs
    -- keyed: a                   those of `requires` with exactly one row per target
                                  (materialize stages each into a table of its own)
    -- edges days: 30, 90         window lengths in days, other than the materialized
                                  windows, that its values depend on; `any`: as_of itself
    -- edge tables: purchases     the tables whose events the edges apply to (default: tables)
    -- reads windows: no          it reads none of the windowed columns of the families it
                                  requires (default: yes): their declared edges change its
                                  values, their windows do not
    -- edge query: NAME           a query computing only the columns that depend on the edges
    -- edge requires: a, b        the named queries the edge query reads
    -- refresh all: HOOK          a named refresh hook (store.plan.REFRESH_HOOKS) that
                                  brings the family's columns of every row to a new as_of
    -- optional: yes              skipped (not an error) when a table it reads is missing
    -- added by: issue 5 (...)    who added it (default: issue 3 (seed features))
    -- window: RULE               the window rule of its columns that name none
    -- helpers: a, b              output columns that are not features (read by other queries)
    -- table only: a, b           feature columns of customer_features and the catalog that are
                                  not keys of the getters (get_all_features, cohorts,
                                  iter_features): the in-memory original never returned them
    -- column order: a, b, c      the catalog order of its columns, when it is not the order of
                                  their comments (a column computed from others: all_features)
    -- object: NAME: COMMENT      a feature that is not an SQL column (a dict returned by a
                                  getter), computed by this query; COMMENT as for a column
    -- derived: NAME = EXPR       (one line per column) a column of the family that depends on
                                  as_of: EXPR, an SQL expression over ``as_of_us`` and the
                                  family's own stored (not derived) all-time columns, is its only
                                  definition. The query does not compute it (its comment line
                                  stands where it is listed); every statement running the family
                                  computes it after the query's columns (store.features.runnable),
                                  and customer_features computes it at read time from the stored
                                  columns instead of storing it (store.plan.view_sql).
                                  store.catalog.derived_columns checks EXPR with SQLite.

Every output column of the family has a comment line right before it::

    -- <column>: <meaning>; <type>[, <unit>]; <null rule>[; window: <window rule>]

``type`` is integer, real, text or boolean (object for an ``object:`` line); the unit is
required (``integer, count``). The meaning may itself contain ``; `` (it ends at the part
that starts with a type); the null rule runs to the end or to ``; window: ``. The window
rule is text, or one of the keywords ``windowed`` (the standard windowed rule),
``frequency`` (the per-30-days frequency rule) or ``all time``. A column without one takes
the family's ``window:`` line, else ``windowed`` when the family uses ``:window_us`` (it is
then materialised once per window as ``<column>_<N>d`` plus the all-time ``<column>``) and
``all time`` when it does not. A column of a windowed family whose rule is ``windowed`` or
``frequency`` is materialised per window (WINDOWED); every other column once (FIXED).

A plain ``-- name:`` query may have a ``requires:`` line (the CTEs its statement is composed
with, in order: ``behavior_features``), ``object:`` lines (with an ``order:`` line):
``device_usage_pattern`` in sql/sessions.sql (session_devices), ``metadata`` in
sql/customers.sql (customer_metadata), ``activity_retention_tradeoff`` in
sql/all_features.sql; and, for an ``UPDATE`` of ``customer_features``, ``sets:`` and ``reads:``
lines (the feature columns it writes and those it reads, besides ``as_of``, ``as_of_us`` and
``shop_id``; ``behavior_rfm_scores_snapshot`` has a ``reads:`` line, read by store.behavior).
A family may not have ``sets:`` or ``reads:`` lines. A malformed file raises ``FamilyDefinitionError`` naming the file, the
line and the reason. docs/feature_store.md describes the format for readers.
"""

import functools
import hashlib
import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .errors import FamilyDefinitionError
from .resources import NAME_HEADER, parse_queries, query as builtin_query, queries as builtin_queries, resource_dir

WINDOWED = "windowed"
FIXED = "fixed"
TYPES = ("integer", "real", "text", "boolean", "object")
DEFAULT_ADDED_BY = "issue 3 (seed features)"

# The window rules the keywords of a column comment name.
WINDOW_RULE = ("windowed: events with as_of - N days <= time <= as_of; column <name>_<N>d per "
               "materialized window, <name> over all time up to as_of")
FREQUENCY_RULE = ("windowed: events in the last N days, per 30 days; column <name>_<N>d per window; "
                  "<name> (and get_all_features with days=None) uses the 30-day window")
ALL_TIME_RULE = "all events at or before as_of; ignores days"
WINDOW_KEYWORDS = {"windowed": WINDOW_RULE, "frequency": FREQUENCY_RULE, "all time": ALL_TIME_RULE}
_PER_WINDOW = ("windowed", "frequency")

_LIST_KEYS = ("tables", "requires", "keyed", "edge tables", "edge requires", "helpers", "column order",
              "table only", "sets", "reads")
_PLAIN_KEYS = ("order", "requires", "sets", "reads")  # the header lines of a plain -- name: query
_PLAIN_ONLY_KEYS = ("sets", "reads")
_TEXT_KEYS = ("order", "edges days", "edge query", "refresh all", "optional", "added by", "window",
              "reads windows")
_DERIVED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S.*)$")
_HEADER_LINE = re.compile(r"^--\s*([a-z][a-z ]*[a-z]):\s?(.*)$")
_COLUMN_LINE = re.compile(r"^\s*--\s*([A-Za-z_][A-Za-z0-9_]*):\s*(.*)$")
_TYPE_PART = re.compile(r"^(integer|real|text|boolean|object)(?:,\s*(.*))?$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WINDOW_PARAMETER = re.compile(r":window_us\b")


@dataclass(frozen=True)
class Feature:
    """The definition record of one feature (every field must be non-empty)."""

    name: str            # the feature's name: get_all_features key and/or materialized column base
    type: str            # integer, real, text, boolean (stored 0/1) or object (dict, not materialized)
    unit: str            # e.g. 'count', 'currency units', 'seconds', 'days', 'ratio 0..1'
    window_rule: str     # which events count
    null_rule: str       # the value when there is nothing to compute from
    meaning: str         # one sentence
    query: str           # name of the SQL query in sql/ that computes it
    materialize: str = None  # WINDOWED, FIXED or None (not a scalar column)
    added_by: str = DEFAULT_ADDED_BY

    def as_record(self):
        # every field is a str (or None): a shallow dict is the record (dataclasses.asdict
        # deep-copies each value, a tenth of the cost of opening a new store)
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Family:
    """A family query materialized into customer_features (the header lines of its file).

    ``tables``: the tables it reads; the family is skipped (optional) or an
    error is raised when one is missing. ``edges_days``: window lengths in days,
    other than the materialized windows, that its values depend on (an event
    crossing ``as_of - edge`` changes them); ``None`` means its values can
    change with ``as_of`` for any customer, so ``refresh`` recomputes everyone.
    ``requires``: other named queries it reads as CTEs (only for families
    without WINDOWED features). ``refresh_all``: a callable
    ``(conn, shop_id, as_of_us, previous_us)`` that ``refresh`` runs after its
    incremental insert to bring the family's columns of every row of the shop
    from the last run's as_of to the new one (for values that depend on other
    customers, e.g. RFM ranks); the
    registry holds the hook's name, store.catalog the callable.
    ``keyed``: queries among ``requires`` that return exactly one row per target;
    ``materialize`` computes each into a table of its own before the family
    (one statement each, so fewer intermediate tables are alive at once).
    ``edge_tables``: the tables whose events the window edges apply to (None:
    every table of ``tables``); ``refresh`` recomputes the family for a customer
    whose event of another table crosses an edge only when that event changes
    another family the family reads. ``edge_query``: a family-shaped query of
    ``sql/`` (reading ``target`` and the CTEs named in ``edge_requires``)
    computing only the family's columns that depend on its window edges;
    ``refresh`` runs it in place of the family query for a customer whose only
    change is an event crossing one of the family's edges (None: the family
    query). ``reads_windows``: False when the family reads none of the windowed
    columns of the families it requires (all_features reads their 30- and
    90-day helpers, not their windows): an event crossing one of their declared
    edges changes its values, one crossing one of their windows does not.
    """

    query: str
    tables: tuple
    edges_days: tuple = ()
    requires: tuple = ()
    optional: bool = False
    added_by: str = DEFAULT_ADDED_BY
    refresh_all: object = None
    keyed: tuple = ()
    edge_tables: tuple = None
    edge_query: str = None
    edge_requires: tuple = ()
    derived: tuple = ()   # ((column, SQL expression over as_of_us and stored columns), ...): `derived:` lines
    reads_windows: bool = True


@dataclass(frozen=True)
class Block:
    """One query of a file that the registry reads: a family, or a query declaring objects."""

    name: str
    source: str          # the file's name, e.g. 'purchases.sql'
    line: int            # the line of its header
    order: int
    family: Family       # None for a plain query (objects and/or requires only)
    features: tuple      # its Feature records, in catalog order (columns, then objects)
    helpers: tuple       # its output columns that are not features
    requires: tuple = () # the named queries it reads as CTEs, in order
    table_only: tuple = ()  # its feature columns that are not keys of the getters (`table only:`)
    sets: tuple = ()     # a plain UPDATE of customer_features: the feature columns it writes
    reads: tuple = ()    # ... and the feature columns it reads
    derived_lines: tuple = ()  # the line of each `derived:` line of the family, in its order


def _items(value):
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _comment(name, text, source, line, *, window_default, windowed, query, added_by, is_object):
    """A Feature from the text after ``<name>:`` of a column comment or an ``object:`` line."""
    def fail(reason):
        raise FamilyDefinitionError(source, line, f"{name}: {reason}")

    if not _IDENTIFIER.match(name):
        fail("not a column name")
    parts = text.split("; ")
    at = next((i for i, part in enumerate(parts) if i > 0 and _TYPE_PART.match(part)), None)
    if at is None:
        fail("no '; <type>[, <unit>]; ' part (types: " + ", ".join(TYPES) + ")")
    meaning = "; ".join(parts[:at]).strip()
    kind, unit = _TYPE_PART.match(parts[at]).groups()
    rest = parts[at + 1:]
    cut = next((i for i, part in enumerate(rest) if part.startswith("window:")), len(rest))
    null_rule = "; ".join(rest[:cut]).strip()
    window = "; ".join(rest[cut:])[len("window:"):].strip() if cut < len(rest) else None
    if not meaning:
        fail("no meaning before the type")
    if not unit or not unit.strip():
        fail(f"no unit after the type ('{kind}, <unit>')")
    if not null_rule:
        fail("no null rule after the type and unit")
    if (kind == "object") != is_object:
        fail("an object: line has type object, a column one of " + ", ".join(TYPES[:-1]))
    window = window or window_default
    if window is None:
        window = "windowed" if windowed else "all time"
    if window in _PER_WINDOW and not windowed and not is_object:
        fail(f"window '{window}' in a family that does not use :window_us")
    rule = WINDOW_KEYWORDS.get(window, window)
    if is_object:
        materialize = None
    else:
        materialize = WINDOWED if windowed and window in _PER_WINDOW else FIXED
    return Feature(name, kind, unit.strip(), rule, null_rule, meaning, query, materialize, added_by)


def _header(lines, start, source):
    """{key: value} of the header lines after line index ``start``, objects as [(line, text)],
    and the index of the first line after the header."""
    header, objects = {}, []
    i = start + 1
    while i < len(lines):
        match = _HEADER_LINE.match(lines[i].strip())
        if not match or match.group(1) not in _LIST_KEYS + _TEXT_KEYS + ("object", "derived"):
            break
        key, value = match.group(1), match.group(2).strip()
        if key == "object":
            objects.append((i + 1, value))
        elif key == "derived":
            header.setdefault("derived", []).append((i + 1, value))
        elif key in header:
            raise FamilyDefinitionError(source, i + 1, f"header line '{key}' given twice")
        else:
            header[key] = (i + 1, value)
        i += 1
    return header, objects, i


def read(text, source):
    """The Blocks of one file's text (``source`` names it in errors)."""
    lines = text.splitlines()
    starts = [(i, NAME_HEADER.match(line)) for i, line in enumerate(lines)]
    starts = [(i, m) for i, m in starts if m]
    blocks = []
    for n, (start, match) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        is_family = lines[start].split(":")[0].strip("- \t") == "family"
        name = match.group(1)
        header, objects, body = _header(lines, start, source)
        if not is_family:
            if objects or header:
                unknown = [k for k in header if k not in _PLAIN_KEYS]
                if unknown:
                    at = header[unknown[0]][0]
                    raise FamilyDefinitionError(source, at[0] if isinstance(at, tuple) else at,
                                                f"'{unknown[0]}' is a family header line; this is a -- name: query")
                blocks.append(_block(name, source, start + 1, header, objects, False, lines[body:end], body + 1))
            continue
        blocks.append(_block(name, source, start + 1, header, objects, True, lines[body:end], body + 1))
    return blocks


def _block(name, source, line, header, objects, is_family, body, first_line):
    def value(key, default=None):
        return header[key][1] if key in header else default

    def yes_or_no(key, default):
        answer = value(key, default)
        if answer not in ("yes", "no"):
            fail(key, f"{key} must be yes or no, got {answer!r}")
        return answer == "yes"

    def fail(key, reason):
        raise FamilyDefinitionError(source, header[key][0] if key in header else line, reason)

    plain_only = [k for k in _PLAIN_ONLY_KEYS if k in header]
    if is_family and plain_only:
        fail(plain_only[0], f"'{plain_only[0]}' is a header line of a -- name: query, not of a family")
    if "order" not in header and (is_family or objects):
        fail("order", f"{name}: no '-- order: N' line in its header")
    try:
        order = int(value("order", 0))
    except ValueError:
        fail("order", f"order must be a whole number, got {value('order')!r}")
    added_by = value("added by", DEFAULT_ADDED_BY) or DEFAULT_ADDED_BY
    window_default = value("window") or None
    sql = "\n".join(l for l in body if not l.lstrip().startswith("--"))
    windowed = bool(is_family and _WINDOW_PARAMETER.search(sql))
    common = dict(window_default=window_default, windowed=windowed, query=name, added_by=added_by)
    columns, helpers = [], _items(value("helpers", ""))
    if is_family:
        for offset, text in enumerate(body):
            match = _COLUMN_LINE.match(text)
            if match:
                columns.append(_comment(match.group(1), match.group(2), source, first_line + offset,
                                        is_object=False, **common))
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise FamilyDefinitionError(source, line, f"family {name}: a column is commented twice")
        if not columns:
            raise FamilyDefinitionError(source, line, f"family {name}: no column comment")
        missing = [h for h in helpers if h not in names]
        if missing:
            fail("helpers", f"helper column {missing[0]} has no comment")
        columns = [c for c in columns if c.name not in helpers]
        table_only = _items(value("table only", ""))
        unknown = [n for n in table_only if n not in {c.name for c in columns}]
        if unknown:
            fail("table only", f"table-only column {unknown[0]} is not a feature column of the family")
        if "column order" in header:
            order_names = _items(value("column order"))
            if sorted(order_names) != sorted(c.name for c in columns):
                fail("column order", "the column order must name each feature column of the family once")
            columns.sort(key=lambda c: order_names.index(c.name))
    feats = columns + [_comment(text.split(":", 1)[0].strip(), text.split(":", 1)[1].strip() if ":" in text else "",
                                source, at, is_object=True, **common) for at, text in objects]
    family = None
    if not is_family:
        table_only = ()
    if is_family:
        edges = value("edges days", "")
        if edges.strip() == "any":
            edges_days = None
        else:
            try:
                edges_days = tuple(int(e) for e in _items(edges))
            except ValueError:
                fail("edges days", f"edges days must be whole days or 'any', got {edges!r}")
        optional = yes_or_no("optional", "no")
        if "tables" not in header:
            fail("tables", f"family {name}: no '-- tables:' line in its header")
        derived, derived_lines = [], []
        fixed = {c.name for c in columns if c.materialize == FIXED}
        for at, text in header.get("derived", ()):
            match = _DERIVED.match(text)
            if not match:
                raise FamilyDefinitionError(source, at, f"{name}: a derived line is 'COLUMN = SQL expression', "
                                            f"got {text!r}")
            column, expr = match.groups()
            if column not in fixed:
                raise FamilyDefinitionError(source, at, f"{name}: derived column {column} is not an all-time "
                                            "feature column of the family")
            if column in (d[0] for d in derived):
                raise FamilyDefinitionError(source, at, f"{name}: derived column {column} is declared twice")
            derived.append((column, expr.strip()))
            derived_lines.append(at)
        family = Family(name, _items(value("tables")), edges_days, _items(value("requires", "")),
                        optional, added_by, value("refresh all") or None, _items(value("keyed", "")),
                        _items(value("edge tables")) if "edge tables" in header else None,
                        value("edge query") or None, _items(value("edge requires", "")), tuple(derived),
                        yes_or_no("reads windows", "yes"))
    return Block(name, source, line, order, family, tuple(feats), helpers, _items(value("requires", "")),
                 table_only, _items(value("sets", "")), _items(value("reads", "")),
                 tuple(derived_lines) if is_family else ())


@functools.lru_cache(maxsize=None)
def blocks():
    """Every Block of ``sql/*.sql``, in catalog order (by ``order``, then file and line)."""
    found = []
    for path in sorted(resource_dir("sql").glob("*.sql")):
        found += read(path.read_text(encoding="utf-8"), path.name)
    return check(found)


def check(found):
    """The blocks in catalog order (by ``order``, then file and line); a feature name given by two
    of them raises FamilyDefinitionError naming the second one's file and line."""
    found = sorted(found, key=lambda b: (b.order, b.source, b.line))
    seen = {}
    for b in found:
        for f in b.features:
            if f.name in seen:
                raise FamilyDefinitionError(b.source, b.line, f"{b.name}: column {f.name} is already a feature "
                                            f"of {seen[f.name]}")
            seen[f.name] = f"{b.name} ({b.source})"
    return tuple(found)


def features():
    """Every Feature record, in catalog order."""
    return [f for b in blocks() for f in b.features]


def families():
    """Every Family, in catalog order (its refresh_all is the hook's name)."""
    return [b.family for b in blocks() if b.family is not None]


def requires(name):
    """The ``-- requires:`` line of the query ``name`` (a family or a plain query), in order."""
    for b in blocks():
        if b.name == name:
            return b.requires
    return ()


def sets(name):
    """The ``-- sets:`` line of the plain query ``name`` (the feature columns its UPDATE writes)."""
    for b in blocks():
        if b.name == name:
            return b.sets
    return ()


def reads(name):
    """The ``-- reads:`` line of the plain query ``name`` (the feature columns its UPDATE reads)."""
    for b in blocks():
        if b.name == name:
            return b.reads
    return ()


def columns(name):
    """The feature columns (Feature records, not objects) of the family ``name``, in catalog order."""
    for b in blocks():
        if b.name == name and b.family is not None:
            return tuple(f for f in b.features if f.materialize is not None)
    return ()


def stored_columns(name):
    """The feature columns of the family ``name`` that a materialisation stores (``columns``
    but those of its ``-- derived:`` lines), in catalog order."""
    derived = {column for column, _ in builtin().derived(name)}
    return tuple(f for f in columns(name) if f.name not in derived)


def family_source(name):
    """(file name, line) of the family's header."""
    for b in blocks():
        if b.name == name and b.family is not None:
            return b.source, b.line
    return None


# -- a store's registry: the built-in families plus the user's family files ----------------------
# The header lines a user's family file may use (the others name store internals: refresh hooks,
# edge queries, keyed helper queries).
USER_HEADER_KEYS = ("order", "tables", "added by", "window", "edges days", "optional", "column order", "helpers",
                    "table only", "derived")


@dataclass(frozen=True, eq=False)
class Registry:
    """The feature families of one store: the built-in blocks of ``sql/`` plus the blocks of the
    user's family files (``files``), with the SQL text of each user query (``user_queries``).

    A value, built once per store (``builtin()`` for a store without user files: cached, the
    module-level records of store.catalog are read from it) and passed down to the catalog,
    materialize and the getters; never a process-global mutable list. Hashable by identity.
    """

    blocks: tuple
    user_queries: tuple = ()   # ((name, sql text), ...) of the user files' families
    files: tuple = ()          # the user's family files (str), in registration order

    @functools.cached_property
    def _user_text(self):
        return dict(self.user_queries)

    def query(self, name):
        """The SQL text of the named query: a user family's, else sql/'s."""
        text = self._user_text.get(name)
        return text if text is not None else builtin_query(name)

    def known(self, name):
        return name in self._user_text or name in builtin_queries()

    def features(self):
        return [f for b in self.blocks for f in b.features]

    def families(self):
        return [b.family for b in self.blocks if b.family is not None]

    def user_blocks(self):
        return tuple(b for b in self.blocks if b.name in self._user_text)

    def is_user(self, name):
        return name in self._user_text

    def family_hash(self, name):
        """sha256 of the family's SQL text and of the named queries it reads (hex): what
        materializations records per family, so that refresh sees a changed definition."""
        digest = hashlib.sha256()
        for part in (name,) + tuple(self.requires(name)):
            digest.update(part.encode() + b"\0" + self.query(part).encode() + b"\0")
        return digest.hexdigest()

    def requires(self, name):
        for b in self.blocks:
            if b.name == name:
                return b.requires
        return ()

    def derived(self, name):
        """((column, SQL expression), ...) of the ``-- derived:`` lines of the family ``name``
        (empty for a query that is not a family or declares none)."""
        for b in self.blocks:
            if b.name == name and b.family is not None:
                return b.family.derived
        return ()


@functools.lru_cache(maxsize=None)
def builtin():
    """The registry of the built-in families only (cached: the default path costs nothing)."""
    return Registry(blocks())


def family_files(paths):
    """The family files of ``paths`` (files, or directories: every ``*.sql`` in it, sorted), as
    absolute Paths in order, each once. A missing path raises FamilyDefinitionError."""
    out = []
    for raw in paths:
        path = Path(os.fspath(raw)).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.glob("*.sql") if p.is_file())
        elif path.is_file():
            found = [path]
        else:
            raise FamilyDefinitionError(str(raw), 0, "no such family file or directory")
        for p in found:
            p = p.resolve()
            if p not in out:
                out.append(p)
    return out


def read_user_file(path, taken):
    """(blocks, {name: sql}) of one user family file, its records marked with the file
    (``added by``); ``taken``: {feature or query name: where} of the families registered before
    it. Raises FamilyDefinitionError (file, line, reason) for anything it refuses: a plain
    ``-- name:`` query, a header line for store internals, a name already taken. (The statement
    itself is checked by store.user_families against SQLite.)"""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FamilyDefinitionError(source, 0, f"cannot read the file: {exc}") from None
    found = read(text, source)
    lines = text.splitlines()
    families = {b.name for b in found if b.family is not None}
    for i, line in enumerate(lines):
        match = NAME_HEADER.match(line)
        if match and match.group(1) not in families:
            raise FamilyDefinitionError(source, i + 1, f"{match.group(1)}: a user file holds '-- family:' "
                                        "queries only")
    if not found:
        raise FamilyDefinitionError(source, 1, "no '-- family: NAME' query in the file")
    try:
        texts = parse_queries(text, source)
    except Exception as exc:  # a name given twice in the file
        raise FamilyDefinitionError(source, 1, str(exc)) from None
    out = []
    for b in found:
        if b.family is None:
            raise FamilyDefinitionError(source, b.line, f"{b.name}: a user file holds '-- family:' queries only")
        header, _, _ = _header(lines, b.line - 1, source)
        extra = [k for k in header if k not in USER_HEADER_KEYS]
        if extra:
            raise FamilyDefinitionError(source, header[extra[0]][0],
                                        f"{b.name}: header line '{extra[0]}' is not available to a user family "
                                        f"(available: {', '.join(USER_HEADER_KEYS)})")
        if b.name in taken:
            raise FamilyDefinitionError(source, b.line, f"family name {b.name} is already taken by {taken[b.name]}")
        for f in b.features:
            if f.name in taken:
                raise FamilyDefinitionError(source, b.line, f"{b.name}: column {f.name} is already taken by "
                                            f"{taken[f.name]}")
        if "added by" not in header:
            who = f"user family file {source}"
            b = replace(b, family=replace(b.family, added_by=who),
                        features=tuple(replace(f, added_by=who) for f in b.features))
        for f in b.features:
            taken[f.name] = f"{b.name} ({source})"
        taken[b.name] = source
        out.append(b)
    return out, {b.name: texts[b.name] for b in out}


def taken_names(reg):
    """{name: where} of every query and feature name of ``reg`` (what a user file may not reuse)."""
    taken = {name: "a query of sql/" for name in builtin_queries()}
    for b in reg.blocks:
        taken[b.name] = b.source
        for f in b.features:
            taken[f.name] = f"{b.name} ({b.source})"
    return taken


def with_files(paths, base=None):
    """A Registry: ``base`` (default: the built-ins) plus the families of the files of ``paths``
    (parsed and checked for names, not against SQLite: store.user_families.load does that)."""
    base = base or builtin()
    taken = taken_names(base)
    blocks_, texts, files = list(base.blocks), dict(base.user_queries), list(base.files)
    for path in family_files(paths):
        if str(path) in files:
            continue
        found, found_texts = read_user_file(path, taken)
        blocks_ += found
        texts.update(found_texts)
        files.append(str(path))
    if not files:
        return base
    return Registry(check(blocks_), tuple(texts.items()), tuple(files))


# -- the generated docs page (docs/features.md) --------------------------------------------------
DOCS_PAGE = "docs/features.md"


def _cell(text):
    return str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def markdown():
    """docs/features.md: every family and column of the registry (``python -m store.registry``
    writes it; tests/test_registry.py fails when the page is out of date)."""
    out = ["# Feature families and columns",
           "",
           "<!-- Generated from the family files of sql/ by `python -m store.registry`; do not edit. -->",
           "",
           "Every feature family of `sql/` and every column it gives, read from the family headers and "
           "column comments (format: docs/feature_store.md, \"The family file format\"). A windowed "
           "column is materialised once per window as `<column>_<N>d` plus the all-time `<column>`; "
           "an object is returned by the getters only.",
           ""]
    for b in blocks():
        fam = b.family
        if fam is None and not b.features:
            continue
        out.append(f"## `{b.name}` (`sql/{b.source}`)")
        out.append("")
        if fam is not None:
            facts = [("tables", ", ".join(fam.tables) or "none"),
                     ("reads", ", ".join(fam.requires) or "none"),
                     ("window edges (days)", "any change of as_of" if fam.edges_days is None
                      else ", ".join(map(str, fam.edges_days)) or "none")]
            if fam.edge_tables is not None:
                facts.append(("edge tables", ", ".join(fam.edge_tables) or "none"))
            if not fam.reads_windows:
                facts.append(("reads the windows of the families it requires", "no"))
            if fam.edge_query:
                facts.append(("edge query", f"{fam.edge_query} (on {', '.join(fam.edge_tables or fam.tables)})"))
            if fam.refresh_all:
                facts.append(("refresh hook", fam.refresh_all))
            if b.helpers:
                facts.append(("helper columns (not features)", ", ".join(b.helpers)))
            if b.table_only:
                facts.append(("table only (not keys of the getters)", ", ".join(b.table_only)))
            for column, expr in fam.derived:
                facts.append(("derived when read (not stored)", f"`{column} = {expr}`"))
            facts.append(("added by", fam.added_by))
            out += [f"* {key}: {_cell(value)}" for key, value in facts]
        else:
            out.append("A query that is not a family; it computes the objects below.")
        out += ["", "| column | type | unit | materialized | null rule | window rule | meaning |",
                "|---|---|---|---|---|---|---|"]
        for f in b.features:
            out.append("| " + " | ".join(_cell(v) for v in (
                f"`{f.name}`", f.type, f.unit, f.materialize or "object (not materialized)", f.null_rule,
                f.window_rule, f.meaning)) + " |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    sys.stdout.write(markdown())
