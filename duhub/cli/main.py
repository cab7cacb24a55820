"""The `duhub` command: run the hub, publish events, ask questions."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import NoReturn

from duhub.cli.grpcenv import asks_json_logs, quiet_grpc_core

# Before the imports below load grpc, whose C core reads GRPC_VERBOSITY only then.
quiet_grpc_core(sys.argv[1:])

from duhub.bootstrap import ANSWER_CACHE, DEFAULT_LISTEN  # noqa: E402
from duhub.cli.argtypes import (  # noqa: E402
    client_target,
    environment_default,
    host_port,
    log_location,
    not_empty,
    seconds,
    whole_number,
)
from duhub.cli.client import EXIT_USAGE  # noqa: E402
from duhub.cli.timeargs import (  # noqa: E402
    add_period,
    add_time_zone,
    west_offsets_glued,
    zone_from_environment,
)
from duhub.readmodel.lineage import MAX_EXPLAIN_LIMIT  # noqa: E402
from services.query.answers import MAX_SIZE as MAX_ANSWERS  # noqa: E402
from services.slots import MAX_STREAM_CAP, MAX_STREAMS  # noqa: E402

DEFAULT_HTTP = "127.0.0.1:8080"
DEFAULT_METRICS = "127.0.0.1:9464"

EPILOG = f"""exit codes: 0 ok; 1 some events were rejected (publish); 2 bad arguments or a
question the hub cannot answer as asked; 3 no hub answered; 4 replay differs from the live
read model, or audit verify found the log tampered with (replay, up: a damaged record in
it); 5 credentials refused; 6 replay could
not be compared (the live read model stayed behind it), or audit report could not read one
state of the read model (it changed under every attempt). The hub's address comes from
--target or DUHUB_TARGET, defaulting to the local all-in-one hub at {DEFAULT_LISTEN}."""


class _Parser(argparse.ArgumentParser):
    """Under --log-format json, a refused argument is a JSON record too, not argparse's lines
    for people (main sets the logging up before parsing)."""

    def error(self, message: str) -> NoReturn:
        from duhub.logs import fatal, json_logging

        if json_logging():
            self.exit(fatal(f"{self.prog}: error: {message}", EXIT_USAGE))
        super().error(message)


def _client_opts(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
    p.add_argument(
        "--target",
        type=client_target,
        help=f"hub address HOST:PORT (default $DUHUB_TARGET or {DEFAULT_LISTEN})",
    )
    if json_flag:
        p.add_argument("--json", action="store_true", help="print the reply as canonical JSON")
    _credential_opts(p)


def _credential_opts(p: argparse.ArgumentParser) -> None:
    """A client's credentials (duhub.cli.credentials); a hub without any needs none."""
    g = p.add_argument_group("credentials (for a hub started with --tls-dir or --tokens)")
    g.add_argument(
        "--tls-dir", metavar="DIR", help="use TLS, trusting DIR/ca.crt (default $DUHUB_TLS_DIR)"
    )
    g.add_argument(
        "--cert",
        metavar="NAME",
        help="client certificate: NAME.crt/.key in --tls-dir (e.g. node-420581, or 420581, "
        "alice), or a file (default $DUHUB_CERT)",
    )
    g.add_argument("--ca", metavar="FILE", help="the CA certificate to trust, as a file")
    g.add_argument("--key", metavar="FILE", help="the client key (default: --cert's .key)")
    g.add_argument(
        "--token-file", metavar="FILE", help="a bearer token in a file (default $DUHUB_TOKEN)"
    )


def _server_security_opts(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "credentials (without them, only a loopback --listen/--http address is allowed)"
    )
    g.add_argument(
        "--tls-dir",
        metavar="DIR",
        default="",
        help="TLS with DIR/server.crt, server.key; callers present a client certificate "
        "signed by DIR/ca.crt (with --tokens: a token instead)",
    )
    g.add_argument(
        "--tokens",
        metavar="FILE",
        default="",
        help="accept 'authorization: Bearer TOKEN' for the token hashes in FILE "
        "(made with 'duhub certs token')",
    )


