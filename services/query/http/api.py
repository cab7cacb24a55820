"""The JSON API: the gRPC QueryService's answers in canonical JSON, with unit names joined in.

Every answer comes from `QueryServicer`, called with a context whose `abort` raises `ApiError`,
so the HTTP and gRPC services cannot drift apart. Error messages name the HTTP parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import UTC, tzinfo
from typing import Any, NoReturn

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from sqlalchemy import Engine, select

from duhub.auth.principal import LOCAL, Principal
from duhub.domain.metrics import each_once
from duhub.feed import ChangeFeed
from duhub.readmodel import schema as s
from duhub.readmodel.units import resolve_scope, subtree_clause
from duhub.timeparse import parse_day_end, parse_time
from duhub.timezones import parse_given_time_zone
from duhub.v1 import events_pb2 as epb
from duhub.v1 import query_pb2 as qpb
from services.query.answers import DEFAULT_SIZE, AnswerCache
from services.query.http.kept import KeptTargets
from services.query.http.unit_rows import UnitRows
from services.query.refusal import unfit
from services.query.service import QueryServicer

Json = dict[str, Any]
Params = Mapping[str, list[str]]

STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
}
# Who makes the request being answered (services.auth): the server sets it per request
# thread; the QueryServicer scopes every answer to it, exactly as for a gRPC caller.
CALLER: ContextVar[Principal] = ContextVar("duhub_dashboard_caller", default=LOCAL)
# The gRPC request fields the read model names in its messages -> the HTTP parameters.
FIELDS = {
    "metrics": "metric",
    "scope_unit_id": "scope",
    "parent_id": "parent",
    "campaign_id": "campaignId",
    "unit_id": "unitId",
    "group_id": "group",
}
GROUP_BY = {
    "": qpb.GROUP_BY_UNSPECIFIED,
    "unit": qpb.GROUP_BY_UNIT,
    "day": qpb.GROUP_BY_DAY,
    "week": qpb.GROUP_BY_WEEK,
    "month": qpb.GROUP_BY_MONTH,
    "quarter": qpb.GROUP_BY_QUARTER,
    "year": qpb.GROUP_BY_YEAR,
}
# A query string's '+' is a space (form encoding): +08:00 typed in an address, as README writes
# Beijing times, comes as ' 08:00'. A space before an offset after a time can only be that '+'.
_OFFSET_AS_SPACE = re.compile(r"^(.+[Tt ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?) (\d\d:?\d\d)$")
# A time_zone of '+08:00' typed as is comes as ' 08:00': no zone's name starts with a space.
_ZONE_OFFSET_AS_SPACE = re.compile(r"^ (\d\d:\d\d)$")


class ApiError(Exception):
    """An answer of 400 or 404 whose message names the parameter at fault."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def http_message(message: str) -> str:
    """Return a read-model message with its leading gRPC field renamed to the HTTP one."""
    field, sep, rest = message.partition(":")
    return f"{FIELDS.get(field, field)}{sep}{rest}" if sep else message


class _Context:
    """Just enough of grpc.ServicerContext for the servicer's unary methods."""

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise ApiError(STATUS.get(code, 500), http_message(details))

    def is_active(self) -> bool:
        return True

    @property
    def duhub_principal(self) -> Principal:  # read by services.auth.guard.Security.principal
        return CALLER.get()


def _dict(msg: Message) -> Json:
    return json_format.MessageToDict(msg, always_print_fields_with_no_presence=True)


def _one(params: Params, name: str, *aliases: str) -> str:
    # Counted over every spelling: group_by=unit&groupBy=day says two things, not one.
    values = [v for key in (name, *aliases) for v in params.get(key, ())]
    if len(values) > 1:
        raise ApiError(400, f"{name}: give it once")
    # As given: an id with whitespace around it is refused, as gRPC refuses it (`unfit`), not
    # trimmed into an answer the other surfaces do not give.
    return values[0] if values else ""


def known(params: Params, allowed: Iterable[str]) -> None:
    extra = [x or "'' (a parameter without a name)" for x in sorted(set(params) - set(allowed))]
    if extra and not allowed:
        raise ApiError(400, f"{extra[0]}: unknown parameter; this route takes none")
    if extra:
        raise ApiError(400, f"{extra[0]}: unknown parameter; known: {', '.join(sorted(allowed))}")


def _count(params: Params, name: str, *aliases: str) -> int | None:
    """Return the whole number ≥ 0 a parameter gives, None when it is left out."""
    if not any(key in params for key in (name, *aliases)):
        return None
    value = _one(params, name, *aliases)
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise ApiError(400, f"{name}: must be a whole number from 0 to 999999999, not {value!r}")
    return int(value)


