"""QueryService request fields a client can get wrong, asked of a whole in-process hub over
gRPC: each is refused INVALID_ARGUMENT naming the field and the reason (the command line exits
2 on it), never answered as if it meant something."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from duhub.bootstrap import MAX_MESSAGE, Hub, HubConfig
from duhub.cli.main import main
from duhub.readmodel.lineage import MAX_EXPLAIN_LIMIT
from duhub.v1 import events_pb2 as pb
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from tests.unit.builders import campaign, group, kinds, visit

YIDU = "420581"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One hub for the module: no test changes what it holds."""
    h = Hub(HubConfig(tmp_path_factory.mktemp("hub"), listen="127.0.0.1:0", http=""))
    h.start()
    try:
        events = [
            campaign(
                "vax", [group("c1", pb.TIER_CITY, YIDU)], event_id="c", source="420500", seq=1
            ),
            visit(YIDU, "vax", "c1", event_id="v", source="420500", seq=2),
        ]
        assert kinds(h.ingestor.publish(events)) == ["accepted", "accepted"]
        h.tailer.catch_up()
        yield h
    finally:
        h.stop(grace=0)


@pytest.fixture(scope="module")
def stub(hub: Hub) -> Iterator[query_pb2_grpc.QueryServiceStub]:
    with grpc.insecure_channel(hub.address) as channel:
        yield query_pb2_grpc.QueryServiceStub(channel)


def refusal(call, req) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as e:
        call(req, timeout=10)
    return e.value.code(), e.value.details()


# Timestamps protobuf calls invalid: canonical JSON cannot carry them (an answer echoing one
# could not be printed by grpcurl or --json), and events carrying them are rejected.
BAD_TIMES = [
    (1_700_000_000, -1, "nanos"),
    (1_700_000_000, 1_000_000_000, "nanos"),
    (253_402_300_800, 0, "0001-01-01"),  # 10000-01-01
    (-62_135_596_801, 0, "0001-01-01"),  # before 0001-01-01
]


def _with_time(req, field: str, seconds: int, nanos: int):  # type: ignore[no-untyped-def]
    t = getattr(req, field)
    t.seconds, t.nanos = seconds, nanos
    return req