def _observe_opts(p: argparse.ArgumentParser, metrics: str) -> None:
    """Prometheus metrics and log format of a server process (duhub.metrics, duhub.logs)."""
    shown = metrics or "off"
    p.add_argument(
        "--metrics",
        type=_or_off,
        default=metrics,
        metavar="HOST:PORT",
        help=f"serve Prometheus metrics at http://HOST:PORT/metrics (default {shown}; "
        "port 0: any; off: none)",
    )
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="text, or json: one JSON object per line (time, level, logger, message, fields)",
    )


def _stream_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-streams",
        type=_stream_cap,
        default=MAX_STREAMS,
        metavar="N",
        help="hold at most N WatchCoverage, N PublishStream, N server reflection and N dashboard "
        f"event streams open at once, a thread each; more are refused (default {MAX_STREAMS})",
    )
    p.add_argument(
        "--max-streams-per-caller",
        type=_stream_cap,
        metavar="M",
        help="and at most M of each kind held by one caller (its token's or certificate's "
        "principal), 1 to N; more are refused (default a quarter of N, at least 1; a hub "
        "without credentials cannot tell its callers apart: N alone applies)",
    )


def _backend_opts(p: argparse.ArgumentParser) -> None:
    # From the environment too, so a password need not show on a command line.
    # An empty variable is unset, as DUHUB_TARGET; an empty option is refused (not_empty).
    p.add_argument(
        "--log",
        type=log_location,
        default=environment_default("DUHUB_LOG"),
        help="kafka://HOST:PORT[?key=PATH&topic=T&partitions=N&replication=R] or a data dir "
        "(default $DUHUB_LOG, else --data-dir)",
    )
    _db_opt(p)


def _db_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        type=not_empty,
        default=os.environ.get("DUHUB_DB") or None,
        help="postgresql://… or sqlite:///… (default $DUHUB_DB, else SQLite in --data-dir)",
    )


def _data_dir_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir", type=not_empty, default="data", help="the hub's data dir (default ./data)"
    )


def _reference_opt(p: argparse.ArgumentParser, only: str = "") -> None:
    p.add_argument(
        "--reference",
        type=not_empty,
        metavar="FILE",
        help=f"{only}load this reference hierarchy (JSON, the shape of the shipped "
        "duhub/reference/yichang.json) instead of the shipped Yichang one with its sample "
        "townships and villages; units may be added at its end later, never changed",
    )


