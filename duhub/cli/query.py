"""`duhub query coverage|stats`: ask the running hub, print a table or canonical JSON."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, tzinfo

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from duhub.cli import client, compare
from duhub.cli.tables import percent, render, shown
from duhub.cli.timeargs import (
    in_zone,
    moment_shown,
    occurred_before_arg,
    period_end_arg,
    time_arg,
    whole_days,
    zone_arg,
)
from duhub.domain import metrics as m
from duhub.v1 import events_pb2 as epb
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc

TIER_LABEL = {
    epb.TIER_TASK_FORCE: "工作专班 task force",
    epb.TIER_CITY: "市本级 city",
    epb.TIER_COUNTY: "县市区 county",
}
METRIC_LABEL = {
    m.VISITS: "督导检查",
    m.PROBLEMS_FOUND: "发现问题",
    m.PROBLEMS_RECTIFIED: "整改问题",
    m.PROBLEMS_OPEN: "未整改",
    m.ACCOUNTABILITY_PERSONS: "问责人次",
    m.SANCTIONED_PERSONS: "处分人数",
    m.TALK_PERSONS: "谈话人次",
    "talk_persons_top_leader": "一把手谈话",
    "talk_persons_admonishment": "约谈",
    "talk_persons_other": "其他谈话",
    m.RECOMMENDATIONS: "建议书",
    m.REGULATIONS_IMPROVED: "完善制度",
}
# How long a question may take to be answered (a hub waiting on its database lets it pass).
ASK_TIMEOUT_S = 30.0

GROUP_BY = {
    "unit": qpb.GROUP_BY_UNIT,
    "day": qpb.GROUP_BY_DAY,
    "week": qpb.GROUP_BY_WEEK,
    "month": qpb.GROUP_BY_MONTH,
    "quarter": qpb.GROUP_BY_QUARTER,
    "year": qpb.GROUP_BY_YEAR,
    "group": qpb.GROUP_BY_GROUP,
    "tier": qpb.GROUP_BY_TIER,
}


def _fmt_time(ts, zone: tzinfo = UTC) -> str:  # type: ignore[no-untyped-def]
    """A moment to the minute: in UTC as before ('…Z'), else in `zone` with its offset."""
    if zone is UTC:
        return ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M") + "Z"
    local, offset, _ = in_zone(ts, zone)
    return local.strftime("%Y-%m-%d %H:%M ") + offset


def _tier_full_at(reply: qpb.Coverage, tier: int | None) -> Timestamp | None:
    """Return when a tier (None: every tier) became full: the latest of its groups' full_at,
    the groups with targets in the scope each full since theirs; None when one is not."""
    groups = [g for g in reply.groups if g.targets and (tier is None or g.tier == tier)]
    if not groups or not all(g.HasField("full_at") for g in groups):
        return None
    return max(groups, key=lambda g: (g.full_at.seconds, g.full_at.nanos)).full_at


def _since(ts: Timestamp | None, zone: tzinfo) -> str:
    return _fmt_time(ts, zone) if ts is not None else "—"


def _scope_unit(stub: query_pb2_grpc.QueryServiceStub, unit_id: str) -> tuple[str, str]:
    """Return the scope's (unit id, name, shown: a terminal's), the city's when none is given."""
    if not unit_id:
        cities = stub.ListUnits(qpb.ListUnitsRequest(parent_id=""), timeout=ASK_TIMEOUT_S).units
        return (cities[0].unit_id, shown(cities[0].name)) if cities else ("", "(no units)")
    u = stub.GetUnit(qpb.GetUnitRequest(unit_id=unit_id), timeout=ASK_TIMEOUT_S)
    return u.unit_id, shown(u.name)


def _scope_name(stub: query_pb2_grpc.QueryServiceStub, unit_id: str) -> str:
    uid, name = _scope_unit(stub, unit_id)
    return f"{name} ({uid})" if uid else name


# Uncovered units named per group in the table (the rest: "…"; `--json` lists every one).
UNCOVERED_SHOWN = 4


