"""The house rules of docs/architecture.md that code can check: one way to write a transaction
(store.db), no module reaching into another module's private names, lower layers never
importing upper ones, and the CLI calling the store's methods instead of probing for them."""

import ast
import functools
import sqlite3
from pathlib import Path

import pytest

from store import db
from store.errors import StorageFullError

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted((ROOT / "store").glob("*.py")) + [ROOT / "customer_activity_features.py",
                                                   ROOT / "migrations" / "migrations.py"]


@functools.lru_cache(maxsize=None)
def _tree(path):
    """The module's syntax tree, parsed once for every test of the file (the tests only read it)."""
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _name(path):
    return path.relative_to(ROOT).as_posix()


# -- transactions ------------------------------------------------------------------------
def _conn():
    conn = sqlite3.connect(":memory:")
    conn.isolation_level = None
    conn.execute("CREATE TABLE t (x INTEGER)")
    return conn


def test_atomic_commits_the_block():
    conn = _conn()
    with db.atomic(conn):
        assert conn.in_transaction
        conn.execute("INSERT INTO t VALUES (1)")
    assert not conn.in_transaction
    assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]


@pytest.mark.parametrize("error", [ValueError("boom"), KeyboardInterrupt()])
def test_atomic_rolls_back_and_reraises(error):
    conn = _conn()
    with pytest.raises(type(error)):
        with db.atomic(conn):
            conn.execute("INSERT INTO t VALUES (1)")
            raise error
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0


def test_atomic_never_reports_a_transaction_sqlite_ended_as_committed():
    conn = _conn()
    with pytest.raises(sqlite3.OperationalError):
        with db.atomic(conn):
            conn.execute("INSERT INTO t VALUES (1)")
            conn.execute("ROLLBACK")  # as SQLite does itself on some errors (a full disk)
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0


def test_store_errors_translates_after_the_rollback():
    conn = _conn()
    result = object()
    with pytest.raises(StorageFullError) as caught:
        with db.store_errors(conn, result), db.atomic(conn):
            conn.execute("INSERT INTO t VALUES (1)")
            raise sqlite3.OperationalError("database or disk is full")
    assert caught.value.result is result
    assert not conn.in_transaction
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        with db.store_errors(conn):
            conn.execute("SELECT * FROM nowhere")


TRANSACTION_STATEMENTS = {"BEGIN", "BEGIN DEFERRED", "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE", "COMMIT",
                          "ROLLBACK"}
# store.localtime sits below store.db (it may not import it) and fills temp tables in a
# transaction of its own; savepoints (nested in a transaction) are not transactions.
TRANSACTION_EXCEPTIONS = {"store/db.py", "store/localtime.py"}