class _Version(argparse.Action):
    """Print the build (duhub.build) and exit, asking git only when --version is given, not
    each time the parser is built as argparse's own version action would."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the build (version, commit)")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        from duhub import build

        print(build.describe())
        parser.exit()


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="duhub", description=__doc__, epilog=EPILOG)
    root.add_argument("--version", action=_Version)
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run the whole hub in one process (embedded log + SQLite)")
    up.add_argument(
        "--data-dir",
        type=not_empty,
        default="data",
        help="where the log and read model live (default ./data)",
    )
    up.add_argument(
        "--listen",
        type=_listen,
        default=DEFAULT_LISTEN,
        help=f"gRPC address (default {DEFAULT_LISTEN})",
    )
    up.add_argument(
        "--no-simulate",
        action="store_true",
        help="no simulated county nodes: only the reference hierarchy and what is published",
    )
    up.add_argument(
        "--rate",
        type=_rate,
        default=20.0,
        help="simulated events per second (default 20; more than 0, at most 100000)",
    )
    up.add_argument(
        "--http",
        type=_or_off,
        default=DEFAULT_HTTP,
        metavar="HOST:PORT",
        help=f"the dashboard's HTTP address (default {DEFAULT_HTTP}; port 0: any; off: none)",
    )
    _reference_opt(up)
    _stream_opts(up)
    _backend_opts(up)
    _server_security_opts(up)
    _observe_opts(up, DEFAULT_METRICS)

    serve = sub.add_parser("serve", help="run one service alone: ingest, aggregate or query")
    serve.add_argument("service", choices=["ingest", "aggregate", "query"])
    serve.add_argument(
        "--data-dir", type=not_empty, default="data", help="default place of log and read model"
    )
    serve.add_argument(
        "--listen",
        type=_listen,
        default=DEFAULT_LISTEN,
        help=f"gRPC address (default {DEFAULT_LISTEN})",
    )
    serve.add_argument(
        "--http",
        type=_or_off,
        default=DEFAULT_HTTP,
        metavar="HOST:PORT",
        help=f"query only: the dashboard's HTTP address (default {DEFAULT_HTTP}; off: none)",
    )
    serve.add_argument(
        "--answer-cache",
        type=_answer_cache,
        default=ANSWER_CACHE,
        metavar="N",
        help="query only: keep up to N answers (32 MB at most) until the read model changes "
        f"(default {ANSWER_CACHE}; 0: compute every answer)",
    )
    _reference_opt(serve, "ingest only: ")
    _stream_opts(serve)
    _backend_opts(serve)
    _server_security_opts(serve)
    _observe_opts(serve, "")

    pub = sub.add_parser("publish", help="send events from a JSON Lines file ('-' for stdin)")
    pub.add_argument("file")
    pub.add_argument(
        "--wait",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="wait until accepted events show in queries (default 30; 0: don't)",
    )
    pub.add_argument(
        "--outbox",
        metavar="PATH",
        help="the local outbox events are stored in until the hub answers "
        "(default ~/.cache/duhub/outbox-TARGET.db)",
    )
    pub.add_argument(
        "--retry-for",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="keep retrying while no hub answers for this long, then exit 3 (default 30)",
    )
    _client_opts(pub)

    query = sub.add_parser("query", help="ask coverage or statistics")
    qsub = query.add_subparsers(dest="question", required=True, metavar="QUESTION")
    cov = qsub.add_parser("coverage", help="coverage of a campaign, per tier, group and county")
    cov.add_argument("--campaign", required=True, type=not_empty, help="campaign id")
    cov.add_argument("--scope", type=not_empty, help="only targets inside this unit's subtree")
    cov.add_argument("--as-of", help="what the hub knew then (RFC 3339 time or date)")
    # Event time beside --as-of's record time: "what was the coverage on a given day".
    when = cov.add_mutually_exclusive_group()
    when.add_argument(
        "--on",
        metavar="DAY",
        help="the coverage on that day: only visits that occurred before its end count (a date)",
    )
    when.add_argument(
        "--occurred-before",
        metavar="TIME",
        help="only visits that occurred before this moment count (RFC 3339 time or date)",
    )
    add_time_zone(cov, "--on's day, and a bare date in --as-of or --occurred-before, are read in")
    _client_opts(cov)
    st = qsub.add_parser("stats", help="figures for a scope, area and period")
    st.add_argument(
        "--metric",
        action="append",
        nargs="+",
        required=True,
        metavar="NAME",
        help="metric names: several after it, separated by commas, or --metric repeated",
    )
    # Given empty (a script's unset variable), refused: not the city's, or every area's, figures.
    st.add_argument(
        "--scope",
        type=not_empty,
        help="unit id (its whole subtree); default the city (a scoped caller's own unit)",
    )
    st.add_argument("--area", type=not_empty, help="policy area, e.g. ecology; default all")
    add_period(st, "(RFC 3339 or date)")
    st.add_argument(
        "--campaign",
        type=not_empty,
        help="the figures of this campaign's groups only (visits); with --group-by group|tier",
    )
    st.add_argument(
        "--group-by",
        choices=["unit", "day", "week", "month", "quarter", "year", "group", "tier"],
        help="group and tier: a campaign's groups (with --campaign)",
    )
    st.add_argument("--as-of", help="what the hub knew then (RFC 3339 time or date)")
    st.add_argument(
        "--compare",
        choices=["previous"],
        help="also the period just before --from..--to (calendar months when both are a "
        "month's first day, else as many days, else as long), with the change, in one answer",
    )
    add_time_zone(
        st, "days, weeks, months… start in, and a bare date in --from, --to, --through and --as-of"
    )
    _client_opts(st)

    units = sub.add_parser("units", help="list the child units of a unit (default: the city)")
    units.add_argument("parent", nargs="?", help="parent unit id")
    _client_opts(units)
    camps = sub.add_parser("campaigns", help="list campaigns")
    add_time_zone(camps, "the campaigns' windows are shown in")
    _client_opts(camps)
    _ops_commands(sub)
    from duhub.cli.outbox import add_parsers as _outbox_commands

    _outbox_commands(sub, _credential_opts)
    from duhub.cli.certs import add_parsers as _certs_commands

    _certs_commands(sub)
    return root


def _ops_commands(sub) -> None:  # type: ignore[no-untyped-def]
    """Replay, lineage and audit: the ops and auditors' commands."""
    rp = sub.add_parser(
        "replay",
        help="rebuild the read model from the log and compare it with the live one, where the "
        "live one stands (what it applied meanwhile is replayed too)",
    )
    _data_dir_opt(rp)
    _backend_opts(rp)
    rp.add_argument(
        "--into", type=not_empty, help="the fresh read model (default sqlite in DATA/replay.db)"
    )
    rp.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    rp.add_argument("--until", help="only events recorded at or before this time")
    rp.add_argument(
        "--from-offset",
        help="count only from this offset on (N, or P:O,… per Kafka partition); "
        "what comes before builds state only",
    )
    rp.add_argument(
        "--from-time", help="count only events recorded at or after this time (state before)"
    )
    add_time_zone(rp, "a bare date in --until and --from-time is read in")
    rp.add_argument("--no-compare", action="store_true", help="skip the comparison with --db")
    rp.add_argument(
        "--wait",
        type=seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for a live read model behind the replay to catch up before "
        "giving up the comparison (exit 6; default 60)",
    )
    rp.add_argument("--progress", action="store_true", help="show progress even when piped")
    rp.add_argument("--json", action="store_true", help="print the result as JSON")

    rm = sub.add_parser("readmodel", help="look after a read model")
    rmsub = rm.add_subparsers(dest="readmodel_command", required=True, metavar="ACTION")
    tw = rmsub.add_parser(
        "trust-writes",
        help="after an older build wrote the read model (refused at start since): check the "
        "rows it wrote against this layout and, when they hold, take its positions as this "
        "layout's (stop it first)",
    )
    _data_dir_opt(tw)
    _db_opt(tw)
    ex = sub.add_parser(
        "explain",
        help="list the events that make up one figure, or the visits that covered a "
        "campaign's targets",
    )
    what = ex.add_mutually_exclusive_group(required=True)
    what.add_argument("--metric", help="one metric name: the events behind its figure")
    what.add_argument(
        "--campaign",
        type=not_empty,
        help="a campaign id: the visit that covered each of its covered targets",
    )
    ex.add_argument(
        "--scope",
        type=not_empty,
        help="unit id (its whole subtree); default the city (a scoped caller's own unit)",
    )
    ex.add_argument("--area", type=not_empty, help="policy area; default all (--metric)")
    add_period(ex, "(--metric)", " (--metric)")
    ex.add_argument("--group", type=not_empty, help="only this group's targets (--campaign)")
    ex_when = ex.add_mutually_exclusive_group()
    ex_when.add_argument(
        "--on", metavar="DAY", help="the coverage on that day, as query coverage (--campaign)"
    )
    ex_when.add_argument(
        "--occurred-before", metavar="TIME", help="only visits before this moment (--campaign)"
    )
    ex.add_argument("--as-of", help="what the hub knew then")
    add_time_zone(
        ex,
        "a bare date in --from, --to, --as-of and --occurred-before, and --on and --through, "
        "are read in, "
        "and the events' times shown in",
    )
    ex.add_argument(
        "--limit",
        type=whole_number(0, MAX_EXPLAIN_LIMIT),
        default=1000,
        help=f"events or targets listed at most (default 1000, at most {MAX_EXPLAIN_LIMIT}; "
        "0: the hub's default)",
    )
    _client_opts(ex)

    dl = sub.add_parser(
        "deadletters",
        help="list the records the hub refused after they reached the log (dead letters), "
        "newest first",
        description="List the records of the log the hub refused (dead letters: Kafka-direct "
        "events failing the rules, records that are no Event), newest first: when the hub "
        "recorded each, its log position (partition:offset), event id, source, and the reason, "
        "which names the field. A caller scoped to a unit (a county's node or users) sees only "
        "those of the sources in its subtree.",
    )
    dl.add_argument("--source", type=not_empty, help="only this source's (a county's unit id)")
    dl.add_argument(
        "--since", metavar="TIME", help="only those recorded at or after this (RFC 3339 or date)"
    )
    add_time_zone(dl, "a bare date in --since is read in, and the times shown in")
    dl.add_argument(
        "--limit",
        type=whole_number(0, MAX_EXPLAIN_LIMIT),
        default=1000,
        help=f"the newest listed at most (default 1000, at most {MAX_EXPLAIN_LIMIT}; 0: the "
        "hub's default)",
    )
    _client_opts(dl)

    au = sub.add_parser("audit", help="tamper evidence and audit reports")
    asub = au.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    av = asub.add_parser("verify", help="walk the log's hash chains; print a checkpoint")
    _data_dir_opt(av)
    av.add_argument(
        "--log",
        type=log_location,
        default=environment_default("DUHUB_LOG"),
        help="kafka://HOST:PORT[?key=PATH&topic=T] or a data dir "
        "(default $DUHUB_LOG, else --data-dir)",
    )
    av.add_argument(
        "--checkpoint",
        help="a checkpoint printed earlier: the log up to it must be as it was then (the "
        "whole log is walked too)",
    )
    av.add_argument("--json", action="store_true", help="print the result as JSON")
    ar = asub.add_parser("report", help="every metric for every county, with event counts")
    ar.add_argument("--from", dest="from_", required=True, help="period start, inclusive")
    ar.add_argument("--to", required=True, help="period end, exclusive")
    ar.add_argument("--area", type=not_empty, help="policy area; default all")
    ar.add_argument("--as-of", help="what the hub knew then")
    add_time_zone(ar, "a bare date in --from, --to and --as-of is read in")
    ar.add_argument(
        "--format",
        choices=["table", "csv", "excel", "json"],
        default="table",
        help="excel: CSV with a UTF-8 byte-order mark, without which Excel and WPS show the "
        "counties' Chinese names garbled (default: table)",
    )
    ar.add_argument("--out", type=not_empty, help="write to this file instead of standard output")
    ar.add_argument(
        "--target",
        type=client_target,
        help=f"hub address (default $DUHUB_TARGET or {DEFAULT_LISTEN})",
    )
    _credential_opts(ar)


