"""Issue 11, item 2: a corrupt gzip file is one clear error, and the fixed file loads exactly.

A byte flipped anywhere in a gzip file, a truncated file, a damaged CRC or
garbage after the last member used to end in a raw ``zlib.error`` traceback,
or worse: a flip that still inflates (the common case in a compressible CSV)
loaded damaged rows and failed only at the final CRC check, after the batches
were committed. Now the whole file is checked before anything is written:
``LoadError`` names the file and the byte offset, ``caf load`` prints one line
and exits 1, nothing is stored (no ``loads`` row, no rows, no rejections, no
staged rows), and the fixed file then loads to exactly the rows and counts of
an uninterrupted load.
"""

import gzip
import random
import re

import pytest
from click.testing import CliRunner

from customer_activity_features import CustomerActivityFeatures
from store import loaders
from store.cli import cli
from store.errors import LoadError
from tests.test_load_resume import purchases_file, retail_file
from tests.test_loaders import snapshot


def corruptions(good, seed=11):
    """(label, damaged bytes) for one good gzip file."""
    rng = random.Random(seed)
    out = []
    for share in (0.1, 0.3, 0.5, 0.7, 0.9):  # one flipped byte inside the deflate data
        data = bytearray(good)
        at = 10 + int((len(good) - 18) * share) + rng.randrange(8)
        data[at] ^= 1 << rng.randrange(8)
        out.append((f"bit flipped at {at}", bytes(data)))
    data = bytearray(good)
    for at in rng.sample(range(10, len(good) - 8), 40):  # a burst of damage
        data[at] = rng.randrange(256)
    out.append(("40 bytes overwritten", bytes(data)))
    out.append(("truncated at half", good[: len(good) // 2]))
    out.append(("last byte missing", good[:-1]))
    crc = bytearray(good)
    crc[-6] ^= 0x40
    out.append(("CRC damaged", bytes(crc)))
    out.append(("garbage after the member", good + b"\0\0garbage"))
    out.append(("header damaged", good[:3] + bytes([good[3] | 0xE0]) + good[4:]))  # reserved flag bits
    return out


def nothing_written(store):
    counts = {t: store.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("loads", "purchases", "refunds", "rejected_events", *sorted(loaders.STAGING_TABLES))}
    return all(n == 0 for n in counts.values()), counts


@pytest.mark.parametrize("kind,make,n", [("purchases", purchases_file, 6_000),
                                         ("online-retail", retail_file, 6_000)])
def test_corrupt_gzip_is_refused_and_the_fixed_file_loads_exactly(tmp_path, monkeypatch, kind, make, n):
    monkeypatch.setattr(loaders, "BATCH_ROWS", 1_000)  # several batches: a partial load would show
    plain = make(tmp_path / "rows.csv", n)
    good = gzip.compress(plain.read_bytes(), mtime=0)
    fixed = tmp_path / "dump.csv.gz"
    fixed.write_bytes(good)
    with CustomerActivityFeatures(tmp_path / "reference.db") as reference:
        expected_report = reference.load(kind, fixed)
        expected = snapshot(reference)

    db = tmp_path / "s.db"
    damaged = tmp_path / "dump.csv.gz"
    seen = 0
    for label, data in corruptions(good):
        damaged.write_bytes(data)
        with CustomerActivityFeatures(db) as store:
            with pytest.raises(LoadError) as info:
                store.load(kind, damaged)
            message = str(info.value)
            assert "dump.csv.gz" in message and "gzip" in message and "byte" in message, (label, message)
            assert "\n" not in message
            clean, counts = nothing_written(store)
            assert clean, (label, counts)
        # the command line: one line, exit 1, no traceback
        result = CliRunner().invoke(cli, ["--db", str(db), "load", kind, str(damaged)], prog_name="caf")
        assert result.exit_code == 1, (label, result.output)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "byte" in lines[0], (label, result.stderr)
        seen += 1
    assert seen == len(corruptions(good))

    fixed.write_bytes(good)  # fixed: the same load now ends as an uninterrupted one
    with CustomerActivityFeatures(db) as store:
        report = store.load(kind, fixed)
        assert report.status == "completed"
        assert (report.read, report.accepted, report.rejected, report.duplicates) == (
            expected_report.read, expected_report.accepted, expected_report.rejected, expected_report.duplicates)
        assert snapshot(store) == expected


def test_byte_offset_points_at_the_damage(tmp_path):
    good = gzip.compress(b"customer_id,order_value,purchase_date,order_id\n" + b"c1,1,2024-01-01,o\n" * 10)
    truncated = tmp_path / "t.csv.gz"
    truncated.write_bytes(good[:-4])
    with CustomerActivityFeatures() as store:
        with pytest.raises(LoadError, match=rf"t\.csv\.gz: truncated gzip file: it ends at byte {len(good) - 4}"):
            store.load("purchases", truncated)
        header = tmp_path / "h.csv.gz"
        header.write_bytes(good + b"\x1f\x8b\x09" + bytes(20))  # a second member whose method byte is wrong
        with pytest.raises(LoadError, match=r"h\.csv\.gz: corrupt gzip file: .*unknown compression method") as info:
            store.load("purchases", header)
        at = int(re.search(r"found at byte (\d+) of", str(info.value)).group(1))
        assert len(good) + 2 <= at <= len(good) + 3  # zlib notices at the method byte or the next one


def test_concatenated_and_zero_padded_members_load(tmp_path):
    text = b"customer_id,order_value,purchase_date,order_id\n" + b"".join(
        b"c%d,1,2024-01-01T00:00:00Z,o%d\n" % (i, i) for i in range(100))
    path = tmp_path / "m.csv.gz"
    path.write_bytes(gzip.compress(text[:1000]) + gzip.compress(text[1000:]) + b"\0" * 16)
    with CustomerActivityFeatures() as store:
        report = store.load("purchases", path)
        assert (report.read, report.accepted) == (100, 100)
