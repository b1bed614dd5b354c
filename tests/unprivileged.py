"""Run test code as an unprivileged user, also when the suite runs as root (as in CI).

As root, file permissions do not stop writes, so a test of read-only files must not run its
checks as root. ``as_nobody(fn, *args)`` forks, drops the child to uid/gid 65534 ('nobody':
``os.setgroups([])``, ``os.setgid``, ``os.setuid``), runs ``fn(*args)`` there and returns its
result (or raises ``ChildFailed`` with the child's traceback). When the suite already runs as
another user, ``fn`` runs directly: that user is unprivileged already.

The child cannot start a new interpreter: the interpreter may live where 'nobody' cannot read
(e.g. under /root, mode 700), so ``fn`` runs in the forked copy of this process, on the modules
already imported. ``PRELOAD`` imports, before forking, every module the store and the CLI import
lazily. Files the child needs must be reachable by 'nobody': make them under ``world_dir()``
(pytest's tmp_path is under /tmp/pytest-of-root, mode 700).
"""

import importlib
import os
import pickle
import select
import shutil
import signal
import stat
import tempfile
import time
import traceback
from pathlib import Path

NOBODY = 65534
PRELOAD = ("csv", "gzip", "json", "zoneinfo", "dataclasses", "decimal", "fractions", "hashlib", "shlex",
           "store.cli", "store.loaders", "store.formats", "store.behavior", "store.stats", "store.rfm",
           "store.partition", "click.testing", "customer_activity_features")


class ChildFailed(AssertionError):
    """The function raised (or the child died) in the unprivileged child; the message has its traceback."""


def running_as_root():
    return hasattr(os, "geteuid") and os.geteuid() == 0


def world_dir(prefix="caf-nobody-"):
    """A new directory under the system temp dir that every user may enter and list (0755)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def writable_dir(parent, name="out"):
    """A directory every user may write (0777), for the files the child writes."""
    path = Path(parent) / name
    path.mkdir()
    path.chmod(0o777)
    return path


def remove(path):
    """Remove a directory tree made for a test, read-only directories included."""
    for root, dirs, _ in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), stat.S_IRWXU)
    os.chmod(path, stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)


def as_nobody(fn, *args, timeout=120):
    """``fn(*args)`` as an unprivileged user; its return value must be picklable."""
    if not running_as_root():
        return fn(*args)
    for name in PRELOAD:
        importlib.import_module(name)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            if os.geteuid() != NOBODY:
                raise RuntimeError("could not drop privileges")
            payload = ("ok", fn(*args))
        except BaseException:
            payload = ("error", traceback.format_exc())
        try:
            data = pickle.dumps(payload)
        except Exception:
            data = pickle.dumps(("error", f"unpicklable result: {payload!r}"[:2000]))
        with os.fdopen(write_end, "wb") as out:
            out.write(data)
        os._exit(0)
    os.close(write_end)
    chunks = []
    deadline = time.monotonic() + timeout
    with os.fdopen(read_end, "rb") as source:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([source], [], [], max(0.0, left))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise ChildFailed(f"the unprivileged child did not finish within {timeout} s")
            chunk = os.read(source.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        raise ChildFailed(f"the unprivileged child died without a result (status {status})")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        raise ChildFailed("in the child running as uid 65534:\n" + value)
    return value
