"""customer-activity-features: the machinery behind the public API.

Layers, bottom to top (data flows one way):

* ``store.errors``, ``store.timeutil``, ``store.resources`` - exceptions, time
  conversion, and the located ``sql/`` and ``migrations/`` folders;
* ``store.db`` - connections, pragmas, schema migrations, the one identifier
  quoting helper;
* ``store.validate`` and ``store.ingest`` - turning offered events into rows or
  recorded rejections, and writing them in transactions;
* ``store.features`` - running the named feature queries of ``sql/``;
* ``customer_activity_features`` (top level) - the public API, and
  ``store.cli`` - the ``caf`` command line, on top.
"""

__version__ = "0.1.0"
