"""Uploaded files before their rows: is it text, which format, how far may it inflate, where do its rows start.

Pure functions over byte streams, in bounded memory (see chunking.py); a file that cannot be read at all
raises FileRejected with the reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .chunking import LongLine, first_line
from .columns import ColumnMap, header_problem
from .csv_rows import CsvLineError, header_cells
from .errors import FileRejected
from .media import MEDIA_TYPES
from .options import METADATA_HINTS, NO_OPTIONS, ReadOptions

_LEADING_BLANK = b"\xef\xbb\xbf \t\r\n\x0b\x0c"
UTF8_BOM = b"\xef\xbb\xbf"

# What common binary files begin with. Anything else is read as text, line by line: a line that is not text
# is that line's reject, so a damaged line never costs a file its good ones.
BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF-", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one)"),
    (b"PK\x05\x06", "an empty ZIP archive"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document (.xls)"),
    (b"PAR1", "a Parquet file"), (b"ARROW1", "an Arrow file"), (b"Obj\x01", "an Avro file"),
    (b"SQLite format 3\x00", "an SQLite database"), (b"\x1f\x8b", "gzip-compressed (name it ....gz)"),
    (b"BZh", "bzip2-compressed"), (b"\xfd7zXZ\x00", "xz-compressed"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"), (b"\x7fELF", "a program (ELF)"),
    (b"\xff\xfe\x00\x00", "UTF-32 text (save it as UTF-8)"), (b"\x00\x00\xfe\xff", "UTF-32 text (save it as UTF-8)"),
    (b"\xff\xfe", "UTF-16 text (save it as UTF-8)"), (b"\xfe\xff", "UTF-16 text (save it as UTF-8)"),
)
# File formats by name, then by content type.
SUFFIX_FORMATS: tuple[tuple[str, str | None], ...] = (
    (".csv", "csv"), (".tsv", None), (".ndjson", "ndjson"), (".jsonl", "ndjson"), (".json", "json"),
)


def binary_format(head: bytes) -> str | None:
    """What binary format a file's first bytes are, or None when they may be text."""
    for signature, name in BINARY_SIGNATURES:
        if head.startswith(signature):
            return name
    return None


def is_gzip_name(key: str) -> bool:
    return key.lower().endswith(".gz")


def detect_format(name: str, content_type: str | None, head: bytes) -> str | None:
    """Format from a file name, else a content type, else the first non-blank byte (None: not one we read)."""
    lowered = name.lower()
    if lowered.endswith(".gz"):
        lowered = lowered[:-3]
    for suffix, fmt in SUFFIX_FORMATS:
        if lowered.endswith(suffix):
            return fmt
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in MEDIA_TYPES:
        return MEDIA_TYPES[ctype]
    text = head.lstrip(_LEADING_BLANK)
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        return "ndjson"
    return "csv"


class Sampler:
    """Keeps up to ``size`` bytes from the first byte that is not white space (or a BOM) on: what the format
    and the binary check look at. Blank bytes before it are dropped as they come, never held."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._sample = bytearray()

    def feed(self, block: bytes) -> bool:
        """Take the next block; True once the sample is full."""
        if not self._sample:
            block = block.lstrip(_LEADING_BLANK)
        self._sample += block[: self._size - len(self._sample)]
        return len(self._sample) >= self._size

    def sample(self) -> bytes:
        return bytes(self._sample)


def sniff(blocks: Iterable[bytes]) -> bytes:
    """The sample of a stream (see Sampler), reading no further than needed."""
    sampler = Sampler()
    for block in blocks:
        if sampler.feed(block):
            break
    return sampler.sample()


@dataclass(frozen=True)
class InflateLimits:
    max_object_bytes: int
    max_ratio: int
    ratio_floor_bytes: int

    def for_size(self, compressed_size: int) -> tuple[int, str]:
        """How far a gzip object of this size may inflate, and the reject's reason past that."""
        by_ratio = max(self.ratio_floor_bytes, self.max_ratio * compressed_size)
        if by_ratio < self.max_object_bytes:
            return by_ratio, (f"the file inflates to more than {self.max_ratio} times its compressed size of "
                              f"{compressed_size} bytes (GZIP_MAX_RATIO): refused as a likely decompression bomb")
        return self.max_object_bytes, (f"the file inflates to more than {self.max_object_bytes} bytes "
                                       "(MAX_OBJECT_BYTES)")


@dataclass(frozen=True)
class CsvStart:
    """Where a CSV file's data rows start, and which column holds what."""

    rows: Iterator[bytes]  # the stream from the first data line on
    columns: dict[str, Any]  # ColumnMap.to_dict()
    offset: int
    first_line: int


def read_csv_header(stream: Iterable[bytes], default_symbol: str | None, max_line_bytes: int,
                    options: ReadOptions = NO_OPTIONS) -> CsvStart:
    """Consume a CSV file's header line (after any blank lines and a BOM); FileRejected if it is unusable.
    When the options name the columns, the file has no header: its rows start at line 1."""
    start = 0
    blocks = iter(stream)
    opening = next(blocks, b"")
    if opening.startswith(UTF8_BOM):
        opening, start = opening[len(UTF8_BOM):], len(UTF8_BOM)
    if options.columns is not None:
        return CsvStart(itertools.chain([opening], blocks), ColumnMap.from_names(options.columns).to_dict(), start, 1)
    found, rest = first_line(itertools.chain([opening], blocks), max_line_bytes, start)
    if found is None:
        raise FileRejected("the file is empty")
    if isinstance(found, LongLine):
        raise FileRejected(f"line {found.number}: the header is longer than the limit of {max_line_bytes} bytes for "
                           "one line (MAX_LINE_BYTES)")
    if b"\x00" in found.text:
        raise FileRejected(f"line {found.number}: the header contains a NUL byte (binary data, not text)")
    try:
        header = header_cells(found.text.decode("utf-8"))
    except UnicodeDecodeError:
        raise FileRejected(f"line {found.number}: the header line is not UTF-8 text") from None
    except CsvLineError as exc:
        raise FileRejected(f"line {found.number}: the header {exc}") from None
    if not header:
        raise FileRejected("the file is empty")
    column_map = ColumnMap.from_header(header, options.renames)
    problem = header_problem(column_map, default_symbol, METADATA_HINTS)
    if problem:
        raise FileRejected(f"line {found.number}: {problem}")
    return CsvStart(rest, column_map.to_dict(), found.end, found.number + 1)
