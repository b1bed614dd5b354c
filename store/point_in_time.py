"""Point-in-time rows: every column of ``customer_features`` for (customer, cutoff) pairs.

``rows`` is ``features_at`` (docs/feature_store.md "Point-in-time rows"). It derives
everything from the materialisation's ``Plan`` (store/plan.py): the same families,
the same windows, the same family statements and the same declared column types, so a
row equals the one ``materialize(as_of=cutoff)`` writes for that customer, column for
column, and a family or column added to the plan appears here without an edit.

The difference with ``materialize`` is the target table: one target per pair, each with
its own ``as_of_us``, and the family statements run as written (``t.as_of_us`` read per
target; ``Plan.stage(one_as_of=False)``).

Families whose values depend on other customers (``Plan.population_families``: the RFM
scores and segments of ``behavior_segments``, ranked in the whole shop) build the shop's
population once per distinct as_of of their targets (``behavior_rfm_population`` groups by
it): their cost is one pass over the shop's purchases up to each distinct cutoff, and the
population rows of a statement are (distinct cutoffs) x (purchasing customers). So that
this stays bounded, a chunk whose targets have more distinct cutoffs than
``POPULATION_ROWS`` / (purchasing customers) is computed in stages, each over the targets
of at most that many distinct cutoffs (targets grouped by cutoff).

Pairs are read lazily, ``store.features.STREAM_CHUNK`` at a time. Each chunk: fill
``temp.target`` (per stage), stage the families, copy the rows (declared types, as in
customer_features) into a temp table of this call, drop the staged tables and the
targets, then read that table back in target order, ``READ_BATCH`` rows per statement.
No statement of the call is active while a row is with the caller, and no table a
materialisation, refresh, export or another ``features_at`` uses is held: the caller
may run them while iterating.
"""

import contextlib
import itertools
import json
import sqlite3

from . import features, timeutil
from .db import automatic_indexes, begin_read, commit, quote_identifier, rollback
from .plan import Plan, drop_targets, fill_targets
from .resources import query

EXCLUSIVE_OFFSET_US = 1  # exclusive=True: the features of cutoff - 1 microsecond
KEY_NAMES = ("shop_id", "customer_id", "as_of", "as_of_us")
READ_BATCH = 1_000  # rows read back per statement: the memory bound of the rows in Python
POPULATION_ROWS = 1_000_000  # bound of (distinct cutoffs x purchasing customers) per stage

_rows_counter = itertools.count(1)


def column_names(plan):
    """The keys of a row: the columns of customer_features for ``plan``, in table order."""
    return list(KEY_NAMES) + plan.feature_names


def rows(conn, shop_id, pairs, *, windows, families, exclusive=False, lock=None, chunk_size=None, reg=None):
    """Yield one dict per ``(customer_id, cutoff_us)`` of ``pairs``, in order: the row of
    customer_features that ``materialize(as_of=cutoff_us, windows, families)`` writes for the
    customer (``customer_id`` normalized; a customer the shop does not know gets the row of a
    customer without events). With ``exclusive`` every feature column is that of
    ``materialize(as_of=cutoff_us - 1)`` (events at the cutoff do not count); ``as_of`` and
    ``as_of_us`` are the pair's cutoff either way. A falsy ``customer_id`` gives a row with
    ``customer_id`` and every feature None.

    ``lock`` (a context manager, e.g. the writer's lock) is held while a chunk is computed,
    not while its rows are yielded. ``chunk_size`` defaults to ``store.features.STREAM_CHUNK``.
    ``reg``: the store's registry (built-in families and the user's; default: the built-ins).
    """
    run = _Run(conn, shop_id, Plan(conn, windows, families, reg))
    names = column_names(run.plan)
    empty = (None,) * len(run.plan.feature_names)
    offset = EXCLUSIVE_OFFSET_US if exclusive else 0
    try:
        for chunk in _chunks(pairs, chunk_size or features.STREAM_CHUNK):
            targets = [(i, cid, cutoff_us - offset) for i, (cid, cutoff_us) in enumerate(chunk) if cid]
            if targets:
                with lock if lock is not None else contextlib.nullcontext():
                    run.compute(targets)
            batch, at, last = [], 0, -1
            for cid, cutoff_us in chunk:
                keys = (shop_id, cid, timeutil.iso(cutoff_us), cutoff_us)
                if not cid:
                    yield dict(zip(names, (shop_id, None) + keys[2:] + empty))
                    continue
                if at == len(batch):
                    # a bounded read, finished before any row is yielded: between two rows no
                    # statement of this call is active, so the caller may use the store meanwhile
                    batch, at = run.read(last), 0
                values = batch[at]
                at += 1
                last = values[0]
                yield dict(zip(names, keys + values[1:]))
    finally:
        run.close()


