"""`caf serve` as a real process for the tests (tests/test_serve.py, tests/test_browser_render.py):
started on a free localhost port, waited for, stopped by its PID."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    """(status, parsed JSON or text) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            body, status = response.read().decode(), response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


class Server:
    """`caf serve` started as a subprocess on a free port, waited for; stopped by its PID."""

    def __init__(self, db, *extra):
        self.port = free_port()
        self.db = Path(db)
        self.base = f"http://127.0.0.1:{self.port}/{self.db.stem}"
        self.proc = subprocess.Popen([sys.executable, "-m", "store", "--db", str(db), *extra, "serve",
                                      "--port", str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"caf serve exited: {self.proc.communicate()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("caf serve did not listen within 60 s")

    def stop(self):
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
