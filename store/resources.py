"""Locating the ``sql/`` and ``migrations/`` folders, and reading named queries.

In a source checkout they sit at the top of the repository; in an installed
wheel they are shipped inside the package as ``store/sql`` and
``store/migrations`` (see pyproject.toml).
"""

import functools
import re
from pathlib import Path

from .errors import StoreError, UnknownNameError

_PACKAGE_DIR = Path(__file__).resolve().parent
# A query's header line: ``-- name: NAME``, or ``-- family: NAME`` for a feature family
# (store/registry.py reads the lines that follow it).
NAME_HEADER = re.compile(r"^--\s*(?:name|family):\s*([A-Za-z_][A-Za-z0-9_]*)\s*$", re.MULTILINE)


def resource_dir(name):
    """The folder ``name`` ('sql' or 'migrations'), installed or in the source tree."""
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise StoreError(f"cannot find the {name}/ folder next to {_PACKAGE_DIR}")


def parse_queries(text, source="<string>"):
    """Split SQL text into {name: sql} on ``-- name: NAME`` (or ``-- family: NAME``) header lines.

    The text of a query runs from its header to the next header; comments are
    kept (SQLite ignores them) and a trailing semicolon is dropped.
    """
    queries = {}
    matches = list(NAME_HEADER.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[match.end():end].strip().rstrip(";").strip()
        name = match.group(1)
        if name in queries:
            raise StoreError(f"query {name!r} is defined twice in {source}")
        queries[name] = body
    return queries


@functools.lru_cache(maxsize=None)
def queries():
    """Every named query in ``sql/*.sql``, as {name: sql text}."""
    found = {}
    for path in sorted(resource_dir("sql").glob("*.sql")):
        for name, sql in parse_queries(path.read_text(encoding="utf-8"), path.name).items():
            if name in found:
                raise StoreError(f"query {name!r} is defined in two files")
            found[name] = sql
    return found


def query(name):
    """The SQL text of the named query."""
    try:
        return queries()[name]
    except KeyError:
        raise UnknownNameError(f"no SQL query named {name!r} in sql/") from None
