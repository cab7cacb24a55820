"""Metric names, as the contract spells them."""

from __future__ import annotations

from duhub.domain.events import TalkKind

VISITS = "visits"
PROBLEMS_FOUND = "problems_found"
PROBLEMS_RECTIFIED = "problems_rectified"
PROBLEMS_OPEN = "problems_open"
ACCOUNTABILITY_PERSONS = "accountability_persons"
SANCTIONED_PERSONS = "sanctioned_persons"
TALK_PERSONS = "talk_persons"
RECOMMENDATIONS = "recommendations"
REGULATIONS_IMPROVED = "regulations_improved"

TALK_PERSONS_BY_KIND = {
    TalkKind.TOP_LEADER: "talk_persons_top_leader",
    TalkKind.ADMONISHMENT: "talk_persons_admonishment",
    TalkKind.OTHER: "talk_persons_other",
}

# Metrics kept as sums in rollups; problems_open is derived from two of them.
COUNTED = (
    VISITS,
    PROBLEMS_FOUND,
    PROBLEMS_RECTIFIED,
    ACCOUNTABILITY_PERSONS,
    SANCTIONED_PERSONS,
    TALK_PERSONS,
    *TALK_PERSONS_BY_KIND.values(),
    RECOMMENDATIONS,
    REGULATIONS_IMPROVED,
)
ALL = (*COUNTED[:3], PROBLEMS_OPEN, *COUNTED[3:])


def each_once(names: list[str]) -> list[str]:
    """Return the metrics asked for, each once, in the order first named: an answer's values
    are a map from name to figure, which holds a name once, so every surface answers so."""
    return list(dict.fromkeys(names))
