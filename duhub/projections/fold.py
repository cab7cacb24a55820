"""Decide and project one event: the step every driver (ingest, aggregator, replay) takes."""

from __future__ import annotations

from duhub.domain import rules
from duhub.domain.events import Event, Nanos
from duhub.domain.rules import Verdict
from duhub.projections.effects import Effect
from duhub.projections.project import project
from duhub.projections.working_set import WorkingSet


def fold(
    event: Event,
    ws: WorkingSet,
    now: Nanos,
    *,
    allow_reference: bool = False,
    rollups: bool = True,
) -> tuple[Verdict, list[Effect]]:
    """Check the event against `ws`; when accepted, apply its effects to `ws` and return them
    (without the rollups' when `rollups` is False: see `project`)."""
    verdict = rules.check(event, ws, now, allow_reference=allow_reference)
    if verdict is not rules.ACCEPTED:
        return verdict, []
    effects = project(event, ws, rollups=rollups)
    ws.apply(effects)
    return verdict, effects
