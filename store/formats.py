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
import zlib
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


# -- invalid bytes and lone surrogates ----------------------------------------------
# Decoding errors are replaced by lone surrogates (as 'surrogateescape' does),
# which valid text can never contain, and counted: while the count is zero no
# row needs scanning, so clean files pay nothing. A JSON string may also hold
# a lone surrogate written as an escape (\udfff): text that cannot be stored.
class DecodeErrors:
    """``count``: undecodable byte sequences met so far by the loaders' text streams (compare two
    readings to learn whether the bytes read in between were all valid)."""
    count = 0


def _count_and_escape(exc):
    DecodeErrors.count += 1
    return codecs.lookup_error("surrogateescape")(exc)


codecs.register_error("caf_loader_escape", _count_and_escape)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")  # '\ud800'..'\udfff' in JSON text


def has_bad_text(values):
    """True when any string in ``values`` holds a surrogate: bytes that were not valid in the
    file's encoding, or a lone surrogate from a JSON escape. Such text cannot be stored."""
    for value in values:
        if isinstance(value, str) and _SURROGATE.search(value):
            return True
    return False


def may_hold_surrogate_escape(raw):
    """True when JSON text ``raw`` may decode to a lone surrogate (it has a \\uD800-\\uDFFF escape)."""
    return "\\u" in raw and _SURROGATE_ESCAPE.search(raw) is not None