def _chunks(pairs, size):
    iterator = iter(pairs)
    while True:
        chunk = list(itertools.islice(iterator, size))
        if not chunk:
            return
        yield chunk


class _Run:
    """The temp table of one features_at call (its rows, keyed by target_id) and how a chunk
    of targets is computed into it."""

    def __init__(self, conn, shop_id, plan):
        self.conn, self.shop_id, self.plan = conn, shop_id, plan
        self.params = plan.params(shop_id, None)
        self.table = f"features_at_rows_{next(_rows_counter)}"  # made here, never a caller's text
        self.created = False
        self.cutoffs_per_stage = None  # the stage bound, counted when first needed
        allowed = set(plan.feature_names)
        cols = ", ".join(["target_id"] + [quote_identifier(n, allowed) for n in plan.feature_names])
        self.insert = f"INSERT INTO temp.{self.table} ({cols})\n" + plan.staged_features_sql()
        self.select = f"SELECT * FROM temp.{self.table} WHERE target_id > ? ORDER BY target_id LIMIT {READ_BATCH:d}"

    def read(self, after):
        return self.conn.execute(self.select, [after]).fetchall()

    def compute(self, targets):
        """The rows of one chunk's targets [(target_id, customer_id, as_of_us)] into the table
        (emptied first), from one read snapshot; the staged tables and targets dropped after."""
        conn = self.conn
        began = not conn.in_transaction
        if began:
            begin_read(conn)  # one snapshot for the chunk's statements; only temp tables are written
        try:
            if not self.created:
                conn.execute(f"CREATE TEMP TABLE {self.table} (target_id INTEGER PRIMARY KEY, "
                             + ", ".join(self.plan.feature_column_defs()) + ")")
                self.created = True
            conn.execute(f"DELETE FROM temp.{self.table}")
            for stage in self._stages(targets):
                fill_targets(conn, query("fill_targets_from_json"), {"targets": json.dumps(stage)})
                staged = []
                try:
                    with automatic_indexes(conn):
                        staged = self.plan.stage(conn, self.params, one_as_of=False)
                        conn.execute(self.insert, self.params)
                finally:
                    self.plan.unstage(conn, staged)
                    drop_targets(conn)
            if began:
                commit(conn)
        except BaseException:
            if began:
                rollback(conn)
            raise

    def _stages(self, targets):
        """The targets in stages: all of them, or, with a population-relative family and more
        distinct cutoffs than ``cutoffs_per_stage``, groups of that many cutoffs (each stage in
        target order)."""
        if not self.plan.population_families:
            return [targets]
        cutoffs = sorted({t[2] for t in targets})
        if len(cutoffs) <= 1:
            return [targets]
        if self.cutoffs_per_stage is None:
            population = self.conn.execute(query("partition_customer_count"), {"shop_id": self.shop_id}).fetchone()[0]
            self.cutoffs_per_stage = max(1, POPULATION_ROWS // max(1, population))
        if len(cutoffs) <= self.cutoffs_per_stage:
            return [targets]
        stage_of = {c: i // self.cutoffs_per_stage for i, c in enumerate(cutoffs)}
        stages = [[] for _ in range(stage_of[cutoffs[-1]] + 1)]
        for t in targets:
            stages[stage_of[t[2]]].append(t)
        return stages

    def close(self):
        if not self.created:
            return
        try:
            self.conn.execute(f"DROP TABLE IF EXISTS temp.{self.table}")
        except sqlite3.OperationalError:  # a statement of the caller is active: empty it instead
            self.conn.execute(f"DELETE FROM temp.{self.table}")
