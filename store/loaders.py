"""Loading historical dumps (CSV, TSV, JSON array, NDJSON; gzip; stdin) into the store.

Public API (stable; the ``caf load`` / ``caf stats`` commands are built on it)::

    from store.loaders import load, list_loads, KINDS, PRESETS, FORMATS, LoadReport

    report = load(store, "online-retail", "online_retail.csv.gz")
    report.read == report.accepted + report.rejected + report.duplicates   # always

See docs/loading.md for every mapping decision. In short:

* ``kind`` is a generic kind (``purchases``, ``sessions``, ``carts``,
  ``support``, ``customers``, ``refunds``), whose file columns are mapped to
  the store's fields with ``mapping``, or a preset for a real public format
  (``online-retail``, ``rees46``, ``incidents``).
* A *row* is one input record: a CSV/TSV data line (the header excluded), one
  element of a JSON array, one non-blank NDJSON line. For the presets a row is
  an invoice line (online-retail), a clickstream event (rees46) and a state
  change of an incident (incidents). Every row read is accepted, rejected
  (recorded in ``rejected_events`` with its reason, its load and its row
  number) or counted as a duplicate.
* Naive timestamps are read in ``timezone`` (an IANA name; default **UTC**
  for files, unlike the ``add_*`` methods whose naive datetimes are local
  time), parsed with ``date_format`` (a ``strptime`` format) when given, else
  as ISO-8601.
* Loads are idempotent (a completed load of the same bytes, kind and options
  is recognised by its sha256 and reported as ``already_loaded``; nothing is
  written) and resumable (a killed load, run again, continues its ``loads``
  row and ends with exactly the rows of an uninterrupted load).
"""

from dataclasses import dataclass, field

KINDS = ("purchases", "sessions", "carts", "support", "customers", "refunds")
PRESETS = ("online-retail", "rees46", "incidents")
FORMATS = ("csv", "tsv", "json", "ndjson")


@dataclass
class LoadReport:
    """What a load did. ``read == accepted + rejected + duplicates`` once it has finished.

    Counts are of input rows (see the module docstring for what a row is).

    * ``status``: ``'completed'``, ``'already_loaded'`` (the same bytes were
      loaded before with the same kind and options: nothing was written, the
      counts are 0 and ``previous`` holds the earlier ``loads`` row) or
      ``'running'`` (only in reports passed to ``progress`` callbacks);
    * ``pending``: rows staged but not yet aggregated (presets; 0 at the end);
    * ``tables``: {table name: rows inserted into it by this load};
    * ``bytes_read`` / ``total_bytes``: progress through the (possibly
      compressed) source file, for progress bars.
    """

    kind: str
    source: str
    load_id: int = None
    sha256: str = None
    size: int = 0
    format: str = None
    status: str = "running"
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    pending: int = 0
    rejected_by_reason: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)
    seconds: float = 0.0
    bytes_read: int = 0
    total_bytes: int = 0
    resumed: bool = False
    previous: dict = None

    def as_dict(self):
        """A JSON-ready dict of the report."""
        return {
            "kind": self.kind, "source": self.source, "load_id": self.load_id, "sha256": self.sha256,
            "size": self.size, "format": self.format, "status": self.status, "read": self.read,
            "accepted": self.accepted, "rejected": self.rejected, "duplicates": self.duplicates,
            "pending": self.pending, "rejected_by_reason": dict(self.rejected_by_reason),
            "tables": dict(self.tables), "seconds": self.seconds, "resumed": self.resumed,
        }


def load(store, kind, source, *, fmt=None, mapping=None, date_format=None, timezone=None, progress=None):
    """Load one file (or stdin) into ``store`` (a ``CustomerActivityFeatures``).

    ``kind``: one of ``KINDS`` or ``PRESETS``. ``source``: a path (str or
    Path; gzip is detected and read transparently), ``'-'`` for standard
    input, or a binary/text file object. ``fmt``: one of ``FORMATS``; when
    None it is taken from the name (``.csv``, ``.tsv``, ``.json``,
    ``.ndjson``/``.jsonl``, each optionally followed by ``.gz``), else sniffed
    from the first bytes. ``mapping``: {store field: file column} for the
    generic kinds (fields not mapped are looked up under their own name).
    ``date_format``: a ``strptime`` format for timestamps; ``timezone``: IANA
    name for naive timestamps (default UTC). ``progress``: a callable
    receiving the running ``LoadReport`` after every batch.

    Returns a ``LoadReport``. Raises ``store.errors.LoadError`` (a
    ``StoreError``) for problems with the file as a whole (missing, unknown
    kind or format, missing columns, bad option); bad rows never raise.
    """
    raise NotImplementedError("store.loaders.load: being implemented")


def list_loads(store, *, limit=None):
    """The ``loads`` table of the store's shop, newest first, as a list of dicts.

    Keys: load_id, kind, source_name, source_size, source_sha256, options
    (dict), status ('running' = in progress or interrupted, 'completed'),
    rows_read, rows_accepted, rows_rejected, rows_duplicate, tables (dict),
    started_at, finished_at (ISO-8601 UTC text or None), seconds.
    """
    raise NotImplementedError("store.loaders.list_loads: being implemented")
