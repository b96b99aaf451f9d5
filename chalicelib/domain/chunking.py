"""Splitting a byte stream of text lines into line-aligned chunks, with line numbers.

Used on S3 objects: one streaming pass (constant memory) finds where each chunk starts and ends,
so that processors can each read their own byte range and report rejects by file line number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """Bytes [start, end) of the stream; ``first_line`` is the 1-based line number at ``start``."""

    index: int
    start: int
    end: int
    first_line: int
    data: bytes | None = None  # kept only when the caller asks (compressed sources cannot be range-read)


def split_lines(
    blocks: Iterable[bytes], target_bytes: int, keep_data: bool = False, start: int = 0, first_line: int = 1
) -> Iterator[Chunk]:
    """Yield chunks of about ``target_bytes`` (never splitting a line; a longer line makes a longer chunk).

    ``start`` and ``first_line`` give the stream offset and line number of the first block's first byte.
    """
    buffer = bytearray()
    line = first_line
    index = 0
    for block in blocks:
        buffer += block
        while len(buffer) >= target_bytes:
            cut = buffer.rfind(b"\n", 0, target_bytes)
            if cut < 0:
                cut = buffer.find(b"\n", target_bytes)
                if cut < 0:
                    break  # one long line: wait for its end
            piece = bytes(buffer[: cut + 1])
            yield Chunk(index, start, start + len(piece), line, piece if keep_data else None)
            index += 1
            line += piece.count(b"\n")
            start += len(piece)
            del buffer[: cut + 1]
    if buffer:
        piece = bytes(buffer)
        yield Chunk(index, start, start + len(piece), line, piece if keep_data else None)
