"""Reading a byte stream of text lines in bounded memory: line-aligned chunks with line numbers, over-long
lines set aside, the first non-blank line, and gzip inflation under a size cap.

Used on S3 objects: one streaming pass finds where each chunk starts and ends, so that processors can each
read their own byte range and report rejects by file line number. Whatever the input (a 2 GiB line with
no newline, a gzip bomb), memory stays within about ``target_bytes + 2 * max_line_bytes`` plus one block.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_BLANK = b" \t\r\n\x0b\x0c"
INFLATE_STEP = 1 << 20  # bytes of output per zlib call, so one small block cannot inflate into gigabytes at once


@dataclass(frozen=True)
class Chunk:
    """Bytes [start, end) of the stream; ``first_line`` is the 1-based line number at ``start``."""

    index: int
    start: int
    end: int
    first_line: int
    data: bytes | None = None  # kept only when the caller asks (compressed sources cannot be range-read)
    blank: bool = False  # only white space: nothing to parse


@dataclass(frozen=True)
class LongLine:
    """Line ``number`` spans bytes [start, end) (its newline included) and is longer than the limit."""

    number: int
    start: int
    end: int


@dataclass(frozen=True)
class FirstLine:
    """The first line that is not blank: its number, its bytes without the line end, and where it ends."""

    number: int
    text: bytes
    end: int  # stream offset just after its newline


def _first_long_line(buffer: bytearray, limit: int) -> tuple[int, int | None] | None:
    """Start and end (after its newline; None if the buffer ends inside it) of the first line in ``buffer``
    longer than ``limit`` bytes (line end excluded); None when there is none so far.

    A line longer than ``limit`` covers at least one whole aligned window of ``limit // 2`` bytes, so only
    windows without a newline need a closer look: a handful of C-speed finds per megabyte.
    """
    half = max(1, limit // 2)
    size = len(buffer)
    window = 0
    while window + half <= size:
        if buffer.find(b"\n", window, window + half) >= 0:
            window += half
            continue
        line_start = buffer.rfind(b"\n", 0, window) + 1
        newline = buffer.find(b"\n", window + half)
        line_end = size if newline < 0 else newline
        if line_end > line_start and buffer[line_end - 1] == 13:  # a CRLF's CR (perhaps its LF still to come)
            line_end -= 1  # is the line's end, not its text
        if line_end - line_start > limit:
            return line_start, None if newline < 0 else newline + 1
        if newline < 0:
            return None
        window = newline + 1
    return None


def split_lines(
    blocks: Iterable[bytes], target_bytes: int, keep_data: bool = False, start: int = 0, first_line: int = 1,
    max_line_bytes: int | None = None,
) -> Iterator[Chunk | LongLine]:
    """Yield chunks of about ``target_bytes`` (never splitting a line) and, between them, the lines longer
    than ``max_line_bytes``, which are skipped without being buffered whole.

    ``start`` and ``first_line`` give the stream offset and line number of the first block's first byte.
    Chunks are numbered from 0 in order; a line longer than ``target_bytes`` (but within the limit) makes
    a longer chunk.
    """
    buffer = bytearray()  # always begins at a line start, at stream offset ``start``, line ``line``
    line = first_line
    index = 0
    skipping: int | None = None  # stream offset where the long line being skipped began

    def cut(length: int) -> Chunk:
        nonlocal buffer, start, line, index
        piece = bytes(buffer[:length])
        chunk = Chunk(index, start, start + length, line, piece if keep_data else None,
                      blank=not piece.strip(_BLANK))
        index += 1
        line += piece.count(b"\n")
        start += length
        del buffer[:length]
        return chunk

    def full_chunks() -> Iterator[Chunk]:
        while len(buffer) >= target_bytes:
            end = buffer.rfind(b"\n", 0, target_bytes)
            if end < 0:
                end = buffer.find(b"\n", target_bytes)
                if end < 0:
                    return  # one line longer than the target: wait for its end
            yield cut(end + 1)

    for block in blocks:
        if skipping is not None:
            newline = block.find(b"\n")
            if newline < 0:
                start += len(block)
                continue
            start += newline + 1
            yield LongLine(line, skipping, start)
            line += 1
            skipping = None
            block = block[newline + 1 :]
        buffer += block
        while max_line_bytes is not None:
            found = _first_long_line(buffer, max_line_bytes)
            if found is None:
                break
            line_start, line_end = found
            before = line_start  # the complete lines ahead of the long one go out as chunks first
            while before > 0:
                length = before
                if before > target_bytes:
                    newline = buffer.rfind(b"\n", 0, target_bytes)
                    length = (newline if newline >= 0 else buffer.find(b"\n", target_bytes)) + 1
                yield cut(length)
                before -= length
            if line_end is None:
                skipping = start
                start += len(buffer)
                buffer.clear()
                break
            length = line_end - line_start
            yield LongLine(line, start, start + length)
            line += 1
            start += length
            del buffer[:length]
        yield from full_chunks()
    if skipping is not None:
        yield LongLine(line, skipping, start)
    elif buffer:
        yield cut(len(buffer))


def first_line(
    blocks: Iterable[bytes], max_line_bytes: int, start: int = 0, number: int = 1
) -> tuple[FirstLine | LongLine | None, Iterator[bytes]]:
    """The first line that is not blank (skipping any number of blank lines, of any length, in bounded
    memory), and the stream after it. A line longer than ``max_line_bytes`` in its place comes back as a
    LongLine whose end is only as far as reading went; None means the stream holds only blank lines."""
    stream = iter(blocks)
    buffer = bytearray()
    dropped = 0  # blank bytes of the current line already let go (the line may still turn out blank)
    for block in stream:
        buffer += block
        # Drop whole blank lines at the front; keep the line the first non-blank byte is on.
        blank = len(buffer) - len(buffer.lstrip(_BLANK))
        newline = buffer.rfind(b"\n", 0, blank)
        if newline >= 0:
            number += buffer.count(b"\n", 0, newline + 1)
            start += dropped + newline + 1
            dropped = 0
            del buffer[: newline + 1]
            blank -= newline + 1
        if blank == len(buffer):  # nothing but blanks so far on this line: past the limit, keep only their count
            if len(buffer) > max_line_bytes:
                dropped += len(buffer)
                buffer.clear()
            continue
        end = buffer.find(b"\n", blank)
        if end < 0:
            if dropped + len(buffer) - buffer.endswith(b"\r") > max_line_bytes:
                return LongLine(number, start, start + dropped + len(buffer)), stream
            continue
        length = end - 1 if end > 0 and buffer[end - 1] == 13 else end
        if dropped + length > max_line_bytes:
            return LongLine(number, start, start + dropped + end + 1), stream
        text = bytes(buffer[:end])
        return FirstLine(number, text[:-1] if text.endswith(b"\r") else text, start + dropped + end + 1), \
            itertools.chain([bytes(buffer[end + 1 :])], stream)
    if buffer.strip(_BLANK):
        return FirstLine(number, bytes(buffer), start + dropped + len(buffer)), iter(())
    return None, iter(())


class InflateLimit(ValueError):
    """The inflated stream grew past the allowed size."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"inflates to more than {limit} bytes")
        self.limit = limit


def gunzip(blocks: Iterable[bytes], max_output: int | None = None) -> Iterator[bytes]:
    """Inflate a gzip stream (concatenated members too), at most ``INFLATE_STEP`` bytes at a time.

    Raises zlib.error for data that is not gzip or ends early, InflateLimit past ``max_output`` bytes.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total = 0
    padding = False  # zero bytes after the last member, which gzip(1) and Python's gzip accept
    for block in blocks:
        data = block
        if padding:
            if block.strip(b"\0"):
                raise zlib.error("data after the zero padding that ends the gzip stream")
            continue
        while data:
            out = inflater.decompress(data, INFLATE_STEP)
            data = inflater.unconsumed_tail
            if out:
                total += len(out)
                if max_output is not None and total > max_output:
                    raise InflateLimit(max_output)
                yield out
            if inflater.eof:
                data = inflater.unused_data  # the next member, if any
                if data and not data.strip(b"\0"):
                    padding, data = True, b""
                elif data:
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    if not inflater.eof:
        raise zlib.error("the gzip stream is truncated")
