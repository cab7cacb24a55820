"""A library's line repeated many times a second is held back: in a Kafka outage aiokafka
logged ~8,000 "Unable connect to node" lines a second in ingest (a chaos probe). The first goes
out, then one every ten seconds saying how many were held back; duhub's own lines all go out."""

from __future__ import annotations

import logging

from duhub.logrepeats import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_a_library_line_repeated_goes_out_once_then_with_the_count_held_back() -> None:
    clock = Clock()
    f = RepeatFilter(["aiokafka"], every=10.0, clock=clock)
    passed = []
    for i in range(8_000):
        clock.now = i / 1_000  # 8 s of a line a millisecond
        r = record("aiokafka.conn", "Unable connect to node with id %s: %s", 1, f"refused {i}")
        if f.filter(r):
            passed.append(r.getMessage())
    assert passed == ["Unable connect to node with id 1: refused 0"]
    clock.now = 10.5
    r = record("aiokafka.conn", "Unable connect to node with id %s: %s", 1, "refused again")
    assert f.filter(r)
    assert r.getMessage() == (
        "Unable connect to node with id 1: refused again (7999 more like it held back in 10 s)"
    )
    # Another template of the same library is its own line.
    assert f.filter(record("aiokafka.client", "Unable to update metadata from %s", [1]))


def test_duhubs_own_lines_are_never_held_back() -> None:
    clock = Clock()
    f = RepeatFilter(["aiokafka", "kafka"], clock=clock)
    lines = [record("duhub.health", "health: %s unreachable", "log") for _ in range(100)]
    assert all(f.filter(r) for r in lines)
    # A library whose name only begins like one held back is not one.
    assert all(f.filter(record("kafkaesque", "x")) for _ in range(3))
