"""Splitting a byte stream into line-aligned chunks with correct offsets and first line numbers."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.chunking import Chunk, split_lines

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
