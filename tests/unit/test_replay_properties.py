"""Replay equals live after randomized scenarios (duplicates, rejects, batch splits); counting
from a moment on equals the live figures minus what came before; as-of equals a replay cut."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duhub.convert import to_nanos
from duhub.domain import metrics as m
from duhub.readmodel.digest import digest, figure_diffs, table_digests
from duhub.readmodel.engine import open_engine
from duhub.readmodel.statistics import statistics
from duhub.v1 import events_pb2 as pb
from services.aggregate.replay import replay
from tests.unit.builders import Pipeline
from tests.unit.test_properties import Scenario, run, scenarios

FIGURES = [x for x in m.ALL if x != m.PROBLEMS_OPEN]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(sc=scenarios(), cut=st.floats(0, 1))
def test_replay_equals_live_and_as_of_equals_a_replay_cut(sc: Scenario, cut: float) -> None:
    p = Pipeline.open()
    try:
        run(p, sc)
        whole = open_engine(f"sqlite:///{p.dir / 'whole.db'}")
        done = replay(p.log, whole)
        assert done.done == p.end()
        live, rebuilt = table_digests(p.engine), table_digests(whole)
        assert digest(rebuilt) == digest(live), figure_diffs(p.engine, whole)

        # A cut at some record time equals what as-of answered on the live read model.
        times = sorted({_recorded(r.value) for r in p.log.read(0, 0, p.end())})
        moment = times[min(len(times) - 1, int(cut * len(times)))]
        cut_db = open_engine(f"sqlite:///{p.dir / 'cut.db'}")
        replay(p.log, cut_db, until_ns=moment)
        for group_by in ("", "unit"):
            assert statistics(cut_db, m.ALL, group_by=group_by) == statistics(
                p.engine, m.ALL, group_by=group_by, as_of=moment
            )

        # Counting from that moment on: every figure is the live one minus the cut's.
        since = open_engine(f"sqlite:///{p.dir / 'since.db'}")
        replay(p.log, since, since_ns=moment + 1)
        (now,) = statistics(p.engine, FIGURES)
        (before,) = statistics(cut_db, FIGURES)
        (after,) = statistics(since, FIGURES)
        assert {k: before.values[k] + after.values[k] for k in FIGURES} == now.values
        for engine in (whole, cut_db, since):
            engine.dispose()
    finally:
        p.close()


def _recorded(value: bytes) -> int:
    return to_nanos(pb.Event.FromString(value).recorded_at)
