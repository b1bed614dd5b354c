"""Worker process of a partitioned materialisation (store.materialize._write_partitioned).

    python -m store.partition TASK_JSON

Computes one customer range into its scratch file and prints {"targets": n} on stdout.
Started by the writer with this interpreter; not a user command.
"""

import json
import sys

from .materialize import compute_partition


def main(argv=None):
    task = json.loads((argv or sys.argv[1:])[0])
    print(json.dumps({"targets": compute_partition(task)}))


if __name__ == "__main__":
    main()
