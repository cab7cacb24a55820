"""`duhub query stats --compare previous`: a period against the one before, from one answer.

Both periods are read by the hub in one request (`compare_previous`): one snapshot of the
read model, the same statements, so "up N on last week" never mixes two states of the hub
(two commands, or two as-of questions at a moment the aggregator had not applied yet, could).
"""

from __future__ import annotations

import argparse
from datetime import tzinfo
from fractions import Fraction

from google.protobuf.timestamp_pb2 import Timestamp

from duhub.cli import client
from duhub.cli.tables import render
from duhub.cli.timeargs import in_zone, moment_given_back, whole_days
from duhub.v1 import query_pb2 as qpb


def refuse_unfit(args: argparse.Namespace) -> None:
    """Exit 2 naming the option when --compare cannot be answered with the others given."""
    if not args.compare:
        return
    if args.from_ is None or (args.to is None and args.through is None):
        missing = "--from" if args.from_ is None else "--to (or --through)"
        client.fail(
            f"--compare previous: {missing} is required (the period before is as long as the "
            "one given by --from and --to)",
            client.EXIT_USAGE,
        )
    if args.campaign:
        client.fail(
            "--compare previous: not with --campaign (a campaign's groups are answered "
            "apart; compare without --campaign, or ask each period)",
            client.EXIT_USAGE,
        )

    if args.group_by and args.group_by != "unit":
        client.fail(
            f"--compare previous: not with --group-by {args.group_by} (its periods are listed "
            "one after another already; compare a whole period, by unit or not grouped)",
            client.EXIT_USAGE,
        )


def bound_shown(ts: Timestamp, zone: tzinfo) -> str:
    """A period's bound as given: a date when it is a midnight in the zone, else the moment."""
    local, _, _ = in_zone(ts, zone)
    if (local.hour, local.minute, local.second, ts.nanos) == (0, 0, 0, 0):
        return f"{local:%Y-%m-%d}"
    return moment_given_back(ts, zone)


def period_before(reply: qpb.Statistics, zone: tzinfo) -> str:
    """The period before as the title says the one asked: whole days as the dates it covers,
    else half-open as given."""
    lo, hi = reply.previous_from, reply.previous_to
    return whole_days(lo, hi, zone) or f"[{bound_shown(lo, zone)} .. {bound_shown(hi, zone)})"


def change(current: int, previous: int) -> str:
    return f"{current - previous:+d}" if current != previous else "0"


def change_percent(current: int, previous: int) -> str:
    """The change as a share of the previous value to 0.1% (a half away from zero); "—" when
    the previous is 0 (no share of nothing)."""
    if previous == 0:
        return "—"
    ratio = Fraction(current - previous, previous) * 1000
    tenths = int(abs(ratio) + Fraction(1, 2))
    sign = "-" if ratio < 0 and tenths else "+" if tenths else ""
    return f"{sign}{tenths // 10}.{tenths % 10}%"


def _cells(current: int, previous: int) -> list[object]:
    return [current, previous, change(current, previous), change_percent(current, previous)]


def table(
    reply: qpb.Statistics,
    metrics: list[str],
    labels: list[str],
    by_unit: bool,
    scope: tuple[str, str],
) -> str:
    """Per row and metric: the value, the previous value, the change and its percentage. By
    unit, the scope's own row (when it holds any figure) and a total row, as without it."""
    headers = (["key", "name"] if by_unit else []) + [
        h for label in labels for h in (label, "previous 上期", "change 增减", "change %")
    ]

    def pairs(row: qpb.StatisticsRow) -> list[tuple[int, int]]:
        return [(row.values.get(x, 0), row.previous_values.get(x, 0)) for x in metrics]

    rows: list[list[object]] = []
    if by_unit:
        own = [(scope[0], f"{scope[1]} 本级 itself", pairs(reply.own))]
        children = [(r.key, r.name, pairs(r)) for r in reply.rows]
        every = (own if any(a or b for a, b in own[0][2]) else []) + children
        for key, name, figures in every:
            rows.append([key, name, *[c for a, b in figures for c in _cells(a, b)]])
        sums = [
            (sum(f[i][0] for _, _, f in every), sum(f[i][1] for _, _, f in every))
            for i in range(len(metrics))
        ]
        rows.append(["total 合计", "", *[c for a, b in sums for c in _cells(a, b)]])
    else:
        rows += [[c for a, b in pairs(r) for c in _cells(a, b)] for r in reply.rows]
    n_text = 2 if by_unit else 0
    return render(headers, rows, [False] * n_text + [True] * (len(headers) - n_text))