@pytest.mark.parametrize(("seconds", "nanos", "words"), BAD_TIMES)
@pytest.mark.parametrize("field", ["from", "to", "as_of"])
def test_statistics_refuse_an_invalid_timestamp_naming_the_field(
    stub: query_pb2_grpc.QueryServiceStub, field: str, seconds: int, nanos: int, words: str
) -> None:
    req = _with_time(qpb.GetStatisticsRequest(metrics=["visits"]), field, seconds, nanos)
    code, details = refusal(stub.GetStatistics, req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details.startswith(f"{field}: "), details
    assert words in details, details


@pytest.mark.parametrize(("seconds", "nanos", "words"), BAD_TIMES)
def test_coverage_and_explain_refuse_an_invalid_timestamp_naming_the_field(
    stub: query_pb2_grpc.QueryServiceStub, seconds: int, nanos: int, words: str
) -> None:
    asked = [
        (stub.GetCoverage, qpb.GetCoverageRequest(campaign_id="vax"), "as_of"),
        (stub.GetCoverage, qpb.GetCoverageRequest(campaign_id="vax"), "occurred_before"),
        (stub.Explain, qpb.ExplainRequest(metric="visits"), "as_of"),
        (stub.Explain, qpb.ExplainRequest(metric="visits"), "from"),
        (stub.Explain, qpb.ExplainRequest(metric="visits"), "to"),
        (stub.ExplainCoverage, qpb.ExplainCoverageRequest(campaign_id="vax"), "as_of"),
        (stub.ExplainCoverage, qpb.ExplainCoverageRequest(campaign_id="vax"), "occurred_before"),
    ]
    for call, req, field in asked:
        code, details = refusal(call, _with_time(req, field, seconds, nanos))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert details.startswith(f"{field}: "), details
        assert words in details, details


def test_the_widest_valid_as_of_is_answered_and_printable(
    stub: query_pb2_grpc.QueryServiceStub,
) -> None:
    """The edges themselves are valid timestamps: answered (everything, or nothing), and the
    echoed as_of prints as canonical JSON."""
    latest = _with_time(qpb.GetStatisticsRequest(metrics=["visits"]), "as_of", 253_402_300_799, 0)
    latest.as_of.nanos = 999_999_999
    reply = stub.GetStatistics(latest, timeout=10)
    assert reply.rows[0].values["visits"] == 1
    assert json_format.MessageToDict(reply)["asOf"] == "9999-12-31T23:59:59.999999999Z"
    earliest = _with_time(qpb.GetCoverageRequest(campaign_id="vax"), "as_of", -62_135_596_800, 0)
    code, details = refusal(stub.GetCoverage, earliest)  # nothing was known then
    assert code == grpc.StatusCode.NOT_FOUND, details
    # Visits before year 1 and before the end of year 9999 (past int64 nanoseconds both ways):
    # none and every one, echoed as asked.
    for seconds, nanos, covered in ((-62_135_596_800, 0, 0), (253_402_300_799, 999_999_999, 1)):
        req = _with_time(
            qpb.GetCoverageRequest(campaign_id="vax"), "occurred_before", seconds, nanos
        )
        reply = stub.GetCoverage(req, timeout=10)
        assert sum(t.covered for t in reply.tiers) == covered
        assert reply.occurred_before == req.occurred_before


def test_explain_refuses_an_area_as_statistics_do(stub: query_pb2_grpc.QueryServiceStub) -> None:
    """Explain's total is 'the figure, as GetStatistics answers it': an area no event could
    carry is a question asked wrongly there, not a figure of 0 with no events."""
    for bad in ("BAD", "bad area", "x" * 33):
        code, stats = refusal(
            stub.GetStatistics, qpb.GetStatisticsRequest(metrics=["visits"], area=bad)
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT, stats
        code, details = refusal(stub.Explain, qpb.ExplainRequest(metric="visits", area=bad))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert details == stats
    answer = stub.Explain(qpb.ExplainRequest(metric="visits", area="vaccination"), timeout=10)
    assert (answer.total, answer.event_count) == (1, 1)


def test_explain_refuses_a_limit_whose_answer_could_not_be_sent(
    stub: query_pb2_grpc.QueryServiceStub,
) -> None:
    """limit is a uint32, and the command line took any: at limit 2**32-1 a figure of 250,000
    events built a 46 MB answer the server could not send (RESOURCE_EXHAUSTED 'Sent message
    larger than max', which the command line reads as 'no hub answered', exit 3)."""
    for limit in (MAX_EXPLAIN_LIMIT + 1, 2**32 - 1):
        code, details = refusal(stub.Explain, qpb.ExplainRequest(metric="visits", limit=limit))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert details.startswith(f"limit: at most {MAX_EXPLAIN_LIMIT}"), details
    answer = stub.Explain(qpb.ExplainRequest(metric="visits", limit=MAX_EXPLAIN_LIMIT), timeout=10)
    assert (answer.total, len(answer.events)) == (1, 1)


def test_the_largest_explanation_fits_in_one_message() -> None:
    """MAX_EXPLAIN_LIMIT contributions, each with every field at its longest, fit in the
    32 MiB a reply may take."""
    widest = qpb.EventContribution(
        event_id="e" * 128,
        source="s" * 64,
        seq=2**63 - 1,
        partition=2**32 - 1,
        offset=2**64 - 1,
        unit_id="u" * 64,
        area="a" * 32,
        value=-(2**63),
    )
    for name in ("occurred_at", "recorded_at"):
        getattr(widest, name).CopyFrom(Timestamp(seconds=253_402_300_799, nanos=999_999_999))
    one = qpb.Explanation(events=[widest]).ByteSize()
    assert one * MAX_EXPLAIN_LIMIT + 100 < MAX_MESSAGE


def test_the_command_line_refuses_a_limit_the_hub_would(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["explain", "--metric", "visits", "--limit", str(MAX_EXPLAIN_LIMIT + 1)])
    assert e.value.code == 2
    assert "--limit" in capsys.readouterr().err


def test_reading_a_unit_or_campaign_without_its_id_is_refused_as_required(
    stub: query_pb2_grpc.QueryServiceStub,
) -> None:
    """As GetCoverage and WatchCoverage answer a missing campaign_id: the field is missing, not
    an unknown unit '' (NOT_FOUND)."""
    for call, req, field in (
        (stub.GetUnit, qpb.GetUnitRequest(), "unit_id"),
        (stub.GetCampaign, qpb.GetCampaignRequest(), "campaign_id"),
        (stub.GetCoverage, qpb.GetCoverageRequest(), "campaign_id"),
    ):
        code, details = refusal(call, req)
        assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, f"{field}: required")
    assert stub.GetUnit(qpb.GetUnitRequest(unit_id=YIDU), timeout=10).unit_id == YIDU
    assert stub.GetCampaign(qpb.GetCampaignRequest(campaign_id="vax"), timeout=10).groups


def test_coverage_before_the_campaign_was_recorded_says_so(
    stub: query_pb2_grpc.QueryServiceStub,
) -> None:
    """At a moment before its launch was recorded the hub did not know the campaign: NOT_FOUND,
    but saying why. 'unknown campaign' sent an auditor looking for a typo in an id the hub
    answers for a moment later."""
    req = qpb.GetCoverageRequest(campaign_id="vax")
    req.as_of.FromJsonString("2022-01-01T00:00:00Z")
    code, details = refusal(stub.GetCoverage, req)
    assert code == grpc.StatusCode.NOT_FOUND, details
    assert details.startswith("as_of: campaign 'vax' was not yet recorded at that moment "), details
    code, details = refusal(stub.GetCoverage, qpb.GetCoverageRequest(campaign_id="flu"))
    assert (code, details) == (grpc.StatusCode.NOT_FOUND, "campaign_id: unknown campaign 'flu'")


EXPLAIN = ["explain", "--metric", "visits"]
STATS = ["query", "stats", "--metric", "visits"]
COVERAGE = ["query", "coverage", "--campaign", "vax"]


@pytest.mark.parametrize(
    ("command", "option"),
    [(c, o) for c in (EXPLAIN, STATS) for o in ("--from", "--to", "--as-of")]
    + [(COVERAGE, "--as-of")],
)
def test_an_empty_time_option_is_refused_by_every_command(
    hub: Hub, capsys: pytest.CaptureFixture[str], command: list[str], option: str
) -> None:
    """`duhub explain --as-of "$MOMENT"` with the variable unset answered the present (exit 0)
    where `query stats` and `query coverage` refuse the empty time (exit 2): an auditor's
    script read today's figure as the one of that moment."""
    with pytest.raises(SystemExit) as e:
        main([*command, option, "", "--target", hub.address])
    assert e.value.code == 2
    assert f"duhub: {option}: '' is not a date" in capsys.readouterr().err


# Ids no hub holds, too long to echo whole: 20,000 ASCII characters, and 2,000 Chinese ones,
# 18 bytes each once percent-encoded in the grpc-message trailer.
HUGE_IDS = ["a" * 20_000, "中" * 2_000]


@pytest.mark.parametrize("huge", HUGE_IDS, ids=["ascii", "chinese"])
def test_a_huge_id_is_refused_naming_the_field_not_lost_in_transit(
    stub: query_pb2_grpc.QueryServiceStub, huge: str
) -> None:
    """The refusal quoted the whole id, and a client reads at most 16 KiB of trailers: every
    call came back RESOURCE_EXHAUSTED 'Stream removed (received metadata size exceeds hard
    limit ...)', the status and the field lost."""
    not_found, invalid = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
    calls = [
        (stub.GetCampaign, qpb.GetCampaignRequest(campaign_id=huge), not_found, "campaign_id"),
        (stub.GetUnit, qpb.GetUnitRequest(unit_id=huge), not_found, "unit_id"),
        (stub.ListUnits, qpb.ListUnitsRequest(parent_id=huge), not_found, "parent_id"),
        (stub.GetCoverage, qpb.GetCoverageRequest(campaign_id=huge), not_found, "campaign_id"),
        (
            stub.GetCoverage,
            qpb.GetCoverageRequest(campaign_id="vax", scope_unit_id=huge),
            not_found,
            "scope_unit_id",
        ),
        (stub.GetStatistics, qpb.GetStatisticsRequest(metrics=[huge]), invalid, "metrics"),
        (
            stub.GetStatistics,
            qpb.GetStatisticsRequest(metrics=["visits"], scope_unit_id=huge),
            not_found,
            "scope_unit_id",
        ),
        (stub.Explain, qpb.ExplainRequest(metric=huge), invalid, "metric"),
    ]
    for call, req, expected, field in calls:
        code, details = refusal(call, req)
        assert code == expected, (field, code, details[:200])
        assert details.startswith(f"{field}: "), details[:200]
        assert len(details) < 2_000
    with pytest.raises(grpc.RpcError) as e:
        next(stub.WatchCoverage(qpb.WatchCoverageRequest(campaign_id=huge), timeout=10))
    assert e.value.code() == not_found, e.value.details()[:200]


PADDED = [" 420581", "420581 ", "420581\t", "\n420581", "420581\u3000"]


@pytest.mark.parametrize("padded", PADDED, ids=repr)
def test_an_id_with_whitespace_around_it_is_refused_naming_the_field(
    stub: query_pb2_grpc.QueryServiceStub, padded: str
) -> None:
    """Ids are exact keys. Before, gRPC answered a padded id NOT_FOUND ('unknown unit'), as if
    the unit were not there, while the dashboard API trimmed the same id from its query string
    and answered for the unit: one id, two answers (tests/unit/test_http_api.py)."""
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    vax = padded.replace(YIDU, "vax")
    calls = [
        (stub.GetUnit, qpb.GetUnitRequest(unit_id=padded), "unit_id"),
        (stub.ListUnits, qpb.ListUnitsRequest(parent_id=padded), "parent_id"),
        (stub.GetCampaign, qpb.GetCampaignRequest(campaign_id=vax), "campaign_id"),
        (stub.GetCoverage, qpb.GetCoverageRequest(campaign_id=vax), "campaign_id"),
        (
            stub.GetCoverage,
            qpb.GetCoverageRequest(campaign_id="vax", scope_unit_id=padded),
            "scope_unit_id",
        ),
        (
            stub.GetStatistics,
            qpb.GetStatisticsRequest(metrics=["visits"], scope_unit_id=padded),
            "scope_unit_id",
        ),
        (
            stub.GetStatistics,
            qpb.GetStatisticsRequest(metrics=[padded.replace(YIDU, "visits")]),
            "metrics",
        ),
        (
            stub.GetStatistics,
            qpb.GetStatisticsRequest(metrics=["visits"], area=padded.replace(YIDU, "grain")),
            "area",
        ),
        (stub.Explain, qpb.ExplainRequest(metric="visits", scope_unit_id=padded), "scope_unit_id"),
    ]
    for call, req, field in calls:
        code, details = refusal(call, req)
        assert (code, details.split(": ")[0]) == (invalid, field), details
        assert "whitespace" in details, details
    assert stub.GetUnit(qpb.GetUnitRequest(unit_id=YIDU), timeout=10).unit_id == YIDU


# Bytes a client built from another .proto, or a hand-made one, may send: each method's
# request with a string that is not UTF-8, cut short, or a field of another wire type.
UNREADABLE = [
    ("GetUnit", qpb.Unit, b"\x0a\x02\xff\xfe", "unit_id: invalid UTF-8"),
    (
        "GetStatistics",
        qpb.Statistics,
        b"\x0a\x06visits\x12\x01\xc0",
        "scope_unit_id: invalid UTF-8",
    ),
    ("GetCoverage", qpb.Coverage, b"\x0a\x03vax\x1a\x04\x08\x01", "as_of: truncated"),
    ("Explain", qpb.Explanation, b"\x0a\x80", "metric: truncated"),
    ("ListUnits", qpb.ListUnitsResponse, b"\xff\xff\xff", "request:"),
    # A million metrics, the last not UTF-8: walked before its caller is known, it is looked
    # into only as far as a question goes (security probe: 16 million fields took 40 s).
    (
        "GetStatistics",
        qpb.Statistics,
        b"\x0a\x01v" * 1_000_000 + b"\x0a\x01\xff",
        "request: not valid, and not looked into past its first 1,000 fields (byte 3000)",
    ),
]


@pytest.mark.parametrize(("method", "reply", "data", "said"), UNREADABLE, ids=lambda x: str(x)[:20])
def test_a_request_that_does_not_parse_is_refused_naming_the_field(
    hub: Hub, method: str, reply: type, data: bytes, said: str
) -> None:
    """gRPC's generated handlers parse the request before the method runs: bytes that are no
    request failed the call INTERNAL 'Exception deserializing request!', naming nothing."""
    with grpc.insecure_channel(hub.address) as channel:
        call = channel.unary_unary(
            f"/duhub.v1.QueryService/{method}",
            request_serializer=lambda b: b,
            response_deserializer=reply.FromString,
        )
        code, details = refusal(call, data)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert details.startswith(said), details
        watch = channel.unary_stream(
            "/duhub.v1.QueryService/WatchCoverage",
            request_serializer=lambda b: b,
            response_deserializer=qpb.Coverage.FromString,
        )
        with pytest.raises(grpc.RpcError) as e:
            next(watch(b"\x0a\x03vax\x12\x01\xff", timeout=10))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
        assert e.value.details().startswith("scope_unit_id: invalid UTF-8"), e.value.details()
