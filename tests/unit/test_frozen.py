"""`quick_init`: the per-event domain values construct faster yet behave as frozen dataclasses."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from duhub.domain.events import Event, SupervisionVisit
from duhub.domain.frozen import quick_init
from duhub.domain.model import Problem


def _visit() -> SupervisionVisit:
    return SupervisionVisit("c1", "g1", "u1", "ecology", 2)


def test_fields_and_defaults_as_the_dataclass_sets_them() -> None:
    e = Event("e1", "s1", 3, 10, 20, _visit())
    assert (e.event_id, e.source, e.seq, e.occurred_at, e.recorded_at) == ("e1", "s1", 3, 10, 20)
    assert (e.digest, e.stored_hash, e.partition, e.offset) == (b"", b"", -1, -1)
    by_name = Event(
        event_id="e1",
        source="s1",
        seq=3,
        occurred_at=10,
        recorded_at=20,
        payload=_visit(),
        offset=7,
    )
    assert by_name.offset == 7 and by_name.payload == _visit()


def test_still_frozen_equal_hashable_and_picklable() -> None:
    e = Event("e1", "s1", 3, 10, 20, _visit())
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.seq = 4  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del e.source  # type: ignore[misc]
    assert e == Event("e1", "s1", 3, 10, 20, _visit())
    assert {e, Event("e1", "s1", 3, 10, 20, _visit())} == {e}
    assert pickle.loads(pickle.dumps(e)) == e
    assert dataclasses.replace(Problem("p1", "u1", "ecology", 5), rectified_at=9).rectified_at == 9


def test_wrong_arguments_are_refused_as_by_the_dataclass() -> None:
    with pytest.raises(TypeError, match=r"Event.__init__\(\) missing 5 required"):
        Event("e1")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        SupervisionVisit("c1", "g1", "u1", "ecology", 2, bogus=1)  # type: ignore[call-arg]


def test_refuses_what_it_would_not_construct_alike() -> None:
    @dataclasses.dataclass(slots=True)
    class Mutable:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Post:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (Mutable, Factory, Post):
        with pytest.raises(TypeError, match="quick_init"):
            quick_init(cls)