def _statements(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            words = [w for w in node.value.upper().replace(";", " ").split() if w != "TRANSACTION"]
            if " ".join(words) in TRANSACTION_STATEMENTS:
                yield node.lineno, node.value


def test_transactions_are_written_only_in_store_db():
    """Every BEGIN / COMMIT / ROLLBACK statement is issued by store.db (atomic, begin, commit,
    rollback, begin_read): no module writes its own."""
    found = [f"{_name(p)}:{line}: {text!r}" for p in MODULES if _name(p) not in TRANSACTION_EXCEPTIONS
             for line, text in _statements(_tree(p))]
    assert found == []


# -- private names -----------------------------------------------------------------------------
PUBLIC_UNDERSCORED = {"_asdict", "_replace", "_fields", "_make", "_exit"}  # namedtuple's API, os._exit


def _private(name):
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC_UNDERSCORED


def _own_names(tree):
    """The private names a module defines: functions, classes, assignments, attributes of self/cls."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return names


def _reaches(path):
    tree = _tree(path)
    own = _own_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            project = node.level > 0 or (node.module or "").split(".")[0] in ("store", "customer_activity_features")
            for alias in node.names:
                if project and _private(alias.name):
                    yield f"{_name(path)}:{node.lineno}: from {node.module or '.'} import {alias.name}"
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                yield f"{_name(path)}:{node.lineno}: {ast.unparse(node)}"


def test_no_module_reaches_into_another_modules_private_names():
    """A ``_name`` is used only in the module that defines it (e.g. not ``store._writer`` in
    store.loaders, ``validate._shown`` in store.ingest, sqlite-utils' ``Migrations._migrations``)."""
    assert [reach for path in MODULES for reach in _reaches(path)] == []


# -- who may import whom -----------------------------------------------------------------------
# docs/architecture.md, bottom to top. A store module not listed is a feature-layer module.
LAYERS = {
    "errors": 0, "resources": 0, "registry": 0, "timeutil": 0, "localtime": 0,
    "db": 1, "locks": 1, "scratch": 1,
    "validate": 2, "ingest": 2,
    "formats": 3, "loaders": 3,
    # feature queries and the feature store: 4 (the default)
    "customer_activity_features": 5,
    "cli": 6, "stats": 6, "__main__": 6, "synthetic": 6, "__init__": 6,
}
FEATURE_LAYER = 4


def _layer(module):
    return LAYERS.get(module, FEATURE_LAYER)


def _imported(path):
    """(line, module) of every project module ``path`` imports (at the top or inside a function)."""
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level > 0 or base.split(".")[0] == "store":
                parts = base.split(".")
                if node.level == 0:
                    parts = parts[1:]
                if parts and parts[0]:
                    yield node.lineno, parts[0]
                else:  # from . import a, b
                    for alias in node.names:
                        yield node.lineno, alias.name
            elif base == "customer_activity_features":
                yield node.lineno, base
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top, _, rest = alias.name.partition(".")
                if top == "customer_activity_features":
                    yield node.lineno, top
                elif top == "store" and rest:
                    yield node.lineno, rest.split(".")[0]


def test_lower_layers_do_not_import_upper_ones():
    wrong = []
    for path in MODULES[:-1]:  # migrations.py imports nothing of the store
        module = path.stem
        for line, other in _imported(path):
            if other != "__version__" and _layer(other) > _layer(module):
                wrong.append(f"{_name(path)}:{line}: {module} (layer {_layer(module)}) imports {other} "
                             f"(layer {_layer(other)})")
    assert wrong == []



def test_no_import_circle():
    """No module of the store imports, directly or through others, a module that imports it
    (behavior, catalog, features and materialize once did: issue 12)."""
    graph = {path.stem: {other for _, other in _imported(path)} for path in MODULES[:-1]}

    def reaches(start, goal):
        seen, todo = set(), [start]
        while todo:
            for other in graph.get(todo.pop(), ()):
                if other == goal:
                    return True
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        return False

    circles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a != b and reaches(b, a)})
    assert circles == []

# -- the CLI over the public API -------------------------------------------------------------
def test_the_cli_calls_the_store_instead_of_probing_it():
    """No getattr/hasattr probe of the store object for methods that might not exist (the
    former 'not available yet' shims)."""
    found = []
    for name in ("cli.py", "stats.py"):
        path = ROOT / "store" / name
        for node in ast.walk(_tree(path)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr") and node.args
                    and isinstance(node.args[0], ast.Name) and node.args[0].id == "store"):
                found.append(f"{_name(path)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []


def test_the_documented_import_tree_is_the_real_one():
    """docs/architecture.md "Who imports whom" lists, for every module of the store, the modules of
    the store it imports; it must say what the code does."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("## Who imports whom", 1)[1].split("```", 2)[1]
    documented, current = {}, None
    for line in block.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            head, _, rest = line.partition("<-")
            names = [n.strip() for n in head.split("(")[0].split(",") if n.strip()]
            current = names
            for name in names:
                documented[name] = set()
        else:
            rest = line.strip().removeprefix("<-")
        for name in current:
            documented[name] |= {m.strip() for m in rest.split("(")[0].split(",") if m.strip()}
    actual = {path.stem: {other for _, other in _imported(path) if other != "__version__"}
              for path in MODULES[:-1] if path.stem not in ("__init__", "__main__")}
    assert documented == actual
