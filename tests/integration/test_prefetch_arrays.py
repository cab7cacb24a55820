"""The read model's prefetch passes a batch's keys to PostgreSQL as one array literal when they
are plain ids: the rows found must be those the list parameter found, whatever the keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from duhub.readmodel.engine import open_engine
from duhub.readmodel.knowledge import int_array, lookup, text_array
from tests.infra import fresh_database

STORED = ["a1", "NULL", "null", "x.y:z-w_v", 'q"uote', "com,ma", "back\\slash", "宜昌", "{b}", ""]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with fresh_database() as url:
        eng = open_engine(url)
        with eng.begin() as conn:
            for key in STORED:
                conn.exec_driver_sql("INSERT INTO letters (letter_id) VALUES (%s)", (key,))
        yield eng
        eng.dispose()


@pytest.mark.parametrize(
    "keys",
    [
        ["a1", "NULL", "nope", "x.y:z-w_v"],  # plain ids: one literal
        ["null", "NUL", "a1"],
        ['q"uote', "a1"],  # not plain: the list
        ["com,ma", "com", "ma"],
        ["back\\slash", "宜昌", "{b}", ""],
        ["", "a1"],
        [""],
        ["a1"] * 3,
    ],
)
def test_array_literal_finds_what_the_list_finds(engine: Engine, keys: list[str]) -> None:
    sql = "SELECT letter_id FROM letters WHERE letter_id {keys}"
    with engine.connect() as conn:
        found = sorted(r[0] for r in lookup(conn, sql, keys))
        listed = conn.exec_driver_sql(
            "SELECT letter_id FROM letters WHERE letter_id = ANY(%s)", (list(keys),)
        )
        assert found == sorted(r[0] for r in listed)
    assert found == sorted({k for k in keys if k in STORED})


def test_plain_ids_make_one_literal_others_the_list() -> None:
    assert text_array(["a1", "NULL"]) == '{"a1","NULL"}'
    assert text_array(["com,ma"]) == ["com,ma"]
    assert text_array(['q"uote']) == ['q"uote']
    assert int_array([1, 2**63 - 1]) == "{1,9223372036854775807}"


def test_seqs_by_array_literal(engine: Engine) -> None:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT * FROM unnest(%s::text[], %s::bigint[])",
            (text_array(["s1", "NULL", ""]), int_array([1, 2**63 - 1, 3])),
        ).all()
    assert rows == [("s1", 1), ("NULL", 2**63 - 1), ("", 3)]
