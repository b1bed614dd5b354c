"""Claims held for the life of a process: an exclusive ``flock`` on a small file.

The kernel releases the lock when its holder exits, however it exits (SIGKILL
included), so a claim can never outlive a dead process: a crashed holder's work
is free to be resumed by the next claimant, while a live holder's work is never
entered twice. Used by ``store.loaders`` (one claim per load, see
docs/loading.md); the lock files sit next to the database
(``store.db.lock_path``).

The holder writes who it is (pid, host, since) into the file, so whoever finds
the claim taken can say by whom. The holder removes the file when it lets go;
a claimant that locked a file removed meanwhile notices (the path no longer
names the file it locked) and tries again with the new file.

Local file systems are assumed (``flock`` over NFS depends on the client). On a
platform without ``fcntl`` (Windows) claims always succeed and protect nothing.
"""

import json
import os
import socket
import time

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None

from . import timeutil


class FileLock:
    """An exclusive claim on ``path``; ``try_acquire()``, then ``release()``."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.fd = None

    def try_acquire(self):
        """Take the claim now if nobody holds it; True when taken, False when another holder has it.

        Raises ``OSError`` when the lock file cannot be created or opened.
        """
        if self.fd is not None:
            raise RuntimeError(f"{self.path} is already held by this FileLock")
        if fcntl is None:  # pragma: no cover
            return True
        while True:
            fd, writable = _open(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is None or not os.path.samestat(os.fstat(fd), current):
                os.close(fd)  # the previous holder removed this file after we opened it
                continue
            if writable:
                info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                   "since": timeutil.iso(timeutil.now_us())}).encode()
                os.ftruncate(fd, 0)
                os.pwrite(fd, info, 0)
            self.fd = fd
            return True

    def holder(self):
        """What the current holder wrote: {'pid', 'host', 'since'}; {} when unknown."""
        try:
            with open(self.path, "rb") as handle:
                info = json.loads(handle.read(4096) or b"{}")
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def release(self):
        """Remove the file and let go (the file first: a waiter never locks a file that stays)."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def acquire(self, *, wait=True, poll=0.05, on_busy=None):
        """Take the claim, waiting for the holder as ``wait`` says: True (as long as it takes),
        False (not at all) or a number of seconds. ``on_busy(holder)`` is called once when the
        claim is found taken. Returns True when taken, False when the wait ran out."""
        if self.try_acquire():
            return True
        if on_busy is not None:
            on_busy(self.holder())
        if wait is False:
            return False
        deadline = None if wait is True else time.monotonic() + float(wait)
        while deadline is None or time.monotonic() < deadline:
            time.sleep(poll)
            if self.try_acquire():
                return True
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def describe(holder):
    """A holder's record as text for messages: 'pid 123, host web1, since 2026-...Z' ('' when unknown)."""
    return ", ".join(f"{key} {holder[key]}" for key in ("pid", "host", "since") if holder.get(key) is not None)


def _open(path):
    """(fd, writable): the lock file, created if missing; read-only when another user's file
    may not be written (``flock`` does not need write access; the holder info is then not updated)."""
    flags = os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, os.O_RDWR | flags, 0o644), True
    except PermissionError:
        if not os.path.exists(path):
            raise
        return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)), False
