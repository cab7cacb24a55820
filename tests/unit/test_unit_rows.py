"""The units the dashboard names, kept in memory: read again once the read model commits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, insert, update

from duhub.readmodel import schema as s
from duhub.readmodel.engine import open_engine
from services.query.http.unit_rows import UnitRows
from tests.infra import database_on

CITY = {"unit_id": "420500", "parent_id": "", "level": 1, "name": "宜昌市", "path": "/420500/"}
COUNTY = {"unit_id": "420581", "parent_id": "420500", "level": 2, "name": "宜都市"}
FLAGS = {"recorded_at": 1, "sample": True, "local_code": False}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with ExitStack() as stack:
        # (On PostgreSQL the plain statement takes an array.)
        url = stack.enter_context(database_on(request.param, tmp_path))
        e = open_engine(url)
        stack.callback(e.dispose)
        with e.begin() as conn:
            conn.execute(insert(s.log_positions), [{"partition": 0, "next_offset": 5}])
            county = {**COUNTY, "path": "/420500/420581/", **FLAGS, "sample": False}
            conn.execute(insert(s.units), [{**CITY, **FLAGS}, county])
        yield e


def statements(engine: Engine, ask: object) -> list[str]:
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        ask()  # type: ignore[operator]
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return [x for x in seen if "units" in x]


def test_units_are_named_as_the_read_model_holds_them(engine: Engine) -> None:
    rows = UnitRows(engine)
    named = rows.named(["420581", "nope", "420500", "420581", ""])
    assert list(named) == ["420581", "nope", "420500", ""]
    assert named["420581"] == {
        "unitId": "420581",
        "name": "宜都市",
        "level": "LEVEL_COUNTY",
        "parentId": "420500",
        "sample": False,
        "parentName": "宜昌市",
    }
    assert named["420500"] == {
        "unitId": "420500",
        "name": "宜昌市",
        "level": "LEVEL_CITY",
        "parentId": "",
        "sample": True,
        "parentName": "",
    }
    # Not in the read model: named by its id, as before.
    assert named["nope"] == {
        "unitId": "nope",
        "name": "nope",
        "parentId": "",
        "level": "LEVEL_UNSPECIFIED",
        "sample": False,
        "parentName": "",
    }
    # Asked again at the same positions: from memory, the same answer.
    assert not statements(engine, lambda: rows.named(["420581", "420500"]))
    assert rows.named(["420581", "420500"]) == {k: named[k] for k in ("420581", "420500")}


def test_a_unit_renamed_or_added_by_a_commit_is_named_so_in_the_next_answer(
    engine: Engine,
) -> None:
    """A read model rebuilt under the server (another reference) holds other names: they are
    not answered from what was kept of the one before."""
    rows = UnitRows(engine)
    assert rows.named(["420581"])["420581"]["parentName"] == "宜昌市"
    assert rows.named(["420581101"])["420581101"]["name"] == "420581101"
    with engine.begin() as conn:
        conn.execute(update(s.units).where(s.units.c.unit_id == "420500").values(name="新市"))
        town = {"unit_id": "420581101", "parent_id": "420581", "level": 3, "name": "陆城街道"}
        conn.execute(insert(s.units), [{**town, "path": "/420500/420581/420581101/", **FLAGS}])
        conn.execute(update(s.log_positions).values(next_offset=9))
    named = rows.named(["420581", "420500", "420581101"])
    assert named["420581"]["parentName"] == "新市"
    assert named["420500"]["name"] == "新市"
    assert named["420581101"]["name"] == "陆城街道"
    assert named["420581101"]["parentName"] == "宜都市"


def test_no_more_units_are_kept_than_allowed(engine: Engine) -> None:
    rows = UnitRows(engine, max_units=1)
    both = rows.named(["420500", "420581"])
    assert not rows._rows  # more than it may keep: none kept, rather than pushing all out
    assert rows.named(["420500"]) == {"420500": both["420500"]}
    assert rows.named(["420581"]) == {"420581": both["420581"]}
    assert list(rows._rows) == ["420581"]  # the first kept went first
    assert rows.named(["420500", "420581"]) == both