def _time(params: Params, name: str, *aliases: str, zone: tzinfo = UTC) -> Any:
    """Return the time a parameter gives (a bare date: midnight in `zone`), None when it is
    left out. Given empty it is refused (a script's unset variable), as the command line
    refuses an empty --as-of: taken as no time, it answered the present for a moment asked
    about."""
    if not any(key in params for key in (name, *aliases)):
        return None
    value = _OFFSET_AS_SPACE.sub(r"\1+\2", _one(params, name, *aliases))
    try:
        return parse_time(value, name, zone)
    except ValueError as e:
        raise ApiError(400, str(e)) from None


def _occurred_before(params: Params, names: tuple[str, str], zone: tzinfo) -> Any:
    """Return the event-time bound of a coverage question: `on` a day (its end in `zone`) or
    `occurred_before` a moment, None when neither is given; both at once are refused."""
    if "on" in params and any(key in params for key in names):
        raise ApiError(400, f"on: give either on (a day) or {names[0]} (a moment), not both")
    if "on" not in params:
        return _time(params, *names, zone=zone)
    try:
        return parse_day_end(_one(params, "on"), "on", zone)
    except ValueError as e:
        raise ApiError(400, str(e)) from None


def _plus_restored(zone: str) -> str:
    """Return a time_zone with the '+' of an offset typed as is (read as a space) given back."""
    return _ZONE_OFFSET_AS_SPACE.sub(r"+\1", zone)


def _zone(params: Params, value: str) -> tzinfo:
    """Return the zone time_zone names (UTC when left out); given empty it is refused, as an
    empty time is."""
    if not any(key in params for key in ("time_zone", "timeZone")):
        return UTC
    try:
        return parse_given_time_zone(value, "time_zone")
    except ValueError as e:
        raise ApiError(400, str(e)) from None


# The moments a coverage question is asked at, as both coverage routes take them.
COVERAGE_TIMES = (
    "as_of", "asOf", "time_zone", "timeZone", "on", "occurred_before", "occurredBefore"
)  # fmt: skip


def _coverage_moments(
    params: Params, req: qpb.GetCoverageRequest | qpb.ExplainCoverageRequest
) -> None:
    """Set a coverage request's as_of and occurred_before as the parameters give them. A bare
    as_of date is midnight in time_zone, as /api/statistics reads it (refused as an unknown
    parameter before 2026-12-06, the date was UTC's midnight here alone)."""
    zone = _zone(params, _plus_restored(_one(params, "time_zone", "timeZone")))
    as_of = _time(params, "as_of", "asOf", zone=zone)
    if as_of is not None:
        req.as_of.CopyFrom(as_of)
    before = _occurred_before(params, ("occurred_before", "occurredBefore"), zone)
    if before is not None:
        req.occurred_before.CopyFrom(before)


