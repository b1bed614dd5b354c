"""Reading input files for the loaders: sources, gzip, formats, rows, timestamps, numbers.

Everything here streams: a file is read in chunks or line by line, never
whole. Standard input and file objects are first spooled to a temporary file
(hashed on the way), so that a load can be identified by its sha256 and
resumed.
"""

import codecs
import csv
import gzip
import hashlib
import io
import json
import math
import os
import re
import sys
import tempfile
from datetime import datetime, timedelta, timezone as _timezone
from pathlib import Path

from .errors import LoadError
from .validate import Rejection, count, customer_id

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
except ImportError:  # pragma: no cover
    ZoneInfo = None
    ZoneInfoNotFoundError = Exception

FORMATS = ("csv", "tsv", "json", "ndjson")
CHUNK = 1 << 20
MAX_JSON_ELEMENT = 64 << 20  # bytes of one JSON array element before it is rejected as too large
UTC = _timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)

csv.field_size_limit(16 << 20)


# -- invalid UTF-8 ---------------------------------------------------------------
# Decoding errors are replaced by lone surrogates (as 'surrogateescape' does),
# which valid text can never contain, and counted: while the count is zero no
# row needs scanning, so clean files pay nothing.
class _DecodeErrors:
    count = 0


def _count_and_escape(exc):
    _DecodeErrors.count += 1
    return codecs.lookup_error("surrogateescape")(exc)


codecs.register_error("caf_loader_escape", _count_and_escape)
_SURROGATE = re.compile("[\udc80-\udcff]")


def has_bad_text(values):
    """True when any string in ``values`` holds bytes that were not valid UTF-8."""
    for value in values:
        if isinstance(value, str) and _SURROGATE.search(value):
            return True
    return False


def clean_text(value):
    """A string safe to store: undecodable bytes shown as \\xNN escapes."""
    if isinstance(value, str) and _SURROGATE.search(value):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return value


# -- sources -----------------------------------------------------------------------
class Source:
    """A file to load: its name as given, a path on disk, size and sha256 of its bytes."""

    def __init__(self, name, path, size, sha256, temporary=False):
        self.name = name
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.temporary = temporary

    def close(self):
        if self.temporary:
            try:
                os.unlink(self.path)
            except OSError:
                pass


