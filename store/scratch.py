"""Scratch directories of partitioned materialisations, and the removal of stale ones.

``materialize(workers=N)`` gives its worker processes one scratch directory in
the temporary directory (``tempfile.gettempdir()``, i.e. ``$TMPDIR``), named
``caf-materialize-<pid>-<random>`` and holding an owner record
(``owner.json``: the pid of the materialising process, its start time and its
pid namespace where the platform tells them). The run deletes it when it ends,
however it ends; its workers delete their own files when the run's process
dies (store/partition.py). What a kill can still leave behind (a worker killed
together with its parent, say by ``kill -9`` of the process group or the OOM
killer) is removed by the next partitioned run: ``sweep_stale`` deletes every
such directory whose owner is gone.

An owner is gone when no process has its pid, or (Linux) the process with its
pid started at another time (the pid was reused). A directory of another pid
namespace (a container sharing the temporary directory), or of another user,
or on a platform without ``os.kill(pid, 0)`` (Windows), is never judged and
left alone. Directories of earlier versions (``caf-materialize-<random>``,
no owner record) are removed once nothing in them has changed for an hour.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time

PREFIX = "caf-materialize-"
OWNER_FILE = "owner.json"
LEGACY_AGE_S = 3600
_NAME = re.compile(re.escape(PREFIX) + r"(?:(?P<pid>[0-9]+)-)?[a-z0-9_]+")
_LEGACY = re.compile(re.escape(PREFIX) + r"[a-z0-9_]{8}")


def _start_time(pid):
    """The start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: split after its ')'
        return int(stat[stat.rindex(b")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def _pid_namespace():
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def owner_record():
    """{'pid', 'start', 'pidns'} of this process; the parts the platform does not tell are None."""
    pid = os.getpid()
    return {"pid": pid, "start": _start_time(pid), "pidns": _pid_namespace()}


def owner_alive(owner):
    """True when the process of an owner record may still run; False only when it is surely gone."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or sys.platform == "win32":
        return True  # on Windows os.kill(pid, 0) would terminate the process: never judged there
    ours = _pid_namespace()
    if owner.get("pidns") and ours and owner["pidns"] != ours:
        return True  # another pid namespace: its pids mean nothing here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a process of another user has that pid
    except OSError:
        return True
    start = owner.get("start")
    now = _start_time(pid)
    return not (start is not None and now is not None and start != now)


def make_dir():
    """A new scratch directory of this process, with its owner record; returns its path."""
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    with open(os.path.join(path, OWNER_FILE), "w", encoding="utf-8") as f:
        json.dump(owner_record(), f)
    return path


def run_dir(cleanup):
    """A new scratch directory of this run (``make_dir``), made after removing the stale ones of
    runs whose process is gone (``sweep_stale``); ``cleanup`` (an ExitStack, closed when the
    run ends however it ends) deletes it."""
    sweep_stale()
    path = make_dir()
    cleanup.callback(shutil.rmtree, path, ignore_errors=True)
    return path


def _read_owner(path, name):
    """The owner record of a scratch directory; from its name when the record is missing
    (a kill between the directory and its record); None when it has neither."""
    try:
        with open(os.path.join(path, OWNER_FILE), encoding="utf-8") as f:
            owner = json.load(f)
        if isinstance(owner, dict):
            return owner
    except (FileNotFoundError, ValueError):
        pass  # missing or half written (a kill while writing it): the name tells the pid
    except OSError:
        return {}  # unreadable: never judged
    m = _NAME.fullmatch(name)
    return {"pid": int(m.group("pid"))} if m and m.group("pid") else None


def _newest_change(path):
    newest = os.lstat(path).st_mtime
    for entry in os.scandir(path):
        newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return newest


def is_stale(path):
    """True when ``path`` is a scratch directory (of this user) whose owner is gone."""
    name = os.path.basename(path)
    if not _NAME.fullmatch(name):
        return False
    try:
        st = os.lstat(path)
        if not os.path.isdir(path) or os.path.islink(path):
            return False
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            return False
        owner = _read_owner(path, name)
        if owner is None:
            return bool(_LEGACY.fullmatch(name)) and time.time() - _newest_change(path) > LEGACY_AGE_S
        return not owner_alive(owner)
    except OSError:
        return False


def sweep_stale(directory=None):
    """Delete the stale scratch directories (``is_stale``) in ``directory`` (default: the
    temporary directory); returns the paths removed."""
    directory = directory or tempfile.gettempdir()
    removed = []
    try:
        entries = [e.path for e in os.scandir(directory) if e.name.startswith(PREFIX)]
    except OSError:
        return removed
    for path in entries:
        if is_stale(path):
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.lexists(path):
                removed.append(path)
    return removed


def remove_files(paths):
    """Unlink files, ignoring those already gone (or that the platform keeps while open)."""
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


def remove_dir_if_only_owner(path):
    """Remove a scratch directory holding nothing but its owner record (the last worker out
    after the run's process died); no-op otherwise."""
    try:
        names = os.listdir(path)
        if set(names) <= {OWNER_FILE}:
            remove_files([os.path.join(path, OWNER_FILE)])
            os.rmdir(path)
    except OSError:
        pass
