"""Lines out of chunks: a line too long is dropped whole, never read in pieces."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailhooks.ingest.reading import Lines


def test_a_line_over_the_limit_is_dropped_whole_across_chunks() -> None:
    lines = Lines(max_line=10)
    got = lines.feed(b"short\n" + b"x" * 8)
    got += lines.feed(b"x" * 8)  # 16: over the limit, its end not yet read
    got += lines.feed(b"y" * 30)  # still that line: nothing kept
    got += lines.feed(b"zz\nnext\nlast")
    assert got == [b"short", b"next"] and lines.dropped == 1
    assert lines.rest() == b"last"


def test_a_long_line_whole_in_one_chunk_is_dropped_too() -> None:
    lines = Lines(max_line=4)
    assert lines.feed(b"ok\n0123456789\nfine\n") == [b"ok", b"fine"]
    assert lines.dropped == 1 and lines.waiting == 0


@given(text=st.lists(st.sampled_from([b"a", b"\n", b"bbbbbb"]), max_size=40),
       cuts=st.lists(st.integers(1, 7), max_size=40))
def test_how_input_is_cut_into_chunks_changes_nothing(text: list[bytes], cuts: list[int]) -> None:
    data = b"".join(text)
    whole = Lines(max_line=5)
    expected = [*whole.feed(data), whole.rest()]
    lines, got, at = Lines(max_line=5), [], 0
    for cut in cuts:
        got += lines.feed(data[at:at + cut])
        at += cut
    got += [*lines.feed(data[at:]), lines.rest()]
    assert got == expected and lines.dropped == whole.dropped
    assert all(len(line) <= 5 for line in got)
