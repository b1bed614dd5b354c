"""``materialize_on_spark`` from the command line, for ``spark-submit`` (docs/scale-out.md)::

    caf export-events events/
    spark-submit --master local[2] "$(python -c 'import store.spark_submit as m; print(m.__file__)')" \\
        events/ features/ --as-of 2026-01-01
    caf import-features features/

(or ``python -m store.spark_submit events/ features/ --as-of ...``, which starts a local
session; ``--master`` picks another). It reads the events export ``EVENTS``, computes every
customer's row of ``customer_features`` on the session spark-submit gives it (the settings
the results depend on are set by ``store.spark``) and writes them as Parquet to ``OUTPUT``
(refused when it exists, unless ``--overwrite``). The package must be installed, with its
``[spark]`` extra, in the Python that Spark runs (``PYSPARK_PYTHON``).
"""

import argparse
import os
import sys
from pathlib import Path

from store import spark as caf_spark
from store.errors import StoreError


def _windows(text):
    try:
        return tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of days") from None


def parser():
    p = argparse.ArgumentParser(prog="spark_submit.py", description=__doc__.split("\n\n")[0])
    p.add_argument("events", help="the directory caf export-events wrote")
    p.add_argument("output", help="where to write the feature rows (a Parquet directory)")
    p.add_argument("--as-of", required=True, help="snapshot time, ISO-8601 (a naive time is UTC)")
    p.add_argument("--windows", type=_windows, default=None, help="window lengths in days (default 7,30,90,365)")
    p.add_argument("--family", dest="families", action="append", default=None, help="only this family (repeatable)")
    p.add_argument("--feature-path", dest="feature_paths", action="append", default=[],
                   help="a family file of your own (repeatable), as CustomerActivityFeatures(feature_paths=...)")
    p.add_argument("--master", default=None, help="Spark master when not run by spark-submit (default local[2])")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT when it exists")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if Path(args.output).exists() and not args.overwrite:
        print(f"error: {args.output} exists (pass --overwrite to replace it)", file=sys.stderr)
        return 1
    try:
        caf_spark.require_spark()
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.appName("caf materialize_on_spark")
        if args.master or not os.environ.get("SPARK_ENV_LOADED"):  # not under spark-submit
            builder = builder.master(args.master or "local[2]")
        session = builder.getOrCreate()
        kwargs = {"windows": args.windows} if args.windows else {}
        frame = caf_spark.materialize_on_spark(session, args.events, as_of=args.as_of, families=args.families,
                                               feature_paths=args.feature_paths, **kwargs)
        frame.write.mode("overwrite" if args.overwrite else "errorifexists").parquet(args.output)
        print(f"wrote {args.output}: {session.read.parquet(args.output).count()} customers")
    except (StoreError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
