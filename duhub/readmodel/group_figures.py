"""Answer a campaign's figures per group and tier: how many visits each group made in a period.

Read from the visit facts that name the campaign (`facts.campaign_id`, `group_id`), by the
index on them: the cost follows the campaign's visits in the period, not the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from duhub.convert import from_nanos
from duhub.domain import metrics as m
from duhub.domain.events import Nanos, Tier
from duhub.readmodel import schema as s
from duhub.readmodel.engine import plain_rows, snapshot
from duhub.readmodel.layout import FACT_CAMPAIGNS
from duhub.readmodel.statistics import NotFound
from duhub.readmodel.stats_rules import QueryError, check_statistics
from duhub.readmodel.units import resolve_scope

# What a group of a campaign makes: its visits. Other figures name no group.
GROUP_METRICS = (m.VISITS,)
GROUPINGS = ("", "group", "tier")
# An unset bound of the period (event times are int64 nanoseconds).
UNBOUNDED = 2**63 - 1


@dataclass(frozen=True, slots=True)
class GroupRow:
    key: str  # the group's id, or the tier's name ("" for the campaign)
    name: str
    tier: Tier | None
    values: dict[str, int]
    events: dict[str, int]


@dataclass(frozen=True, slots=True)
class GroupFigures:
    # Per group in the campaign's order, per tier, or the one campaign row (ungrouped).
    rows: list[GroupRow]
    # Grouped by group: each tier's sum of its groups' rows (else empty).
    tiers: list[GroupRow]
    # The campaign's figures: the sum of the rows.
    total: GroupRow


def tier_key(tier: Tier) -> str:
    return tier.name.lower().replace("_", "-")  # task-force, city, county


def group_figures(
    engine: Engine,
    campaign_id: str,
    metrics: Sequence[str],
    scope_unit_id: str = "",
    area: str = "",
    lo: Nanos | None = None,
    hi: Nanos | None = None,
    group_by: str = "",
    as_of: Nanos | None = None,
) -> GroupFigures:
    """Return a campaign's figures for a scope (its whole subtree), area and period [lo, hi)
    of event time, per group or tier; as the hub knew them at `as_of`."""
    check_statistics(metrics, area, lo, hi)  # as the rollups' figures refuse them
    for metric in metrics:
        if metric not in GROUP_METRICS:
            raise QueryError(
                f"metrics: {metric!r} is not counted per campaign group; with campaign_id only "
                f"{', '.join(GROUP_METRICS)} (what a campaign's groups make) may be asked"
            )
    if group_by not in GROUPINGS:
        raise QueryError(
            "group_by: with campaign_id only group or tier (or none): a campaign's figures "
            "are per group, not per unit or period"
        )
    with snapshot(engine) as conn:
        scope = resolve_scope(conn, scope_unit_id)
        found = plain_rows(
            conn, "SELECT recorded_at FROM campaigns WHERE campaign_id = ?", (campaign_id,)
        )
        if not found:
            raise NotFound(f"campaign_id: unknown campaign '{campaign_id}'")
        if as_of is not None and found[0][0] > as_of:
            raise NotFound(
                f"as_of: campaign '{campaign_id}' was not yet recorded at that moment (it was "
                f"recorded at {from_nanos(found[0][0]).ToJsonString()})"
            )
        if not plain_rows(conn, "SELECT 1 FROM layout WHERE name = ?", (FACT_CAMPAIGNS,)):
            raise QueryError(
                "campaign_id: this read model's visits were counted before facts kept their "
                "campaign, and have not been given it yet: the aggregator (or 'duhub serve') "
                "reads it from the log when it next starts; ask again then"
            )
        groups = plain_rows(
            conn,
            "SELECT group_id, name, tier FROM campaign_groups WHERE campaign_id = ? "
            "ORDER BY ordinal",
            (campaign_id,),
        )
        counted = _counted(conn, campaign_id, metrics, scope.path, area, lo, hi, as_of)
    group_rows = [GroupRow(g, n, Tier(t), *_values(metrics, counted, [g])) for g, n, t in groups]
    tiers = [
        GroupRow(tier_key(t), f"{tier_key(t)} groups", t, *_values(metrics, counted, ids))
        for t in sorted({Tier(t) for _, _, t in groups})
        if (ids := [g for g, _, gt in groups if gt == t])
    ]
    total = GroupRow("", "", None, *_values(metrics, counted, [g for g, _, _ in groups]))
    if group_by == "group":
        return GroupFigures(group_rows, tiers, total)
    if group_by == "tier":
        return GroupFigures(tiers, [], total)
    return GroupFigures([total], [], total)


def _counted(
    conn,  # type: ignore[no-untyped-def]
    campaign_id: str,
    metrics: Sequence[str],
    path: str,
    area: str,
    lo: Nanos | None,
    hi: Nanos | None,
    as_of: Nanos | None,
) -> dict[tuple[str, str], tuple[int, int]]:
    """(group, metric) -> (sum, events) of the campaign's facts asked about."""
    marks = ", ".join("?" * len(metrics))
    sql = (
        "SELECT group_id, metric, sum(value), count(*) FROM facts WHERE campaign_id = ? "
        f"AND metric IN ({marks}) AND at >= ? AND at < ?"
    )
    params: list[object] = [campaign_id, *metrics]
    params += [-UNBOUNDED if lo is None else lo, UNBOUNDED if hi is None else hi]
    # The scope's subtree (the city's holds every fact).
    sql += " AND unit_path >= ? AND unit_path < ?"
    params += s.subtree_range(path)
    if area:
        sql += " AND area = ?"
        params.append(area)
    if as_of is not None:
        sql += " AND recorded_at <= ?"
        params.append(as_of)
    rows = plain_rows(conn, sql + " GROUP BY group_id, metric", params)
    return {(g, metric): (int(v), int(n)) for g, metric, v, n in rows}


def _values(
    metrics: Sequence[str], counted: dict[tuple[str, str], tuple[int, int]], groups: list[str]
) -> tuple[dict[str, int], dict[str, int]]:
    values = {x: sum(counted.get((g, x), (0, 0))[0] for g in groups) for x in metrics}
    events = {x: sum(counted.get((g, x), (0, 0))[1] for g in groups) for x in metrics}
    return values, events
