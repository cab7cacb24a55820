"""The COPY text the PostgreSQL writer renders ahead (`_copy_text`, its fast form) is the
text of every value escaped one by one (`_copy_value`), whatever the values hold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from duhub.readmodel.writer import _copy_text, _copy_value

# Ids and times as the hot tables hold them, and text that needs escaping now and then.
IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,20}", fullmatch=True)
TEXT = st.one_of(IDS, st.text(alphabet="ab\\\t\n\r宜", max_size=6))
INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def escaped(rows: list[tuple[object, ...]]) -> str:
    return "".join("\t".join(map(_copy_value, row)) + "\n" for row in rows)


@given(st.lists(st.tuples(IDS, st.binary(max_size=40), TEXT, INTS, INTS), min_size=1))
def test_rows_with_bytes_render_as_escaped_one_by_one(rows) -> None:  # type: ignore[no-untyped-def]
    assert _copy_text(rows) == escaped(rows)


@given(st.lists(st.tuples(TEXT, INTS, IDS, TEXT, INTS), min_size=1))
def test_rows_without_bytes_render_as_escaped_one_by_one(rows) -> None:  # type: ignore[no-untyped-def]
    assert _copy_text(rows) == escaped(rows)


def test_a_table_of_one_column() -> None:
    assert _copy_text([("l1",), ("l\\2",)]) == "l1\nl\\\\2\n"
