"""gRPC QueryService over the read model; WatchCoverage wakes on the change feed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import grpc
from google.protobuf.message import Message
from sqlalchemy import Engine, select

from duhub.auth.principal import Forbidden, Principal, check_within, scope_for, unlimited
from duhub.convert import from_nanos, to_nanos
from duhub.domain.metrics import each_once
from duhub.feed import ChangeFeed
from duhub.health import UNREACHABLE_DB
from duhub.projections.timegrid import FIRST_NS, LAST_NS
from duhub.readmodel import schema as s
from duhub.readmodel.coverage import coverage
from duhub.readmodel.coverage_lineage import explain_coverage
from duhub.readmodel.dead_letters import list_dead_letters
from duhub.readmodel.group_figures import GROUPINGS, group_figures
from duhub.readmodel.knowledge import campaigns_without_targets, load_campaign
from duhub.readmodel.known import known_at
from duhub.readmodel.lineage import explain
from duhub.readmodel.statistics import NotFound, QueryError, figures
from duhub.readmodel.units import UnknownUnit, get_unit, list_units
from duhub.timezones import parse_time_zone
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from services.auth.guard import OPEN, Security, grpc_principal
from services.auth.scope import UnitPaths
from services.query.answers import DEFAULT_SIZE, AnswerCache
from services.query.refusal import abort, unfit
from services.query.replies import (
    campaign_reply,
    coverage_explanation_reply,
    coverage_reply,
    dead_letters_reply,
    explanation_reply,
    group_statistics_reply,
    statistics_reply,
    unit_reply,
)
from services.slots import MAX_STREAMS, StreamSlots, caller_of

log = logging.getLogger(__name__)
STOPPING = "WatchCoverage: the server is stopping; watch again, here or on another server"

GROUP_BY = {
    qpb.GROUP_BY_UNSPECIFIED: "",
    qpb.GROUP_BY_UNIT: "unit",
    qpb.GROUP_BY_DAY: "day",
    qpb.GROUP_BY_WEEK: "week",
    qpb.GROUP_BY_MONTH: "month",
    qpb.GROUP_BY_QUARTER: "quarter",
    qpb.GROUP_BY_YEAR: "year",
    qpb.GROUP_BY_GROUP: "group",
    qpb.GROUP_BY_TIER: "tier",
}


def _opt_time(msg, name: str) -> int | None:  # type: ignore[no-untyped-def]
    """Return a request's time in nanoseconds (None: unset). One protobuf calls invalid is a
    question asked wrongly: canonical JSON cannot even write it, so an answer echoing it could
    not be printed (grpcurl, --json)."""
    if not msg.HasField(name):
        return None
    ts = getattr(msg, name)
    if not 0 <= ts.nanos < 1_000_000_000:
        raise QueryError(f"{name}: nanos must lie in [0, 999999999] (got {ts.nanos})")
    at = to_nanos(ts)
    if not FIRST_NS <= at < LAST_NS:  # a Timestamp's range, and canonical JSON's
        raise QueryError(f"{name}: must lie between 0001-01-01 and 9999-12-31 (got {ts.seconds} s)")
    return at


# Recorded and event times are int64 nanoseconds. An as_of or occurred_before outside them
# (before 1677, after 2262) asks about before or after everything recorded or occurred;
# unclamped it overflowed the database's integer.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _clamped_time(msg, name: str) -> int | None:  # type: ignore[no-untyped-def]
    at = _opt_time(msg, name)
    return None if at is None else min(max(at, INT64_MIN), INT64_MAX)


def _as_of(msg) -> int | None:  # type: ignore[no-untyped-def]
    return _clamped_time(msg, "as_of")


def _times_as_asked(request, reply):  # type: ignore[no-untyped-def]
    """Return the reply with its as_of and occurred_before as the request gave them, not as
    clamped."""
    for name in ("as_of", "occurred_before"):
        if request.HasField(name):
            getattr(reply, name).CopyFrom(getattr(request, name))
    return reply


def _refuse_unfit(context: grpc.ServicerContext, request: Message) -> None:
    """Abort INVALID_ARGUMENT on a string field holding a NUL character or whitespace at
    either end (`unfit`), naming it."""
    for field, value in request.ListFields():
        if field.type != field.TYPE_STRING:
            continue
        for v in [value] if isinstance(value, str) else value:
            if why := unfit(field.name, v):
                abort(context, grpc.StatusCode.INVALID_ARGUMENT, why)


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    """Every answer is scoped to the caller: a user or node with scope S reads only S's subtree
    (an empty scope means S); the city's scope, and the local caller, read everything.
    Campaign metadata and progress are not scoped: they hold no figures."""

    def __init__(
        self,
        engine: Engine,
        feed: ChangeFeed,
        watch_poll: float = 1.0,
        security: Security = OPEN,
        answer_cache: int | AnswerCache = DEFAULT_SIZE,
        max_streams: int = MAX_STREAMS,
        max_streams_per_caller: int | None = None,
    ) -> None:
        self.engine = engine
        self.feed = feed
        self.watch_poll = watch_poll
        self.security = security
        self.paths = UnitPaths(engine)
        # GetStatistics and GetCoverage answers, by caller-scoped request (0: none kept); one
        # cache may be shared by the gRPC service and the dashboard's (the same keys).
        self.answers = (
            answer_cache
            if isinstance(answer_cache, AnswerCache)
            else AnswerCache(engine, answer_cache)
        )
        self.streams = StreamSlots("WatchCoverage", max_streams, max_streams_per_caller)

    def _caller(self, context: grpc.ServicerContext) -> Principal:
        return grpc_principal(self.security, context)

    def _scope(self, context: grpc.ServicerContext, requested: str, field: str) -> str:
        """Return the scope to answer for; abort PERMISSION_DENIED outside the caller's."""
        try:
            return scope_for(self._caller(context), requested, self.paths, field)
        except Forbidden as e:
            abort(context, grpc.StatusCode.PERMISSION_DENIED, str(e))
        raise AssertionError("unreachable")

    def _check_unit(
        self, context: grpc.ServicerContext, principal: Principal, unit_id: str, field: str
    ) -> None:
        try:
            check_within(principal, unit_id, self.paths, field)
        except Forbidden as e:
            abort(context, grpc.StatusCode.PERMISSION_DENIED, str(e))

    def _answer(self, context: grpc.ServicerContext, fn, *args):  # type: ignore[no-untyped-def]
        try:
            return fn(*args)
        except (NotFound, UnknownUnit) as e:
            abort(context, grpc.StatusCode.NOT_FOUND, str(e))
        except QueryError as e:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(e))
        raise AssertionError("unreachable")

    def _coverage(self, r: qpb.GetCoverageRequest) -> qpb.Coverage:
        if not r.campaign_id:
            raise QueryError("campaign_id: required")
        reply = coverage_reply(
            coverage(
                self.engine,
                r.campaign_id,
                r.scope_unit_id,
                _as_of(r),
                _clamped_time(r, "occurred_before"),
            ),
            r.uncovered_named,
        )
        return _times_as_asked(r, reply)

    def _kept_coverage(
        self, context: grpc.ServicerContext, r: qpb.GetCoverageRequest
    ) -> qpb.Coverage:
        """Answer a caller-scoped coverage request, from the answer cache when it can."""
        return self._answer(
            context,
            self.answers.answer,
            b"C" + r.SerializeToString(deterministic=True),
            lambda: self._coverage(r),
        )

    def GetCoverage(
        self, request: qpb.GetCoverageRequest, context: grpc.ServicerContext
    ) -> qpb.Coverage:
        _refuse_unfit(context, request)
        return self._kept_coverage(context, _scoped(request, self, context))

    def WatchCoverage(
        self, request: qpb.WatchCoverageRequest, context: grpc.ServicerContext
    ) -> Iterator[qpb.Coverage]:
        _refuse_unfit(context, request)
        # Known before a place is taken: the place is counted against the caller's share.
        caller = caller_of(self._caller(context))
        with self.streams.held(context, caller):
            # Woken as its client goes, not at the next poll: its place (--max-streams) was
            # held up to watch_poll after, and a screen reconnecting at the cap refused.
            ended = threading.Event()

            def end() -> None:
                ended.set()
                self.feed.wake()

            if not context.add_callback(end):
                return  # the call ended already
            yield from self._watch(request, context, ended)

    def _watch(
        self,
        request: qpb.WatchCoverageRequest,
        context: grpc.ServicerContext,
        ended: threading.Event,
    ) -> Iterator[qpb.Coverage]:
        last = b""
        seen = -1
        while context.is_active() and not ended.is_set() and not self.feed.closed:
            version = self.feed.campaign_version(request.campaign_id)
            try:
                reply = self._watched(context, request, changed=version != seen)
            except UNREACHABLE_DB as e:
                # The read model is away for a moment (a restart): the stream stays and asks
                # again at the next change or poll, and pushes what changed meanwhile.
                log.warning("WatchCoverage: read model unreachable: %s", e)
                self.feed.wait_campaign(request.campaign_id, version, self.watch_poll, ended)
                continue
            if reply is not None:
                seen = version
                data = reply.SerializeToString(deterministic=True)
                if data != last:
                    last = data
                    yield reply
            self.feed.wait_campaign(request.campaign_id, seen, self.watch_poll, ended)
        if self.feed.closed and not ended.is_set():
            # The server is stopping: not the end of the answer (status OK said it was), but
            # UNAVAILABLE, which a client retries, here or on another server.
            abort(context, grpc.StatusCode.UNAVAILABLE, STOPPING)

    def _watched(
        self, context: grpc.ServicerContext, request: qpb.WatchCoverageRequest, changed: bool
    ) -> qpb.Coverage | None:
        """Return the coverage a watcher is owed after a change (None: nothing changed).
        The caller is asked again at every wake-up (a change, or watch_poll): a token revoked
        while the stream is open ends it (UNAUTHENTICATED) instead of pushing on."""
        scope = self._scope(context, request.scope_unit_id, "scope_unit_id")
        if not changed:
            return None
        # Watchers of one campaign and scope share an answer per change.
        return self._kept_coverage(
            context,
            qpb.GetCoverageRequest(
                campaign_id=request.campaign_id,
                scope_unit_id=scope,
                uncovered_named=request.uncovered_named,
            ),
        )

    def _statistics(self, r: qpb.GetStatisticsRequest) -> qpb.Statistics:
        if r.group_by not in GROUP_BY:
            # Named as a client writes them in JSON; unset (unspecified) is no grouping.
            names = ", ".join(qpb.GroupBy.Name(g) for g in GROUP_BY if g)
            raise QueryError(
                f"group_by: must be one of {names} (got {r.group_by}); unset for no grouping"
            )
        try:
            # Checked without a period too: a zone asked wrongly is a question asked wrongly.
            zone = parse_time_zone(r.time_zone, "time_zone")
        except ValueError as e:
            raise QueryError(str(e)) from None
        if r.campaign_id:
            if r.compare_previous:
                raise QueryError(
                    "compare_previous: not with campaign_id (a campaign's groups are answered "
                    "for its own window; compare without campaign_id, or ask each period)"
                )
            return self._group_statistics(r)
        if GROUP_BY[r.group_by] in GROUPINGS[1:]:
            raise QueryError(
                f"campaign_id: required when grouping by {GROUP_BY[r.group_by]} (the groups "
                "are a campaign's)"
            )
        answer = figures(
            self.engine,
            each_once(list(r.metrics)),
            r.scope_unit_id,
            r.area,
            _opt_time(r, "from"),
            _opt_time(r, "to"),
            GROUP_BY[r.group_by],
            _as_of(r),
            zone,
            r.compare_previous,
        )
        reply = statistics_reply(answer, r.scope_unit_id, r.area)
        if r.HasField("as_of"):
            reply.as_of.CopyFrom(r.as_of)
        return reply

    def _group_statistics(self, r: qpb.GetStatisticsRequest) -> qpb.Statistics:
        """A campaign's figures per group or tier (`group_figures`)."""
        answer = group_figures(
            self.engine,
            r.campaign_id,
            each_once(list(r.metrics)),
            r.scope_unit_id,
            r.area,
            _opt_time(r, "from"),
            _opt_time(r, "to"),
            GROUP_BY[r.group_by],
            _as_of(r),
        )
        reply = group_statistics_reply(answer, r.campaign_id, r.scope_unit_id, r.area)
        if r.HasField("as_of"):
            reply.as_of.CopyFrom(r.as_of)
        return reply

    def GetStatistics(
        self, request: qpb.GetStatisticsRequest, context: grpc.ServicerContext
    ) -> qpb.Statistics:
        _refuse_unfit(context, request)
        scoped = _scoped(request, self, context)
        # Kept by the whole request, time_zone with it: a UTC answer is no Beijing one.
        return self._answer(
            context,
            self.answers.answer,
            b"S" + scoped.SerializeToString(deterministic=True),
            lambda: self._statistics(scoped),
        )

    def ListUnits(
        self, request: qpb.ListUnitsRequest, context: grpc.ServicerContext
    ) -> qpb.ListUnitsResponse:
        _refuse_unfit(context, request)
        principal = self._caller(context)
        if not unlimited(principal, self.paths):
            if not request.parent_id:
                # The top of a scoped caller's tree is its own scope, as the city is others'.
                with self.engine.connect() as conn:
                    own = get_unit(conn, principal.unit_id)
                return qpb.ListUnitsResponse(units=[unit_reply(*own)] if own else [])
            self._check_unit(context, principal, request.parent_id, "parent_id")
        with self.engine.connect() as conn:
            if request.parent_id and get_unit(conn, request.parent_id) is None:
                # As GetUnit and every question answer an unknown unit, not "no children".
                abort(
                    context,
                    grpc.StatusCode.NOT_FOUND,
                    f"parent_id: unknown unit '{request.parent_id}'",
                )
            units = list_units(conn, request.parent_id)
        return qpb.ListUnitsResponse(units=[unit_reply(u, n) for u, n in units])

    def GetUnit(self, request: qpb.GetUnitRequest, context: grpc.ServicerContext) -> qpb.Unit:
        _refuse_unfit(context, request)
        if not request.unit_id:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "unit_id: required")
        self._check_unit(context, self._caller(context), request.unit_id, "unit_id")
        with self.engine.connect() as conn:
            found = get_unit(conn, request.unit_id)
        if found is None:
            abort(context, grpc.StatusCode.NOT_FOUND, f"unit_id: unknown unit '{request.unit_id}'")
        return unit_reply(*found)

    def ListCampaigns(
        self, request: qpb.ListCampaignsRequest, context: grpc.ServicerContext
    ) -> qpb.ListCampaignsResponse:
        self._caller(context)  # campaign metadata (names, groups, targets) is no secret
        if request.omit_targets:
            listed = campaigns_without_targets(self.engine)
            return qpb.ListCampaignsResponse(campaigns=[campaign_reply(c) for c in listed])
        with self.engine.connect() as conn:
            ids = (
                conn.execute(
                    select(s.campaigns.c.campaign_id).order_by(
                        s.campaigns.c.starts_at, s.campaigns.c.campaign_id
                    )
                )
                .scalars()
                .all()
            )
        campaigns = [load_campaign(self.engine, i) for i in ids]
        return qpb.ListCampaignsResponse(campaigns=[campaign_reply(c) for c in campaigns if c])

    def GetCampaign(
        self, request: qpb.GetCampaignRequest, context: grpc.ServicerContext
    ) -> qpb.Campaign:
        _refuse_unfit(context, request)
        self._caller(context)
        if not request.campaign_id:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "campaign_id: required")
        c = load_campaign(self.engine, request.campaign_id)
        if c is None:
            abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"campaign_id: unknown campaign '{request.campaign_id}'",
            )
        return campaign_reply(c)

    def GetProgress(
        self, request: qpb.GetProgressRequest, context: grpc.ServicerContext
    ) -> qpb.Progress:
        self._caller(context)
        reply = qpb.Progress(
            partitions=[
                qpb.PartitionProgress(partition=p, applied=o)
                for p, o in sorted(self.answers.positions.read().items())
            ]
        )
        # Read after the positions: a commit between moves them by the next read, which an
        # audit report compares (`duhub.audit.report.in_one_state`).
        if request.with_known_at and (at := known_at(self.engine)) is not None:
            reply.known_at.CopyFrom(from_nanos(at))
        return reply

    def _explain(self, r: qpb.ExplainRequest) -> qpb.Explanation:
        found = explain(
            self.engine,
            r.metric,
            r.scope_unit_id,
            r.area,
            _opt_time(r, "from"),
            _opt_time(r, "to"),
            _as_of(r),
            r.limit,
        )
        return explanation_reply(found)

    def Explain(
        self, request: qpb.ExplainRequest, context: grpc.ServicerContext
    ) -> qpb.Explanation:
        _refuse_unfit(context, request)
        return self._answer(context, self._explain, _scoped(request, self, context))

    def _explain_coverage(self, r: qpb.ExplainCoverageRequest) -> qpb.CoverageExplanation:
        if not r.campaign_id:
            raise QueryError("campaign_id: required")
        reply = coverage_explanation_reply(
            explain_coverage(
                self.engine,
                r.campaign_id,
                r.scope_unit_id,
                r.group_id,
                _as_of(r),
                _clamped_time(r, "occurred_before"),
                r.limit,
            )
        )
        return _times_as_asked(r, reply)

    def ExplainCoverage(
        self, request: qpb.ExplainCoverageRequest, context: grpc.ServicerContext
    ) -> qpb.CoverageExplanation:
        _refuse_unfit(context, request)
        return self._answer(context, self._explain_coverage, _scoped(request, self, context))

    def ListDeadLetters(
        self, request: qpb.ListDeadLettersRequest, context: grpc.ServicerContext
    ) -> qpb.ListDeadLettersResponse:
        """A scoped caller (a county's node or users) lists the dead letters of the sources
        in its subtree only: a source asked outside it is PERMISSION_DENIED, as a scope is;
        one naming no unit, or no source at all, is the city's to read."""
        _refuse_unfit(context, request)
        principal = self._caller(context)
        within = ""
        if not unlimited(principal, self.paths):
            within = self._scope(context, "", "source")
            if request.source:
                self._check_unit(context, principal, request.source, "source")
        return self._answer(
            context,
            lambda: dead_letters_reply(
                list_dead_letters(
                    self.engine,
                    request.source,
                    within,
                    _clamped_time(request, "since"),
                    request.limit,
                )
            ),
        )


def _scoped(request, servicer: QueryServicer, context: grpc.ServicerContext):  # type: ignore[no-untyped-def]
    """Return the request with its scope_unit_id made the caller's (the same object when the
    scope stays as asked)."""
    scope = servicer._scope(context, request.scope_unit_id, "scope_unit_id")
    if scope == request.scope_unit_id:
        return request
    scoped = type(request)()
    scoped.CopyFrom(request)
    scoped.scope_unit_id = scope
    return scoped
