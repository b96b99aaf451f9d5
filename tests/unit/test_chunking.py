"""Splitting a byte stream into line-aligned chunks with correct offsets and first line numbers."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.chunking import (
    INFLATE_STEP,
    Chunk,
    FirstLine,
    InflateLimit,
    LongLine,
    first_line,
    gunzip,
    split_lines,
)

line_text = st.text(alphabet=st.sampled_from("ab,1.9 é"), max_size=30)
documents = st.builds(
    lambda lines, eol, final: eol.join(lines).encode() + (eol.encode() if final else b""),
    st.lists(line_text, max_size=40),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)


@st.composite
def split_points(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """The same bytes cut into arbitrary blocks, as a stream would deliver them."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(edges)]


def chunks_of(blocks: list[bytes], target: int, start: int = 0, first_line: int = 1) -> list[Chunk]:
    return list(split_lines(blocks, target, keep_data=True, start=start, first_line=first_line))


@settings(max_examples=100, deadline=None)
@given(data=st.data(), document=documents, target=st.integers(1, 64),
       start=st.integers(0, 10_000), first_line=st.integers(1, 1000))
def test_chunks_are_line_aligned_and_cover_the_input(
    data: st.DataObject, document: bytes, target: int, start: int, first_line: int
) -> None:
    blocks = data.draw(split_points(document))
    chunks = chunks_of(blocks, target, start, first_line)

    # The concatenation is the input, and offsets are contiguous from ``start``.
    assert b"".join(c.data or b"" for c in chunks) == document
    assert [c.index for c in chunks] == list(range(len(chunks)))
    offset = start
    for chunk in chunks:
        assert chunk.start == offset
        assert chunk.end - chunk.start == len(chunk.data or b"")
        offset = chunk.end
    assert offset == start + len(document)

    for i, chunk in enumerate(chunks):
        piece = chunk.data or b""
        assert piece  # never an empty chunk
        # Every chunk but the last ends a line; so a CRLF is never split.
        if i < len(chunks) - 1:
            assert piece.endswith(b"\n")
        # The first line number is the 1-based line at the chunk's start.
        assert chunk.first_line == first_line + document[: chunk.start - start].count(b"\n")
        # About target bytes: longer only when a single line is longer than the target.
        if len(piece) > target:
            assert piece.count(b"\n") <= 1 and (b"\n" not in piece[:-1])
        # And not cut earlier than needed: the next line would not have fitted.
        if i < len(chunks) - 1:
            next_piece = chunks[i + 1].data or b""
            next_line = next_piece[: next_piece.find(b"\n") + 1] if b"\n" in next_piece else next_piece
            assert len(piece) + len(next_line) > target - 1


@settings(max_examples=100, deadline=None)
@given(data=st.data(), document=documents, target=st.integers(1, 64))
def test_chunks_do_not_depend_on_how_the_stream_is_blocked(data: st.DataObject, document: bytes, target: int) -> None:
    whole = chunks_of([document], target)
    assert chunks_of(data.draw(split_points(document)), target) == whole
    assert chunks_of([bytes([b]) for b in document], target) == whole


@settings(max_examples=100, deadline=None)
@given(document=documents, target=st.integers(1, 64), first_line=st.integers(1, 50))
def test_each_line_keeps_its_file_line_number(document: bytes, target: int, first_line: int) -> None:
    expected = {n + first_line: line for n, line in enumerate(document.decode().splitlines())}
    seen: dict[int, str] = {}
    for chunk in chunks_of([document], target, first_line=first_line):
        for offset, line in enumerate((chunk.data or b"").decode().splitlines()):
            seen[chunk.first_line + offset] = line
    assert seen == expected


def test_without_keep_data_only_offsets_are_returned() -> None:
    chunks = list(split_lines([b"a,1\nb,2\nc,3\n"], 5, start=100, first_line=2))
    assert [(c.start, c.end, c.first_line, c.data) for c in chunks] == [
        (100, 104, 2, None), (104, 108, 3, None), (108, 112, 4, None),
    ]


@pytest.mark.parametrize(
    ("document", "target", "expected"),
    [
        (b"", 10, []),
        (b"abc", 10, [(0, 3, 1)]),
        (b"a\nb\nc\n", 100, [(0, 6, 1)]),
        (b"a\nb\nc\n", 4, [(0, 4, 1), (4, 6, 3)]),
        (b"a very long line\nx\n", 4, [(0, 17, 1), (17, 19, 2)]),
        (b"a\r\nb\r\n", 3, [(0, 3, 1), (3, 6, 2)]),
    ],
)
def test_split_examples(document: bytes, target: int, expected: list[tuple[int, int, int]]) -> None:
    assert [(c.start, c.end, c.first_line) for c in split_lines([document], target)] == expected


# ------------------------------------------------------------------ lines longer than the limit
long_documents = st.builds(
    lambda lines, final: b"\n".join(lines) + (b"\n" if final else b""),
    st.lists(st.one_of(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"x")),
                       st.integers(0, 90).map(lambda n: b"L" * n)), max_size=30),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), document=long_documents, target=st.integers(1, 64), limit=st.integers(1, 40),
       start=st.integers(0, 100), first=st.integers(1, 100))