def _rate(text: str) -> float:
    """An argparse type: the simulator's events per second (nan or inf had it make nothing,
    or loop making events without end)."""
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < rate <= 100_000:  # false for nan too
        raise argparse.ArgumentTypeError(f"{text} is not more than 0 and at most 100000")
    return rate


# Streams of a kind one server holds open (a thread each); a uint32 field of a request.
_stream_cap = whole_number(1, MAX_STREAM_CAP)
_answer_cache = whole_number(0, MAX_ANSWERS)
# Server addresses: HOST:PORT with a port that exists (--http, --metrics: or off).
_listen, _or_off = host_port(), host_port(off=True)


def main(argv: list[str] | None = None) -> int:
    # Piped into head or less: stop quietly when the reader goes away.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    argv = sys.argv[1:] if argv is None else argv
    if asks_json_logs(argv):
        from duhub.logs import setup_logging

        setup_logging("json")  # before parsing: a refused argument is a record too
    args = parser().parse_args(west_offsets_glued(argv))
    if args.command in ("up", "serve", "replay"):
        from duhub.runtime import limit_malloc_arenas, tune_gc

        limit_malloc_arenas()
        tune_gc()
    if args.command not in ("up", "serve"):  # their --tls-dir is the server's
        from duhub.cli import client

        client.configure(args)
        zone_from_environment(args)
    try:
        if args.command == "certs":
            from duhub.cli import certs

            return certs.run(args)
        if args.command == "up":
            from duhub.cli import up

            return up.run(args)
        if args.command == "serve":
            from duhub.cli import serve

            return serve.run(args)
        if args.command == "publish":
            from duhub.cli import client, publish

            return publish.run(
                args.file,
                client.target(args.target),
                args.json,
                args.wait,
                outbox=args.outbox,
                retry_for=args.retry_for,
            )
        if args.command == "outbox":
            from duhub.cli import outbox

            return outbox.run(args)
        if args.command == "query":
            from duhub.cli import query

            return query.coverage(args) if args.question == "coverage" else query.stats(args)
        if args.command == "replay":
            from duhub.cli import replay

            return replay.run(args)
        if args.command == "readmodel":
            from duhub.cli import trust

            return trust.run(args)
        if args.command == "explain":
            from duhub.cli import explain

            return explain.run(args)
        if args.command == "deadletters":
            from duhub.cli import deadletters

            return deadletters.run(args)
        if args.command == "audit":
            from duhub.cli import audit

            return audit.verify(args) if args.audit_command == "verify" else audit.report(args)
        if args.command == "units":
            from duhub.cli import catalog

            return catalog.units(args)
        if args.command == "campaigns":
            from duhub.cli import catalog

            return catalog.campaigns(args)
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
