"""State in memory over a base `Knowledge`: what a batch (or ingest's unapplied tail) has
added on top of what the read model holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from duhub.domain.knowledge import Knowledge
from duhub.domain.model import Campaign, Problem, Unit
from duhub.projections.effects import (
    CampaignAdded,
    Effect,
    LetterAdded,
    ProblemAdded,
    ProblemClosed,
    Seen,
    UnitAdded,
)

V = TypeVar("V")


def _found_once(memo: dict[str, V], ask: Callable[[str], V | None], key: str) -> V | None:
    """Return what `ask` answers for `key`, asking only until it has found it."""
    found = memo.get(key)
    if found is None:
        found = ask(key)
        if found is not None:
            memo[key] = found
    return found


class WorkingSet:
    def __init__(self, base: Knowledge) -> None:
        self.base = base
        self.units: dict[str, Unit] = {}
        self.campaigns: dict[str, Campaign] = {}
        self.problems: dict[str, Problem] = {}
        self.letters: set[str] = set()
        self.digests: dict[str, bytes] = {}
        self.seqs: dict[tuple[str, int], str] = {}
        self.heads: dict[str, bytes] = {}
        # What the base answered: units and campaigns never change once registered, and a
        # few are asked for by every event (the base may be a chain: the batch being written,
        # then the read model).
        self._base_units: dict[str, Unit] = {}
        self._base_campaigns: dict[str, Campaign] = {}

    def unit(self, unit_id: str) -> Unit | None:
        # The base's answers first: most events name units registered before the batch.
        found = self._base_units.get(unit_id) or self.units.get(unit_id)
        if found is None:
            found = self.base.unit(unit_id)
            if found is not None:
                self._base_units[unit_id] = found
        return found

    def campaign(self, campaign_id: str) -> Campaign | None:
        return self.campaigns.get(campaign_id) or _found_once(
            self._base_campaigns, self.base.campaign, campaign_id
        )

    def problem(self, problem_id: str) -> Problem | None:
        return self.problems.get(problem_id) or self.base.problem(problem_id)

    def has_letter(self, letter_id: str) -> bool:
        return letter_id in self.letters or self.base.has_letter(letter_id)

    # Asked for every event, and the base may be a chain of working sets (the batches written
    # behind, then the read model): walked in a loop, not a call per link.
    def event_digest(self, event_id: str) -> bytes | None:
        ws: Knowledge = self
        while type(ws) is WorkingSet:
            found = ws.digests.get(event_id)
            if found is not None:
                return found
            ws = ws.base
        return ws.event_digest(event_id)

    def seq_owner(self, source: str, seq: int) -> str | None:
        key = (source, seq)
        ws: Knowledge = self
        while type(ws) is WorkingSet:
            found = ws.seqs.get(key)
            if found:
                return found
            ws = ws.base
        return ws.seq_owner(source, seq)

    def source_head(self, source: str) -> bytes | None:
        found = self.heads.get(source)
        return found if found is not None else self.base.source_head(source)

    def apply(self, effects: list[Effect]) -> None:
        """Take in the state changes of one event's effects (rollups are not state)."""
        for e in effects:
            take = _TAKE.get(type(e))  # by type: most effects are rollups', which take nothing
            if take is not None:
                take(self, e)

    def _seen(self, e: Seen) -> None:
        self.digests[e.event_id] = e.digest
        self.seqs[(e.source, e.seq)] = e.event_id
        if e.stored_hash:
            self.heads[e.source] = e.stored_hash

    def _unit_added(self, e: UnitAdded) -> None:
        self.units[e.unit.unit_id] = e.unit

    def _campaign_added(self, e: CampaignAdded) -> None:
        self.campaigns[e.campaign.campaign_id] = e.campaign

    def _problem_added(self, e: ProblemAdded) -> None:
        self.problems[e.problem.problem_id] = e.problem

    def _problem_closed(self, e: ProblemClosed) -> None:
        problem = self.problem(e.problem_id)
        if problem is not None:
            self.problems[e.problem_id] = replace(problem, rectified_at=e.at)

    def _letter_added(self, e: LetterAdded) -> None:
        self.letters.add(e.letter_id)


_TAKE: dict[type, Callable[[WorkingSet, Any], None]] = {
    Seen: WorkingSet._seen,
    UnitAdded: WorkingSet._unit_added,
    CampaignAdded: WorkingSet._campaign_added,
    ProblemAdded: WorkingSet._problem_added,
    ProblemClosed: WorkingSet._problem_closed,
    LetterAdded: WorkingSet._letter_added,
}