def open_source(source):
    """Resolve ``source`` (path, '-', or file object) into a hashed ``Source``."""
    if isinstance(source, (str, Path)) and str(source) != "-":
        path = Path(source)
        if not path.exists():
            raise LoadError(f"no such file: {path}")
        if path.is_dir():
            raise LoadError(f"is a directory, not a file: {path}")
        digest = hashlib.sha256()
        size = 0
        try:
            with open(path, "rb") as f:
                while True:
                    chunk = f.read(CHUNK)
                    if not chunk:
                        break
                    digest.update(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise LoadError(f"cannot read {path}: {exc.strerror or exc}") from None
        return Source(str(source), path, size, digest.hexdigest())
    if isinstance(source, (str, Path)):  # '-'
        stream = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
        name = "-"
    elif hasattr(source, "read"):
        stream = source
        name = getattr(source, "name", None)
        name = name if isinstance(name, str) else "<stream>"
    else:
        raise LoadError(f"source must be a path, '-' or a file object, got {type(source).__name__}")
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(prefix="caf-load-", suffix=".spool")
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                if isinstance(chunk, str):
                    chunk = chunk.encode("utf-8", "surrogateescape")
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except BaseException:
        os.unlink(tmp)
        raise
    return Source(name, Path(tmp), size, digest.hexdigest(), temporary=True)


class Reader:
    """The decompressed byte stream of a source, with progress in source bytes."""

    def __init__(self, source):
        self.raw = open(source.path, "rb")
        magic = self.raw.read(2)
        self.raw.seek(0)
        self.gzip = magic == b"\x1f\x8b"
        self.stream = gzip.GzipFile(fileobj=self.raw, mode="rb") if self.gzip else self.raw

    def position(self):
        try:
            return self.raw.tell()
        except (OSError, ValueError):
            return 0

    def peek(self, n=4096):
        """The first ``n`` decompressed bytes, without consuming them."""
        if self.gzip:
            with gzip.open(self.raw.name, "rb") as g:
                try:
                    return g.read(n)
                except (OSError, EOFError) as exc:
                    raise LoadError(f"not a valid gzip file: {exc}") from None
        data = self.raw.read(n)
        self.raw.seek(0)
        return data

    def text(self):
        return io.TextIOWrapper(self.stream, encoding="utf-8-sig", errors="caf_loader_escape", newline="")

    def close(self):
        if self.gzip:
            self.stream.close()
        self.raw.close()


def detect_format(name, fmt, head):
    """The format: given, else from the name (.csv .tsv .json .ndjson .jsonl, optionally .gz), else sniffed."""
    if fmt is not None:
        fmt = str(fmt).lower()
        if fmt == "jsonl":
            fmt = "ndjson"
        if fmt not in FORMATS:
            raise LoadError(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")
        return fmt
    lower = name.lower()
    if lower.endswith(".gz"):
        lower = lower[:-3]
    for suffix, found in ((".csv", "csv"), (".tsv", "tsv"), (".tab", "tsv"), (".json", "json"),
                          (".ndjson", "ndjson"), (".jsonl", "ndjson")):
        if lower.endswith(suffix):
            return found
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        return "ndjson"
    first = text.split(b"\n", 1)[0]
    return "tsv" if b"\t" in first and b"," not in first else "csv"


# -- rows ------------------------------------------------------------------------------
# (CSV/TSV rows are read by csv.reader directly in store/loaders.py.)
def ndjson_rows(text):
    """Iterator of (value, raw line, error); blank lines are skipped."""
    for line in text:
        stripped = line.strip()
        if not stripped:
            continue
        if has_bad_text((stripped,)) and _DecodeErrors.count:
            yield None, stripped, "encoding: invalid UTF-8"
            continue
        try:
            yield json.loads(stripped), stripped, None
        except ValueError as exc:
            yield None, stripped, f"json: malformed line ({exc.msg if hasattr(exc, 'msg') else exc})"
        except RecursionError:
            yield None, stripped[:200], "json: nested too deeply"


_WS = " \t\r\n"


def json_array_rows(text):
    """Iterator of (value, raw text, error) over the elements of a top-level JSON array.

    Streams: elements are decoded one at a time from a bounded buffer. A syntax
    error cannot be resynchronised, so it ends the file as one rejected row
    holding the start of what remained.
    """
    decoder = json.JSONDecoder()
    buf = text.read(CHUNK)
    eof = not buf
    pos = 0

    def refill():
        nonlocal buf, pos, eof
        more = text.read(CHUNK)
        if not more:
            eof = True
        buf = buf[pos:] + more
        pos = 0

    def skip_ws():
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            if pos < len(buf) or eof:
                return
            refill()

    skip_ws()
    if pos >= len(buf):
        return
    if buf[pos] != "[":
        raise LoadError("not a JSON array (the file does not start with '['); use --format ndjson for one object per line")
    pos += 1
    expect_value = True
    while True:
        skip_ws()
        if pos >= len(buf):
            yield None, "", "json: the array is not closed (file truncated?)"
            return
        if buf[pos] == "]" :
            return
        if not expect_value:
            if buf[pos] == ",":
                pos += 1
                expect_value = True
                continue
            yield None, buf[pos:pos + 200], "json: expected ',' or ']' between array elements; the rest of the file was not read"
            return
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
            except ValueError as exc:
                if not eof and len(buf) - pos < MAX_JSON_ELEMENT:
                    refill()
                    continue
                yield None, buf[pos:pos + 200], f"json: malformed array element ({getattr(exc, 'msg', exc)}); the rest of the file was not read"
                return
            except RecursionError:
                yield None, buf[pos:pos + 200], "json: nested too deeply; the rest of the file was not read"
                return
            if end >= len(buf) and not eof:  # a number might continue in the next chunk
                refill()
                continue
            break
        raw = buf[pos:end]
        pos = end
        expect_value = False
        if _DecodeErrors.count and has_bad_text((raw,)):
            yield None, raw, "encoding: invalid UTF-8"
        else:
            yield value, raw, None


# -- values ------------------------------------------------------------------------------
_FLOAT_ID = re.compile(r"^-?\d+\.0+$")


def customer_text(value, field):
    """A customer id from a file. Reading the cell: text is stripped (blank or absent = "is
    missing"), an integral number written as 17850.0 is 17850. The id itself must then pass the
    store's one customer-id rule, ``validate.customer_id`` (no NUL, valid Unicode, ...), as at
    every other entry point."""
    if value is None:
        raise Rejection(field, "is missing")
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise Rejection(field, "is missing")
        if "." in value and _FLOAT_ID.match(value):
            value = value.split(".", 1)[0]
    return customer_id(value, field)


def number(value, field, *, optional=False):
    """A finite float from a number or numeric text; '' and None are missing."""
    if value is None or value == "":
        if optional:
            return None
        raise Rejection(field, "is missing")
    if isinstance(value, bool):
        raise Rejection(field, "must be a number, got bool")
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise Rejection(field, "not a number") from None
    if not math.isfinite(result):
        raise Rejection(field, "is NaN" if result != result else "is infinite")
    return result


def whole_number(value, field):
    """An optional non-negative integer from an integer or its text ('3', '3.0'); '' and None are None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise Rejection(field, "not a whole number") from None
    return count(value, field)


def boolean(value, field):
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "t", "yes", "y"):
            return 1
        if text in ("0", "false", "f", "no", "n"):
            return 0
    raise Rejection(field, "must be true or false")


def zone(name):
    """A tzinfo for an IANA name (None = UTC)."""
    if name is None or name in ("UTC", "utc", "Z"):
        return UTC
    if ZoneInfo is None:  # pragma: no cover
        raise LoadError("time zones need the zoneinfo module (Python >= 3.9)")
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise LoadError(f"unknown time zone {name!r}; use an IANA name such as Europe/London") from None


class TimeParser:
    """Text -> microseconds since the epoch, with a bounded cache (dumps repeat timestamps).

    With ``date_format`` the text is parsed with ``strptime``; otherwise as
    ISO-8601 (a trailing ``Z`` or `` UTC`` means UTC). Naive results are in
    ``tz``.
    """

    def __init__(self, date_format=None, tz=None):
        if date_format is not None and not isinstance(date_format, str):
            raise LoadError("date_format must be a strptime format string")
        self.date_format = date_format
        self.tz = tz or UTC
        self.cache = {}

    def __call__(self, value, field):
        try:
            return self.cache[value]
        except (KeyError, TypeError):
            pass
        us = self._parse(value, field)
        if len(self.cache) >= 65536:
            self.cache.clear()
        try:
            self.cache[value] = us
        except TypeError:
            pass
        return us

    def _parse(self, value, field):
        if value is None or value == "":
            raise Rejection(field, "is missing")
        if not isinstance(value, str):
            raise Rejection(field, f"unparseable date: expected text, got {type(value).__name__}")
        text = value.strip()
        try:
            if self.date_format:
                dt = datetime.strptime(text, self.date_format)
            else:
                if text.endswith(" UTC"):
                    text = text[:-4] + "+00:00"
                elif text.endswith(("Z", "z")):
                    text = text[:-1] + "+00:00"
                dt = datetime.fromisoformat(text)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=self.tz)
            return (dt - EPOCH) // ONE_US
        except (ValueError, OverflowError, OSError):
            hint = f" (expected format {self.date_format})" if self.date_format else ""
            raise Rejection(field, f"unparseable date{hint}") from None
