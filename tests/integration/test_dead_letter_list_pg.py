"""Dead letters keep their source and record time on PostgreSQL too, are listed by them, and a
read model of an earlier layout there gets both from the log, once (`duhub deadletters`)."""

from __future__ import annotations

from sqlalchemy import text

from duhub.readmodel.dead_letter_fill import fill_dead_letters
from duhub.readmodel.dead_letters import list_dead_letters
from duhub.readmodel.engine import open_engine
from tests.infra import fresh_database
from tests.unit.builders import CITY, DANG, YIDU
from tests.unit.refused import T2, opened, refuse
from tests.unit.test_dead_letter_list import as_written_before


def test_dead_letters_are_listed_and_upgraded_on_postgresql() -> None:
    with fresh_database() as url:
        p = opened(url)
        try:
            offsets = refuse(p)
            yidu_4, dang_3, garbage, yidu_5 = offsets
            every = list_dead_letters(p.engine)
            assert [d.offset for d in every.letters] == [yidu_5, dang_3, yidu_4, garbage]
            assert [d.source for d in every.letters] == [YIDU, DANG, YIDU, ""]
            assert [d.offset for d in list_dead_letters(p.engine, within=YIDU).letters] == [
                yidu_5,
                yidu_4,
            ]
            assert len(list_dead_letters(p.engine, within=CITY).letters) == 3
            assert [d.offset for d in list_dead_letters(p.engine, since=T2).letters] == [
                yidu_5,
                dang_3,
            ]
            written = [(d.offset, d.source, d.recorded_at) for d in every.letters]

            as_written_before(p)
            p.engine.dispose()
            upgraded = open_engine(url)  # the columns come back, empty
            try:
                assert {d.source for d in list_dead_letters(upgraded).letters} == {""}
                assert fill_dead_letters(p.log, upgraded).sourced == 3
                again = [
                    (d.offset, d.source, d.recorded_at) for d in list_dead_letters(upgraded).letters
                ]
                assert again == written
                with upgraded.begin() as conn:  # claimed: not read from the log twice
                    conn.execute(text("UPDATE dead_letters SET source = NULL, recorded_at = NULL"))
                assert fill_dead_letters(p.log, upgraded).sourced == 0
            finally:
                upgraded.dispose()
        finally:
            p.close()
