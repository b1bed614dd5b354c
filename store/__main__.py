"""``python -m store``: the ``caf`` command line (see store/cli.py)."""

from .cli import main

main()