def test_long_lines_are_set_aside_and_everything_else_is_chunked(
    data: st.DataObject, document: bytes, target: int, limit: int, start: int, first: int
) -> None:
    blocks = data.draw(split_points(document))
    parts = list(split_lines(blocks, target, keep_data=True, start=start, first_line=first, max_line_bytes=limit))

    # The parts tile the input in order; chunks are numbered 0, 1, 2...
    offset = start
    for part in parts:
        assert part.start == offset and part.end > part.start
        offset = part.end
    assert offset == start + len(document)
    chunks = [p for p in parts if isinstance(p, Chunk)]
    assert [c.index for c in chunks] == list(range(len(chunks)))

    # Exactly the lines longer than the limit are set aside, each with its own line number.
    lines = document.split(b"\n")
    if document.endswith(b"\n"):
        lines.pop()
    expected_long = [first + n for n, line in enumerate(lines)
                     if len(line[:-1] if line.endswith(b"\r") else line) > limit]  # a final CR ends the line
    assert [p.number for p in parts if isinstance(p, LongLine)] == expected_long
    for chunk in chunks:
        assert chunk.data == document[chunk.start - start : chunk.end - start]
        assert chunk.first_line == first + document[: chunk.start - start].count(b"\n")
        assert all(len(line[:-1] if line.endswith(b"\r") else line) <= limit
                   for line in (chunk.data or b"").split(b"\n"))
        assert chunk.blank == (not (chunk.data or b"").strip())


def test_a_crlf_line_of_exactly_the_limit_is_not_long() -> None:
    parts = list(split_lines([b"a" * 10 + b"\r\n" + b"b" * 11 + b"\r\n"], 100, max_line_bytes=10))
    assert [type(p).__name__ for p in parts] == ["Chunk", "LongLine"]


def test_a_line_without_end_is_skipped_in_bounded_memory() -> None:
    def spaces() -> Iterator[bytes]:
        yield b"a,1\n"
        for _ in range(2048):  # 2 GiB of spaces, no newline, never held at once
            yield b" " * (1 << 20)

    parts = list(split_lines(spaces(), 4 << 20, max_line_bytes=1 << 20))
    assert [(type(p).__name__, p.start, p.end) for p in parts] == [
        ("Chunk", 0, 4), ("LongLine", 4, 4 + (2048 << 20))]


@pytest.mark.parametrize(
    ("document", "expected", "rest"),
    [
        (b"", None, b""),
        (b"\n\n \r\n\t\n", None, b""),
        (b"symbol,price\nA,1\n", FirstLine(1, b"symbol,price", 13), b"A,1\n"),
        (b"\n" * 5000 + b"symbol,price\r\nA,1\n", FirstLine(5001, b"symbol,price", 5014), b"A,1\n"),
        (b"  \n  symbol\n", FirstLine(2, b"  symbol", 12), b""),
        (b"\nsymbol", FirstLine(2, b"symbol", 7), b""),
        (b"\n" + b"x" * 20 + b"\nA\n", LongLine(2, 1, 22), None),
        (b"\n" + b"x" * 20, LongLine(2, 1, 21), None),
        (b"\n" + b" " * 40 + b"\nsymbol\n", FirstLine(3, b"symbol", 49), b""),  # a long blank line is blank
        (b" " * 40, None, b""),
        (b"\n" + b" " * 20 + b"symbol\n", LongLine(2, 1, 28), None),
        (b"x" * 16 + b"\r\nA\n", FirstLine(1, b"x" * 16, 18), b"A\n"),  # exactly the limit, with CRLF
    ],
)
def test_first_line(document: bytes, expected: object, rest: bytes | None) -> None:
    for blocks in ([document], [bytes([b]) for b in document]):
        found, stream = first_line(blocks, 16)
        if isinstance(expected, LongLine):  # where its end is depends on how far the stream was read
            assert isinstance(found, LongLine) and (found.number, found.start) == (expected.number, expected.start)
            continue
        assert found == expected
        if rest is not None:
            assert b"".join(stream) == rest


def test_first_line_skips_any_number_of_blank_lines() -> None:
    def blanks() -> Iterator[bytes]:
        for _ in range(256):  # 256 MiB of newlines, never held at once
            yield b"\n" * (1 << 20)
        yield b"symbol,price\n"

    found, _ = first_line(blanks(), 1 << 20)
    assert found == FirstLine(256 * (1 << 20) + 1, b"symbol,price", 256 * (1 << 20) + 13)


def test_gunzip_inflates_members_and_caps_the_output() -> None:
    data = gzip.compress(b"a" * 5000) + gzip.compress(b"b" * 10)
    assert b"".join(gunzip([data])) == b"a" * 5000 + b"b" * 10
    assert b"".join(gunzip([bytes([b]) for b in data])) == b"a" * 5000 + b"b" * 10
    with pytest.raises(InflateLimit, match="more than 4000 bytes"):
        b"".join(gunzip([data], max_output=4000))
    with pytest.raises(zlib.error, match="truncated"):
        b"".join(gunzip([data[:-12]]))
    with pytest.raises(zlib.error):
        b"".join(gunzip([b"not gzip at all"]))


def test_gunzip_of_a_bomb_never_holds_more_than_a_step() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)  # 64 MiB from about 64 KB
    assert max(len(piece) for piece in gunzip([bomb])) <= INFLATE_STEP