def _uncovered(g: qpb.GroupCoverage) -> str:
    """Name a group's first uncovered units, as a clerk knows them: ids alone say nothing to
    them. The reply names them, asked (uncovered_named): a GetUnit call each took up to 88
    round trips. One it leaves unnamed (an older hub, a unit it lacks) keeps its id."""
    names = {u.unit_id: shown(u.name) for u in g.uncovered_units if u.name}
    first = [
        f"{names[u]} ({u})" if u in names else u for u in g.uncovered_unit_ids[:UNCOVERED_SHOWN]
    ]
    more = " …" if len(g.uncovered_unit_ids) > UNCOVERED_SHOWN else ""
    return f"{len(g.uncovered_unit_ids)} uncovered: {', '.join(first)}{more}"


def coverage(args: argparse.Namespace) -> int:
    address = client.target(args.target)
    stub = query_pb2_grpc.QueryServiceStub(client.channel(address))
    req = qpb.GetCoverageRequest(
        campaign_id=args.campaign, scope_unit_id=args.scope or "", uncovered_named=UNCOVERED_SHOWN
    )
    zone = zone_arg(args.time_zone)
    as_of = time_arg(args.as_of, "--as-of", zone)
    if as_of is not None:
        req.as_of.CopyFrom(as_of)
    before = occurred_before_arg(args, zone)
    if before is not None:
        req.occurred_before.CopyFrom(before)
    try:
        reply = stub.GetCoverage(req, timeout=ASK_TIMEOUT_S)
        scope = _scope_name(stub, args.scope or "")
    except grpc.RpcError as e:
        client.fail_rpc(e, address, ASK_TIMEOUT_S)
    if args.json:
        print(client.reply_json(reply))
        return client.EXIT_OK
    head = f"{shown(reply.campaign_id)}  {shown(reply.name)}  —  scope {scope}"
    if reply.HasField("occurred_before"):
        on = f" (on {args.on})" if args.on is not None else ""
        head += f", visits before {moment_shown(reply.occurred_before, zone)}{on}"
    if reply.HasField("as_of"):
        # To the nanosecond: record times a second apart may hold other events.
        head += f", as of {moment_shown(reply.as_of, zone)}"
    print(head)
    if not any(t.targets for t in reply.tiers):
        # Full, as nothing holds it back (the contract), but "YES" and 100% per tier read as
        # "this village was supervised" to a clerk drilling down to a unit no group targets.
        full = "— (no targets in this scope 本范围无督导对象)"
    else:
        full = "YES 是" if reply.full else "no 否"
    print(f"full coverage 督导全覆盖: {full}\n")
    tier_rows = [
        [
            TIER_LABEL.get(t.tier, t.tier),
            t.targets,
            t.covered,
            percent(t.ratio) if t.targets else "—",
            _since(_tier_full_at(reply, t.tier), zone) if t.full and t.targets else "—",
        ]
        for t in reply.tiers
    ]
    # A report states one coverage rate and the day full coverage was reached, as the
    # dashboard's overall card (`totals`) and `explain --campaign` ("5 of 9") count them.
    targets = sum(t.targets for t in reply.tiers)
    covered = sum(t.covered for t in reply.tiers)
    tier_rows.append(
        [
            "all tiers 合计",
            targets,
            covered,
            percent(covered / targets) if targets else "—",
            _since(_tier_full_at(reply, None), zone) if reply.full and targets else "—",
        ]
    )
    print(
        render(
            ["tier 层级", "targets", "covered", "ratio", "full since"],
            tier_rows,
            [False, True, True, True, False],
        )
    )
    print()
    rows = []
    for g in reply.groups:
        status = (
            f"full {_fmt_time(g.full_at, zone)}"
            if g.HasField("full_at")
            else ("—" if not g.uncovered_unit_ids else _uncovered(g))
        )
        rows.append(
            [
                g.group_id,
                g.name,
                TIER_LABEL.get(g.tier, g.tier).split()[0],
                g.targets,
                g.covered,
                percent(g.ratio) if g.targets else "—",
                status,
            ]
        )
    print(
        render(
            ["group", "name 督导组", "tier", "targets", "covered", "ratio", "status"],
            rows,
            [False, False, False, True, True, True, False],
        )
    )
    if reply.counties:
        print()
        print(
            render(
                ["county", "name 县市区", "targets", "covered", "ratio", "full since"],
                [
                    [
                        c.unit_id,
                        c.name,
                        c.targets,
                        c.covered,
                        percent(c.ratio),
                        _fmt_time(c.full_at, zone) if c.HasField("full_at") else "—",
                    ]
                    for c in reply.counties
                ],
                [False, False, True, True, True, False],
            )
        )
    return client.EXIT_OK