class DashboardApi:
    """Answer the dashboard's questions from the read model, through the QueryServicer."""

    def __init__(
        self, engine: Engine, feed: ChangeFeed, answer_cache: int | AnswerCache = DEFAULT_SIZE
    ) -> None:
        self.engine = engine
        self.feed = feed
        # Its answers kept as --answer-cache says, as the gRPC service's are.
        self.servicer = QueryServicer(engine, feed, answer_cache=answer_cache)
        self._ctx = _Context()
        self._inside = KeptTargets()
        self._names = UnitRows(engine)

    def health(self) -> Json:
        return {"status": "SERVING", "version": self.feed.version}

    def campaigns(self, params: Params) -> Json:
        known(params, ("omit_targets", "omitTargets"))
        omit = _one(params, "omit_targets", "omitTargets")
        if omit not in ("", "true", "false"):
            raise ApiError(400, "omit_targets: must be true or false")
        req = qpb.ListCampaignsRequest(omit_targets=omit == "true")
        return _dict(self.servicer.ListCampaigns(req, self._ctx))

    def campaign(self, campaign_id: str, params: Params) -> Json:
        """Return a campaign with each group's targets named, for drawing its structure."""
        known(params, ())
        req = qpb.GetCampaignRequest(campaign_id=campaign_id)
        out = _dict(self.servicer.GetCampaign(req, self._ctx))
        info = self._targets_named(campaign_id)
        for g in out["groups"]:
            g["targets"] = [info[t] for t in g["targetUnitIds"]]
        return out

    def coverage(self, campaign_id: str, params: Params) -> Json:
        named_as = ("uncovered_named", "uncoveredNamed")
        known(params, ("scope", *named_as, *COVERAGE_TIMES))
        req = qpb.GetCoverageRequest(campaign_id=campaign_id, scope_unit_id=_one(params, "scope"))
        _coverage_moments(params, req)
        named = _count(params, *named_as)
        out = _dict(self.servicer.GetCoverage(req, self._ctx))
        # The page lists 150 a group: naming all 50,000 uncovered targets of a 100,000-target
        # campaign made 8.6 MB it never showed. Their ids stay, for painting each target.
        first = {g["groupId"]: g["uncoveredUnitIds"][:named] for g in out["groups"]}
        info = self._names.named([u for ids in first.values() for u in ids])
        inside = self._targets_inside(campaign_id, out["scopeUnitId"])
        targets = covered = 0
        for g in out["groups"]:
            g["uncoveredUnits"] = [info[u] for u in first[g["groupId"]]]
            missing = set(g["uncoveredUnitIds"])
            g["coveredUnitIds"] = [u for u in inside.get(g["groupId"], ()) if u not in missing]
            targets += g["targets"]
            covered += g["covered"]
        for t in out["tiers"]:
            # Its groups' lists again, which the page has: left out, not sent twice.
            del t["uncoveredUnitIds"]
        out["totals"] = {
            "targets": targets,
            "covered": covered,
            "ratio": covered / targets if targets else 1.0,
        }
        return out

    def coverage_visits(self, campaign_id: str, params: Params) -> Json:
        """Return which visit first covered each covered target (of one group, or all), as
        the coverage route counts them: the servicer's ExplainCoverage."""
        known(params, ("scope", "group", "limit", *COVERAGE_TIMES))
        req = qpb.ExplainCoverageRequest(
            campaign_id=campaign_id,
            scope_unit_id=_one(params, "scope"),
            group_id=_one(params, "group"),
            limit=_count(params, "limit") or 0,  # 0: the servicer's default (1000)
        )
        _coverage_moments(params, req)
        out = _dict(self.servicer.ExplainCoverage(req, self._ctx))
        # uint64 prints as a string in canonical JSON; a page wants numbers.
        for v in out["visits"]:
            v["seq"], v["offset"] = int(v["seq"]), int(v["offset"])
        return out

    def _targets_named(self, campaign_id: str) -> dict[str, Json]:
        """Return unit id -> {unitId, name, level, parentId, parentName, sample} for each
        target of a campaign, in one statement: asked 500 ids at a time, a 100,000-target
        campaign took 400 statements."""
        t = s.campaign_targets.c
        u = s.units.c
        parent = s.units.alias("parent")
        q = (
            select(t.unit_id, u.name, u.level, u.parent_id, u.sample, parent.c.name)
            .select_from(
                s.campaign_targets.outerjoin(s.units, u.unit_id == t.unit_id).outerjoin(
                    parent, parent.c.unit_id == u.parent_id
                )
            )
            .where(t.campaign_id == campaign_id)
        )
        out: dict[str, Json] = {}
        with self.engine.connect() as conn:
            for unit_id, name, level, parent_id, sample, parent_name in conn.execute(q):
                out[unit_id] = {
                    "unitId": unit_id,
                    "name": unit_id if name is None else name,  # as UnitRows: never unknown
                    "level": epb.Level.Name(level or 0),
                    "parentId": parent_id or "",
                    "sample": bool(sample),
                    "parentName": parent_name or "",
                }
        return out

    def _targets_inside(self, campaign_id: str, scope: str) -> dict[str, list[str]]:
        """Return group id -> its targets inside the scope's subtree ('' : all of them), so
        that the page tells covered targets from those outside the scope, which count for
        neither side and were painted covered on a county's page. One statement on the
        targets' stored paths: a statement per target took 47 s for a county of a
        100,000-target campaign."""
        t = s.campaign_targets.c
        q = select(t.group_id, t.unit_id).where(t.campaign_id == campaign_id)
        c = s.campaigns.c
        with self.engine.connect() as conn:
            # Its launch in the key: a read model rebuilt from another log is not answered
            # from what was kept of this one.
            launch = conn.execute(
                select(c.source, c.recorded_at).where(c.campaign_id == campaign_id)
            ).first()
            path = resolve_scope(conn, scope).path if scope else ""

        def read() -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            where = q.where(subtree_clause(t.unit_path, path)) if scope else q
            with self.engine.connect() as conn:
                for group_id, unit_id in conn.execute(where.order_by(t.group_id, t.ordinal)):
                    out.setdefault(group_id, []).append(unit_id)
            return out

        if launch is None:
            return read()
        return self._inside.get((campaign_id, tuple(launch), path), read)

    def statistics(self, params: Params) -> Json:
        allowed = ("metric", "scope", "area", "from", "to", "group_by", "groupBy", "as_of", "asOf")
        known(params, (*allowed, "time_zone", "timeZone"))
        metrics = [m for v in params.get("metric", []) for m in v.split(",") if m]
        group_by = _one(params, "group_by", "groupBy")
        if group_by not in GROUP_BY:
            raise ApiError(400, f"group_by: must be one of {', '.join(list(GROUP_BY)[1:])}")
        time_zone = _plus_restored(_one(params, "time_zone", "timeZone"))
        zone = _zone(params, time_zone)
        req = qpb.GetStatisticsRequest(
            metrics=each_once(metrics),
            scope_unit_id=_one(params, "scope"),
            area=_one(params, "area"),
            group_by=GROUP_BY[group_by],
            time_zone=time_zone,
        )
        # A bare date is midnight in the zone, as on the command line.
        for name, aliases in (("from", ()), ("to", ()), ("as_of", ("asOf",))):
            ts = _time(params, name, *aliases, zone=zone)
            if ts is not None:
                getattr(req, name).CopyFrom(ts)
        # Too many periods is the read model's QueryError (group_by: ...), as every refusal.
        reply = self.servicer.GetStatistics(req, self._ctx)
        out = _dict(reply)
        # int64 maps print as strings in canonical JSON; a page wants numbers.
        for row in out["rows"] + ([out["own"]] if "own" in out else []):
            for name, value in row.items():
                if isinstance(value, dict):
                    row[name] = {k: int(v) for k, v in value.items()}
        out.update(metrics=list(req.metrics), groupBy=group_by)
        if time_zone:
            out["timeZone"] = time_zone
        for name in ("from", "to"):
            if req.HasField(name):
                out[name] = json_format.MessageToDict(getattr(req, name))
        return out

    def watched(self, params: Params) -> str:
        """Return the campaign an event stream reports on ('' for none). A campaign the hub
        does not know is 404, as WatchCoverage answers it, not a stream that never says
        anything about it."""
        known(params, ("campaign",))
        campaign_id = _one(params, "campaign")
        if why := unfit("campaign", campaign_id):  # as the servicer refuses it
            raise ApiError(400, why)
        if campaign_id:
            c = s.campaigns.c
            with self.engine.connect() as conn:
                found = conn.execute(select(c.campaign_id).where(c.campaign_id == campaign_id))
                if found.first() is None:
                    raise ApiError(404, f"campaign: unknown campaign '{campaign_id}'")
        return campaign_id

    def dead_letters(self, params: Params) -> Json:
        """Return the records refused from the log that the caller may read, newest first:
        the servicer's ListDeadLetters, so a county's user sees its own sources' only."""
        known(params, ("source", "since", "limit", "time_zone", "timeZone"))
        zone = _zone(params, _plus_restored(_one(params, "time_zone", "timeZone")))
        req = qpb.ListDeadLettersRequest(
            source=_one(params, "source"),
            limit=_count(params, "limit") or 0,  # 0: the servicer's default (1000)
        )
        since = _time(params, "since", zone=zone)
        if since is not None:
            req.since.CopyFrom(since)
        out = _dict(self.servicer.ListDeadLetters(req, self._ctx))
        # uint64 prints as a string in canonical JSON; a page wants numbers.
        out["total"] = int(out["total"])
        for d in out["deadLetters"]:
            d["offset"] = int(d["offset"])
        return out

    def units(self, params: Params) -> Json:
        known(params, ("parent",))
        req = qpb.ListUnitsRequest(parent_id=_one(params, "parent"))
        return _dict(self.servicer.ListUnits(req, self._ctx))

    def unit(self, unit_id: str, params: Params) -> Json:
        """Return a unit with its ancestors from the city down (for breadcrumbs)."""
        known(params, ())
        out = _dict(self.servicer.GetUnit(qpb.GetUnitRequest(unit_id=unit_id), self._ctx))
        path: list[Json] = []
        parent = out["parentId"]
        while parent:
            found = self._names.named([parent])[parent]
            path.insert(0, {"unitId": parent, "name": found["name"], "level": found["level"]})
            parent = found["parentId"]
        out["ancestors"] = path
        return out
