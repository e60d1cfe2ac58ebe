"""Event ids derived from records: the same parts give the same id, and no part's text
can pass for a boundary between parts."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from mailhooks.sources.ids import derive_event_id

PARTS = st.lists(st.text(alphabet=st.sampled_from("ab\x1f\\x1"), max_size=6), min_size=1, max_size=4)


def test_the_same_parts_give_the_same_id_within_the_event_id_alphabet() -> None:
    first = derive_event_id("kumomta", "Delivery", "spool-1", "r@example.com", 250)
    assert first == derive_event_id("kumomta", "Delivery", "spool-1", "r@example.com", 250)
    assert first.startswith("kumomta:") and len(first) == len("kumomta:") + 32


@given(one=PARTS, other=PARTS)
@example(one=["a\x1fb"], other=["a", "b"])
@example(one=["a\\x1fb"], other=["a\x1fb"])
def test_different_parts_never_give_the_same_id(one: list[str], other: list[str]) -> None:
    # A separator inside a part ("a\x1fb" against "a", "b") or its escape written out
    # ("a\\x1fb") once made two records one event, the second dropped as known.
    if one != other:
        assert derive_event_id("s", *one) != derive_event_id("s", *other)