def _all_zero(reply: qpb.Statistics) -> bool:
    # With --compare, a figure of the period before says the area is known too.
    every = [(*r.values.values(), *r.previous_values.values()) for r in (reply.own, *reply.rows)]
    return not any(v for values in every for v in values)


# The metrics whose events carry an area of their own (a rectification takes its problem's).
_AREA_KINDS = [m.VISITS, m.PROBLEMS_FOUND, m.ACCOUNTABILITY_PERSONS, m.SANCTIONED_PERSONS]
_AREA_KINDS += [m.TALK_PERSONS, m.RECOMMENDATIONS, m.REGULATIONS_IMPROVED]


def _say_if_no_event_has(stub: query_pb2_grpc.QueryServiceStub, area: str) -> None:
    """Say on stderr when no event the caller may read has the area: areas are open keys (the
    contract), so a misspelt one ('ecolgy') is a question about nothing and answers 0, which
    read as "no ecology work" without a word. Asked only when every figure was 0."""
    req = qpb.GetStatisticsRequest(metrics=_AREA_KINDS, area=area)
    every = stub.GetStatistics(req, timeout=ASK_TIMEOUT_S)
    if any(n for row in every.rows for n in row.events.values()):
        return
    print(
        f"duhub: note: no event the hub holds (within your scope) has area {area!r}, at any "
        "time: check its spelling ('duhub campaigns' shows the campaigns' areas)",
        file=sys.stderr,
    )


def _group_table(reply: qpb.Statistics, metrics: list[str], group_by: str) -> str:
    """A campaign's figures: a row per group (with its tier) and per tier, or per tier, and
    the campaign's total."""
    headers = {"group": ["group", "name", "tier"], "tier": ["tier"], "": []}[group_by]
    headers += [f"{x} {METRIC_LABEL.get(x, '')}".strip() for x in metrics]

    def tier(row: qpb.StatisticsRow) -> str:
        return epb.Tier.Name(row.tier).removeprefix("TIER_").lower().replace("_", "-")

    def cells(row: qpb.StatisticsRow) -> list[object]:
        return [row.values.get(x, 0) for x in metrics]

    rows: list[list[object]] = []
    if group_by == "group":
        rows += [[r.key, r.name, tier(r), *cells(r)] for r in reply.rows]
        rows += [[f"{tier(r)} tier 小计", "", tier(r), *cells(r)] for r in reply.tiers]
    elif group_by == "tier":
        rows += [[tier(r), *cells(r)] for r in reply.rows]
    total: list[object] = ["total 合计"] + [""] * (len(headers) - len(metrics) - 1)
    rows.append(total[: len(headers) - len(metrics)] + cells(reply.total))
    n_text = len(headers) - len(metrics)
    return render(headers, rows, [False] * n_text + [True] * len(metrics))


def _period(
    args: argparse.Namespace, start: Timestamp | None, end: Timestamp | None, zone: tzinfo
) -> str:
    """The period in the title: whole days as the dates it covers, last one included; else as
    given, half-open (--through's day closed: it is in the period)."""
    if start is not None and end is not None and (days := whole_days(start, end, zone)):
        return days
    if args.through is not None:
        return f"[{args.from_ or '…'} .. {args.through}]"
    return f"[{args.from_ or '…'} .. {args.to or '…'})"