def has_bad_json_text(value):
    """True when a decoded JSON value holds a surrogate in any string or key, at any depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _shown_surrogate(match):
    code = ord(match.group())
    return f"\\x{code - 0xdc00:02x}" if 0xdc80 <= code <= 0xdcff else f"\\u{code:04x}"


def clean_text(value):
    """A string safe to store: undecodable bytes shown as \\xNN, other lone surrogates as \\uXXXX."""
    if isinstance(value, str) and _SURROGATE.search(value):
        return _SURROGATE.sub(_shown_surrogate, value)
    return value


def text_encoding(name):
    """The codec name of ``name`` for reading a file as text (None: the default, UTF-8 with an
    optional byte-order mark). LoadError for an unknown encoding or one that is not text."""
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        raise LoadError("encoding must be the name of a text encoding, such as cp1252 or latin-1")
    try:
        codec = codecs.lookup(name.strip()).name
        io.TextIOWrapper(io.BytesIO(), encoding=codec)  # refuses codecs that are not text encodings
    except LookupError as exc:
        raise LoadError(f"unknown encoding {name!r} ({exc}); use a Python codec name such as utf-8, "
                        "cp1252 or latin-1") from None
    return None if codec in ("utf-8", "utf-8-sig") else codec


def encoding_label(codec):
    """How rejections name the encoding: 'UTF-8' by default, else the codec name."""
    return "UTF-8" if codec is None else codec


# -- sources -----------------------------------------------------------------------
class Source:
    """A file to load: its name as given, size and sha256 of its bytes, and where they are:
    ``path`` on disk, or ``spool``, an open temporary file without a name (standard input
    and file objects, see ``open_source``)."""

    def __init__(self, name, path, size, sha256, spool=None):
        self.name = name
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.spool = spool

    def open(self):
        """A binary handle on the bytes, at their start."""
        if self.spool is None:
            return open(self.path, "rb")
        handle = os.fdopen(os.dup(self.spool.fileno()), "rb")  # shares the spool's offset: one reader
        handle.seek(0)
        return handle

    def close(self):
        if self.spool is not None:
            self.spool.close()  # its bytes go with it: the file has no name


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
    # A temporary file without a name (O_TMPFILE, or unlinked as soon as it is created): the
    # open handle keeps it alive, and a killed load (even SIGKILL) leaves nothing in the temp dir.
    out = tempfile.TemporaryFile(prefix="caf-load-", suffix=".spool")
    try:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            if isinstance(chunk, str):
                chunk = chunk.encode("utf-8", "surrogateescape")
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
    except BaseException:
        out.close()
        raise
    return Source(name, None, size, digest.hexdigest(), spool=out)


class Reader:
    """The decompressed byte stream of a source, with progress in source bytes.

    A gzip source is checked whole first (``check_gzip``): a corrupt or
    truncated one is refused before anything is loaded.
    """

    def __init__(self, source):
        self.name = source.name
        self.raw = source.open()
        magic = self.raw.read(2)
        self.raw.seek(0)
        self.gzip = magic == b"\x1f\x8b"
        if self.gzip:
            try:
                check_gzip(self.raw, source.name)
            except BaseException:
                self.raw.close()
                raise
            self.raw.seek(0)
        self.stream = gzip.GzipFile(fileobj=self.raw, mode="rb") if self.gzip else self.raw

    def position(self):
        try:
            return self.raw.tell()
        except (OSError, ValueError):
            return 0

    def peek(self, n=4096):
        """The first ``n`` decompressed bytes, without consuming them (before the stream is read)."""
        if self.gzip:
            try:
                with gzip.GzipFile(fileobj=self.raw, mode="rb") as g:  # leaves self.raw open
                    return g.read(n)
            except (OSError, EOFError, zlib.error) as exc:
                raise LoadError(f"{self.name}: not a valid gzip file ({exc})") from None
            finally:
                self.raw.seek(0)
        data = self.raw.read(n)
        self.raw.seek(0)
        return data

    def text(self, encoding=None):
        """The text stream: ``encoding`` a codec name from ``text_encoding`` (None: UTF-8, BOM skipped)."""
        return io.TextIOWrapper(self.stream, encoding=encoding or "utf-8-sig", errors="caf_loader_escape",
                                newline="")

    def close(self):
        if self.gzip:
            self.stream.close()
        self.raw.close()


READ_ERRORS = (OSError, EOFError, zlib.error)  # what reading a damaged or vanished file can raise


def check_gzip(raw, name):
    """Decompress the whole gzip file ``raw`` (a binary file object at offset 0), keeping nothing.

    Raises LoadError naming the file and the byte offset where the data stops
    being valid: a flipped byte (bad deflate data or a CRC/length mismatch),
    a truncated file, or bytes after the last member that are not another
    member (zero padding is allowed, as the gzip module allows it). Memory is
    bounded: input and output are handled in chunks.
    """
    step = 1 << 16
    out_limit = 1 << 20
    pos = 0            # file offset of data[0]
    data = b""
    d = None           # the decompressor of the current member; None between members
    while True:
        if not data:
            try:
                data = raw.read(step)
            except OSError as exc:
                raise LoadError(f"cannot read {name}: {exc.strerror or exc}") from None
            if not data:
                break
        if d is None:
            stripped = data.lstrip(b"\0")
            pos += len(data) - len(stripped)
            data = stripped
            if not data:
                continue
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        before = d.copy()
        try:
            d.decompress(data, out_limit)
        except zlib.error as exc:
            at = pos + _failing_byte(before, data)
            why = str(exc).split(": ", 1)[-1]
            why = _GZIP_PROBLEMS.get(why, f"invalid compressed data ({why})")
            raise LoadError(f"{name}: corrupt gzip file: {why}, found at byte {at:,} of {_size(raw):,}; "
                            "nothing was loaded: fix or fetch the file again and rerun the load") from None
        if d.eof:
            rest = d.unused_data
            pos += len(data) - len(rest)
            data = rest
            d = None
        else:
            tail = d.unconsumed_tail
            pos += len(data) - len(tail)
            data = tail
    if d is not None:
        raise LoadError(f"{name}: truncated gzip file: it ends at byte {pos:,}, inside its compressed data; "
                        "nothing was loaded: fix or fetch the file again and rerun the load")


_GZIP_PROBLEMS = {
    "incorrect data check": "its data does not match its CRC-32 checksum (bytes before it are damaged)",
    "incorrect length check": "its data does not match its recorded length (bytes before it are damaged)",
    "incorrect header check": "bytes that do not start a gzip member",
}


def _failing_byte(decompressor, data):
    """The index in ``data`` of the byte at which ``decompressor`` (a copy from before) fails."""
    for i in range(len(data)):
        try:
            decompressor.decompress(data[i:i + 1], 1 << 16)
            while decompressor.unconsumed_tail:
                decompressor.decompress(decompressor.unconsumed_tail, 1 << 16)
        except zlib.error:
            return i
        if decompressor.eof:
            break
    return len(data) - 1


def _size(raw):
    try:
        return os.fstat(raw.fileno()).st_size
    except (OSError, ValueError):
        return 0


def detect_format(name, fmt, head):
    """The format: given, else from the name (.csv .tsv .json .ndjson .jsonl, optionally .gz), else sniffed.

    ``head``: the first decompressed bytes (or their text)."""
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
    if isinstance(head, bytes):
        head = head.decode("utf-8", "replace")
    text = head.lstrip("\ufeff \t\r\n")
    if text.startswith("["):
        return "json"
    if text.startswith("{"):
        return "ndjson"
    first = text.split("\n", 1)[0]
    return "tsv" if "\t" in first and "," not in first else "csv"


DELIMITERS = ",;\t|"  # what sniffing may find
DEFAULT_DELIMITER = {"csv": ",", "tsv": "\t"}


def delimiter_name(delimiter):
    """How messages show a delimiter: "';'", "','", 'tab'."""
    return "tab" if delimiter == "\t" else repr(delimiter)


def delimiter_option(value):
    """A --delimiter value as one character: any single character but a quote or a line break;
    '\\t' and 'tab' mean a tab. None stays None (sniffed)."""
    if value is None:
        return None
    if value in ("\\t", "tab", "TAB"):
        return "\t"
    if not isinstance(value, str) or len(value) != 1 or value in "\"\r\n":
        raise LoadError(f"delimiter must be one character (not a quote or a line break), got {value!r}; "
                        "use '\\t' or 'tab' for a tab")
    return value


def sniff_delimiter(sample, default=","):
    """The delimiter of CSV text ``sample`` (its first lines), found by ``csv.Sniffer`` among
    ``DELIMITERS``; kept only when it splits the header line into more columns than ``default``
    does, else ``default``."""
    end = max(sample.rfind("\n"), sample.rfind("\r"))
    if end > 0:
        sample = sample[:end + 1]  # complete lines only
    if not sample.strip():
        return default
    try:
        found = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return default
    header = sample.lstrip("\ufeff").split("\n", 1)[0]
    if found != default and header.count(found) > header.count(default):
        return found
    return default


def decoded_head(head, encoding=None):
    """The first decompressed bytes of a file as text, for sniffing (a cut character is replaced)."""
    return head.decode(encoding or "utf-8-sig", "replace")


# -- rows ------------------------------------------------------------------------------
# (CSV/TSV rows are read by csv.reader directly in store/loaders.py.)
def ndjson_rows(text, bad_bytes="encoding: invalid UTF-8"):
    """Iterator of (value, raw line, error); blank lines are skipped.

    A line with undecodable bytes is decoded all the same (they become lone
    surrogates in its strings: the loader rejects the row only when a column it
    reads holds them); one that is then not valid JSON is rejected with the
    reason ``bad_bytes``."""
    for line in text:
        stripped = line.strip()
        if not stripped:
            continue
        try:
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError:
                raise
            except ValueError:  # an integer beyond Python's digit limit
                value = _TOLERANT.decode(stripped)
        except ValueError as exc:
            if DecodeErrors.count and has_bad_text((stripped,)):
                yield None, stripped, bad_bytes
            else:
                yield None, stripped, f"json: malformed line ({exc.msg if hasattr(exc, 'msg') else exc})"
            continue
        except RecursionError:
            yield None, stripped[:200], "json: nested too deeply"
            continue
        yield value, stripped, None


def _int_or_infinite(text):
    """A JSON integer; one beyond Python's int digit limit (4,300 digits) becomes +-inf, which every
    numeric field rejects, instead of making its whole line (or array) unreadable."""
    try:
        return int(text)
    except ValueError:
        return float(text)


_TOLERANT = json.JSONDecoder(parse_int=_int_or_infinite)  # only for the rare text the fast decoder refuses


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
                try:
                    value, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError:
                    raise
                except ValueError:  # an integer beyond Python's digit limit
                    value, end = _TOLERANT.raw_decode(buf, pos)
            except ValueError as exc:
                if not eof and len(buf) - pos < MAX_JSON_ELEMENT:
                    refill()
                    continue
                why = "invalid bytes" if DecodeErrors.count and has_bad_text((buf[pos:pos + 200],)) else \
                    f"malformed array element ({getattr(exc, 'msg', exc)})"
                yield None, buf[pos:pos + 200], f"json: {why}; the rest of the file was not read"
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
        yield value, raw, None  # undecodable bytes: see ndjson_rows


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
        check_date_format(date_format)
        self.date_format = date_format
        self.tz = tz or UTC
        self.cache = {}
        self.parsed = 0          # texts parsed (cache hits aside)
        self.failed = 0          # texts that did not parse (missing values aside)
        self.first_failure = None

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
            us = (dt - EPOCH) // ONE_US
        except (ValueError, OverflowError, OSError):
            self.failed += 1
            if self.first_failure is None:
                self.first_failure = clean_text(text[:60])
            hint = f" (expected format {self.date_format})" if self.date_format else ""
            raise Rejection(field, f"unparseable date{hint}") from None
        self.parsed += 1
        return us


_PROBE = datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)


def check_date_format(date_format):
    """LoadError unless ``date_format`` (None = ISO-8601) is a usable strptime format: the probe
    instant written with it (``strftime``) must read back (``strptime``). So an unknown directive
    ('%Q'), a stray '%' or an incomplete ISO-week format is refused before any row is read."""
    if date_format is None:
        return
    if not isinstance(date_format, str) or not date_format:
        raise LoadError("date_format must be a non-empty strptime format string such as '%d/%m/%Y %H:%M'")
    try:
        datetime.strptime(_PROBE.strftime(date_format), date_format)
    except (ValueError, TypeError, OverflowError, UnicodeError) as exc:
        raise LoadError(f"invalid date format {date_format!r}: {exc}") from None
