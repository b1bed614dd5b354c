"""Worker process of a partitioned materialisation (store.parallel.write_partitioned).

    python -m store.partition TASK_JSON

Computes one customer range into its scratch file and prints {"targets": n} on stdout.
Started by the writer with this interpreter; not a user command.

A worker dies with the process that started it (its parent, the materialising
process), and deletes its scratch file as it goes. Four independent lines, so
that no single platform feature is relied on (``Lifeline``):

* **stdin**: the parent holds the write end of the worker's stdin pipe and
  never writes to it; when the parent dies, however it dies, the system closes
  it and the worker's read returns end-of-file. Portable (POSIX and Windows).
* **Linux**: ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` (through ctypes): the kernel
  sends SIGTERM the moment the parent exits, even if its pipe leaked into
  another process. Checked right after against ``os.getppid()``, in case the
  parent died before the call.
* **POSIX**: ``os.getppid()`` is polled every ``POLL_S`` seconds: it changes
  when the parent dies and the worker is re-parented.
* **SIGTERM** (the death signal above, or anyone's ``kill``), and SIGINT and
  SIGHUP (a terminal's Ctrl-C or hang-up reach the whole process group), are
  blocked and taken by a thread waiting in ``sigwait``: handled at once, even
  while the main thread is inside a long SQLite statement (a Python signal
  handler would only run once the statement returns).

Each line ends in ``Lifeline.stop``: unlink the scratch file (POSIX lets a file
open in SQLite be unlinked; its space is freed when the process exits), remove
the scratch directory when nothing but its owner record is left in it,
write one line to stderr, and ``os._exit(STOPPED_EXIT)``. A scratch file the
platform keeps (Windows refuses to delete an open file) is removed by the next
partitioned run (store/scratch.py).
"""

import json
import os
import select
import signal
import sys
import threading

# Taken by the sigwait thread (POSIX): the death signal, and those a terminal sends the whole
# process group (Ctrl-C, hang-up), so that a worker never dies without deleting its scratch.
_STOP_SIGNALS = {getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)}
if __name__ == "__main__" and hasattr(signal, "pthread_sigmask"):
    # Blocked before the store's modules are imported: a library may start threads as it is
    # imported (numpy's OpenBLAS pool, which sqlite-utils imports whenever numpy is installed, as
    # with the extra [pandas]), and a thread keeps the mask it was started with, so a stop signal
    # could land in one of them, whose default action ends the worker without deleting its scratch.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)

from . import localtime, registry, scratch  # noqa: E402
from .db import automatic_indexes, begin_read, commit  # noqa: E402
from .plan import Plan, all_customers_params  # noqa: E402
from .resources import query  # noqa: E402
from .runs import NEW_TABLE  # noqa: E402

STOPPED_EXIT = 3
POLL_S = 0.5
_PR_SET_PDEATHSIG = 1


class Lifeline:
    """Ties this worker to its parent process; see the module docstring."""

    def __init__(self, task):
        self.parent = task.get("parent_pid")
        self.files = [task["scratch"] + suffix for suffix in ("", "-journal", "-wal", "-shm")]
        self.directory = os.path.dirname(task["scratch"])
        self._stopping = threading.Lock()

    def parent_gone(self):
        return self.parent is not None and os.getppid() != self.parent

    def stop(self, reason):
        """Delete this worker's scratch and end the process now (from any thread)."""
        if not self._stopping.acquire(blocking=False):
            return
        scratch.remove_files(self.files)
        # A stopped worker dooms its run: the directory can go once nothing but its owner
        # record is left (the last worker out). Not asking os.getppid(): it may still name
        # the dying parent for a moment after its pipe closed or its death signal came.
        scratch.remove_dir_if_only_owner(self.directory)
        try:
            os.write(2, f"materialize worker stopped: {reason}\n".encode())
        finally:
            os._exit(STOPPED_EXIT)

    def start(self):
        """Arm every line available on this platform (call before any work)."""
        posix = os.name == "posix"
        if posix:  # blocked in every thread started from here on: only the sigwait thread takes them
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            self._thread(self._wait_for_signal)
        if sys.platform.startswith("linux"):
            self._set_death_signal()
        if self.parent_gone():
            self.stop("the materialising process is gone")
        if sys.stdin is not None:
            self._thread(self._watch_stdin_posix if posix else self._watch_stdin)

    def _thread(self, target):
        threading.Thread(target=target, name=f"caf-lifeline-{target.__name__}", daemon=True).start()

    @staticmethod
    def _set_death_signal():
        import ctypes
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl: the other lines still hold

    def _wait_for_signal(self):
        signum = signal.sigwait(_STOP_SIGNALS)
        self.stop(signal.Signals(signum).name + (" (the materialising process is gone)" if self.parent_gone() else ""))

    def _watch_stdin(self):
        """Blocking read of stdin until end-of-file (platforms without select on pipes)."""
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError, AttributeError):
            pass
        self.stop("the materialising process is gone (its pipe closed)")

    def _watch_stdin_posix(self):
        fd = sys.stdin.fileno()
        while True:
            try:
                readable, _, _ = select.select([fd], [], [], POLL_S)
                if readable and not os.read(fd, 4096):
                    self.stop("the materialising process is gone (its pipe closed)")
            except OSError:
                self.stop("the materialising process is gone (its pipe is unreadable)")
            if self.parent_gone():
                self.stop("the materialising process is gone (re-parented)")


def compute_partition(task):
    """The worker's job (store/partition.py): one customer range of a materialisation, every
    family staged into the scratch file ``task['scratch']``; returns the number of targets."""
    from .db import open_reader
    reader = open_reader(task["db"], sorter_threads=0)  # the workers already use the CPUs (db.SORTER_THREADS)
    try:
        reader.execute("ATTACH DATABASE ? AS scratch", [task["scratch"]])
        reader.execute("PRAGMA scratch.journal_mode = OFF")
        reader.execute("PRAGMA scratch.synchronous = OFF")
        localtime.install(reader, task["timezone"])  # local-time features read it, as on the writer
        reg = registry.with_files(task["feature_files"]) if task.get("feature_files") else None
        plan = Plan(reader, task["windows"], task["families"], reg)
        params = plan.params(task["shop_id"], task["as_of_us"])
        hi = task["hi"]  # None: no upper bound
        begin_read(reader)  # one read snapshot for every statement of the worker
        reader.execute("CREATE TABLE scratch.target (target_id INTEGER PRIMARY KEY, "
                       "customer_id TEXT NOT NULL, as_of_us INTEGER NOT NULL)")
        reader.execute("INSERT INTO scratch.target (target_id, customer_id, as_of_us) "
                       + query("fill_targets_all_customers"),
                       all_customers_params(task["shop_id"], task["as_of_us"], task["lo"], hi))
        reader.execute("CREATE INDEX scratch.target_customer ON target (customer_id)")
        with automatic_indexes(reader):
            staged = plan.stage(reader, params, schema="scratch")
        # the rows of the range, joined here in parallel: the writer only copies them
        reader.execute(plan.create_sql(NEW_TABLE, "scratch"))
        reader.execute(plan.staged_insert_sql(NEW_TABLE, "scratch", into="scratch"), params)
        plan.unstage(reader, staged, "scratch")
        commit(reader)
        return reader.execute("SELECT COUNT(*) FROM scratch.target").fetchone()[0]
    finally:
        reader.close()


def main(argv=None):
    task = json.loads((argv or sys.argv[1:])[0])
    Lifeline(task).start()
    print(json.dumps({"targets": compute_partition(task)}))


if __name__ == "__main__":
    main()