def stats(args: argparse.Namespace) -> int:
    address = client.target(args.target)
    stub = query_pb2_grpc.QueryServiceStub(client.channel(address))
    # --metric NAME… (each option's names), commas within a name allowed too
    names = [x for given in args.metric for item in given for x in item.split(",") if x]
    metrics = m.each_once(names)
    compare.refuse_unfit(args)
    req = qpb.GetStatisticsRequest(
        metrics=metrics, scope_unit_id=args.scope or "", area=args.area or ""
    )
    # A bare date is midnight in the zone asked: --from 2022-11-01 is Beijing's November 1st.
    zone = zone_arg(args.time_zone)
    start = time_arg(args.from_, "--from", zone)
    end = period_end_arg(args, zone)  # --to, or the end of --through's day
    as_of = time_arg(args.as_of, "--as-of", zone)
    for name, ts in (("from", start), ("to", end), ("as_of", as_of)):
        if ts is not None:
            getattr(req, name).CopyFrom(ts)
    if args.group_by:
        req.group_by = GROUP_BY[args.group_by]
    req.time_zone = args.time_zone or ""
    req.campaign_id = args.campaign or ""
    req.compare_previous = args.compare == "previous"
    try:
        reply = stub.GetStatistics(req, timeout=ASK_TIMEOUT_S)
        scope_id, scope_name = ("", "") if args.json else _scope_unit(stub, args.scope or "")
        if args.area and _all_zero(reply):
            _say_if_no_event_has(stub, args.area)
    except grpc.RpcError as e:
        client.fail_rpc(e, address, ASK_TIMEOUT_S)
    if args.json:
        print(client.reply_json(reply))
        return client.EXIT_OK
    scope = f"{scope_name} ({scope_id})" if scope_id else scope_name
    period = _period(args, start, end, zone)
    print(
        (f"campaign {args.campaign}, " if args.campaign else "")
        + f"scope {scope}, area {args.area or 'all 全部'}, event time {period}"
        + (f", as of {args.as_of}" if args.as_of else "")
        + (f", time zone {args.time_zone}" if args.time_zone else "")
    )
    labels = [f"{x} {METRIC_LABEL.get(x, '')}".strip() for x in metrics]
    if args.compare:
        print(f"compared with the period before: event time {compare.period_before(reply, zone)}")
        by_unit = args.group_by == "unit"
        print(compare.table(reply, metrics, labels, by_unit, (scope_id, scope_name)))
        return client.EXIT_OK
    if args.campaign:
        print(_group_table(reply, metrics, args.group_by or ""))
        return client.EXIT_OK
    headers = ["key"] if args.group_by else []
    if args.group_by == "unit":
        headers.append("name")
    headers += [f"{x} {METRIC_LABEL.get(x, '')}".strip() for x in metrics]
    rows = []
    for row in reply.rows:
        cells: list[object] = [row.key] if args.group_by else []
        if args.group_by == "unit":
            cells.append(row.name)
        cells += [row.values.get(x, 0) for x in metrics]
        rows.append(cells)
    # By unit always: the scope's own events (a visit of a county's HQ) are in no child's
    # row, and a village has no children.
    if args.group_by == "unit" or (args.group_by and len(reply.rows) > 1):
        total: list[object] = ["total 合计"] + ([""] if args.group_by == "unit" else [])
        if args.group_by == "unit":
            # The scope's own row comes in the same answer as its children's (asked apart,
            # a change between the two answers was listed as the scope's own).
            own = [reply.own.values.get(x, 0) for x in metrics]
            if any(own):
                rows.insert(0, [scope_id, f"{scope_name} 本级 itself", *own])
            every = [reply.own, *reply.rows]
            total += [sum(r.values.get(x, 0) for r in every) for x in metrics]
        elif m.PROBLEMS_OPEN in metrics:
            last = reply.rows[-1].values
            total += [
                last.get(x, 0)
                if x == m.PROBLEMS_OPEN
                else sum(r.values.get(x, 0) for r in reply.rows)
                for x in metrics
            ]
        else:
            total += [sum(r.values.get(x, 0) for r in reply.rows) for x in metrics]
        rows.append(total)
    n_text = len(headers) - len(metrics)
    print(render(headers, rows, [False] * n_text + [True] * len(metrics)))
    return client.EXIT_OK
