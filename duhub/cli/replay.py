"""`duhub replay`: rebuild every projection from the log and compare with the live one."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from duhub.bootstrap import open_log
from duhub.cli import client
from duhub.cli.replay_guard import applied_without_cut
from duhub.cli.startup import FAILURES, check_db, failure, redacted, sqlite_file
from duhub.cli.tables import shown
from duhub.cli.timeargs import time_arg, zone_arg
from duhub.convert import from_nanos, to_nanos
from duhub.diskfull import disk_full
from duhub.log.base import EventLog, LogCorrupted
from duhub.log.belongs import refuse_other_origin_key
from duhub.log.embedded import EmbeddedLog
from duhub.log.spec import is_kafka
from duhub.readmodel.digest import digest, table_digests
from duhub.readmodel.engine import open_engine
from duhub.readmodel.layout import LayoutRefused
from duhub.readmodel.log_fills import fill_from_log
from duhub.readmodel.schema import metadata
from services.aggregate.replay import (
    ReplayCut,
    ReplayProgress,
    claim_cut,
    cut_metadata,
    replay,
)
from services.aggregate.verify import NotComparable, compare_with_live

EXIT_DAMAGED = 4  # the log is damaged (as audit verify's exit 4)
MAX_OFFSET = 2**63 - 1  # Kafka's offsets and the read model's are signed 64-bit integers


def _bar(p: ReplayProgress) -> str:
    share = p.done / p.total if p.total else 1.0
    filled = int(share * 30)
    eta = "—" if p.eta == float("inf") else str(timedelta(seconds=int(p.eta)))
    return (
        f"\r[{'#' * filled}{'.' * (30 - filled)}] {p.done:,}/{p.total:,} events "
        f"{share:6.1%}  {p.rate:,.0f} ev/s  ETA {eta} "
    )


def _nanos(at: Timestamp | None) -> int | None:
    return None if at is None else to_nanos(at)


def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    log_spec = args.log or str(data_dir)
    live_url = args.db or f"sqlite:///{data_dir / 'readmodel.db'}"
    target_url = args.into or f"sqlite:///{data_dir / 'replay.db'}"
    try:
        check_db(target_url, "--into")
        check_db(live_url, "--db")
    except ValueError as e:
        client.fail(str(e), client.EXIT_USAGE)
    if same_database(target_url, live_url):
        client.fail("--into: must not be the live read model", client.EXIT_USAGE)
    own = data_dir / "readmodel.db"
    if same_database(target_url, f"sqlite:///{own}"):
        # The data dir's own is the one `duhub up --data-dir` serves, whatever --db (or
        # DUHUB_DB) names: before, --fresh deleted it under the running hub.
        client.fail(
            f"--into: must not be the live read model ({own}, the data dir's own)",
            client.EXIT_USAGE,
        )
    # Given empty (a script's unset variable) a time is refused, not read as left out: an
    # empty --until replayed the whole log.
    zone = zone_arg(args.time_zone)
    until = _nanos(time_arg(args.until, "--until", zone))
    since = _nanos(time_arg(args.from_time, "--from-time", zone))
    if since is not None and until is not None and since > until:
        # Counted from after the cut: nothing could count ("0 events applied", exit 0).
        client.fail(
            f"--from-time: {args.from_time} is after --until {args.until}: nothing would count",
            client.EXIT_USAGE,
        )
    try:
        named = _offsets(args.from_offset)
    except ValueError as e:
        client.fail(str(e), client.EXIT_USAGE)
    start = {p: o for p, o in named.items() if o}  # from offset 0: from the start
    if not is_kafka(log_spec) and not (Path(log_spec) / EmbeddedLog.FILE).exists():
        # Else a mistyped directory got an empty log and read model made in it, and the
        # replay of nothing "equal" to them.
        option = "--log" if args.log else "--data-dir"
        client.fail(f"{option}: no {EmbeddedLog.FILE} in {log_spec}", client.EXIT_USAGE)
    if args.into is None and not data_dir.is_dir():
        # On Kafka and PostgreSQL there may be no data dir: said now, not as SQLite's "unable
        # to open database file" once the log is open.
        client.fail(
            f"--data-dir: no directory {data_dir} for the default --into (DATA/replay.db); "
            "give --into sqlite:///FILE or postgresql://…, or an existing --data-dir",
            client.EXIT_USAGE,
        )
    if since is not None or start or until is not None:
        # Counted from a point on, or cut at a moment, it cannot equal the live figures: nothing
        # to compare (and the comparison would replay on to where the live read model stands).
        args.no_compare = True
    live_file = sqlite_file(live_url)
    if not args.no_compare and live_file is not None and not live_file.exists():
        option = "--db" if args.db else "--data-dir"
        client.fail(
            f"{option}: no live read model at {live_file} to compare with "
            "(give --db, or --no-compare)",
            client.EXIT_USAGE,
        )
    # Every option checked: only now is anything changed.
    live = None if args.no_compare else _open(live_url, "--db" if args.db else "--data-dir")
    try:
        log = open_log(log_spec, create=False)  # a misspelt topic is not made, empty
    except LogCorrupted as e:
        client.fail(f"{e}: 'duhub audit verify' names what is damaged", EXIT_DAMAGED)
    except FAILURES as e:  # a bad kafka:// URL or key file, a broker that does not answer
        client.fail(failure(e, live_url, log_spec), client.EXIT_USAGE)
    try:
        # Replayed with another key than ingest's, every event it accepted is a dead letter.
        refuse_other_origin_key(log)
    except ValueError as e:
        client.fail(str(e), client.EXIT_USAGE)
    if unknown := sorted(set(named) - set(log.partitions())):
        # Else a mistyped partition was dropped: the whole log counted, without a word.
        has = ", ".join(map(str, log.partitions())) or "none"
        client.fail(
            f"--from-offset: the log has no partition {unknown[0]} (its partitions: {has})",
            client.EXIT_USAGE,
        )
    ends = log.end_offsets() if named else {}
    for p, offset in sorted(named.items()):
        if offset > ends.get(p, 0):
            # Else every record built state only and the figures were all 0, exit 0.
            client.fail(
                f"--from-offset: offset {offset} of partition {p} is past the log's end "
                f"({ends.get(p, 0)}): nothing would count",
                client.EXIT_USAGE,
            )
    if args.fresh and applied_without_cut(target_url):
        # A hub's live read model (another data dir's, a PostgreSQL one) or a replay older
        # than recorded cuts: --fresh does not delete figures no replay made.
        client.fail(
            f"--into: {redacted(target_url)} holds applied records but is not a replay's "
            "(perhaps a hub's live read model): --fresh would delete them; give another "
            "--into, or delete it yourself if that is what you mean",
            client.EXIT_USAGE,
        )
    if args.fresh:
        _start_over(target_url)
    target = _open(target_url, "--into")
    with _stopped_when_full(target_url):
        return _replay_into(args, log, target, target_url, live, live_url, until, since, start)


def _replay_into(
    args: argparse.Namespace,
    log: EventLog,
    target: Engine,
    target_url: str,
    live: Engine | None,
    live_url: str,
    until: int | None,
    since: int | None,
    start: dict[int, int],
) -> int:
    try:
        claim_cut(target, ReplayCut(until, since, start), log)
    except ValueError as e:
        client.fail(str(e), client.EXIT_USAGE)
    # Read models of an earlier version name their dead letters as this one does, or the
    # comparison finds them different for an id, a source or a visit's campaign
    # (`log_fills`).
    for engine in (target, live):
        if engine is not None:
            fill_from_log(log, engine)
    show = sys.stderr.isatty() or args.progress

    def progress(p: ReplayProgress) -> None:
        if show:
            print(_bar(p), end="", file=sys.stderr, flush=True)

    result = replay(
        log,
        target,
        until_ns=until,
        since_ns=since,
        start=start,
        on_progress=progress,
        full_is_final=True,
    )
    if show:
        print(file=sys.stderr)
    report: dict[str, object] = {
        "replayed": result.done,
        "seconds": round(result.elapsed, 3),
        "events_per_second": round(result.rate),
        "into": redacted(target_url),
    }
    # The moments as read (a bare date in --time-zone or DUHUB_TIME_ZONE), in UTC.
    for key, at in (("until", until), ("from_time", since)):
        if at is not None:
            report[key] = from_nanos(at).ToJsonString()
    tally = result.tally
    differs = False
    if live is None:
        report["digest"] = digest(table_digests(target))
    else:
        try:
            found = compare_with_live(log, target, live, wait_s=args.wait, full_is_final=True)
        except NotComparable as e:
            client.fail(f"not compared: {e}", client.EXIT_NOT_COMPARED)
        tally = tally + found.caught_up_tally
        report.update(
            {
                # The records the live read model applied while the replay ran, replayed too.
                "replayed": result.done + found.caught_up,
                "caught_up": found.caught_up,
                "digest": digest(found.replayed),
                "live": redacted(live_url),
                "live_digest": digest(found.live),
                "compared_at": {str(p): o for p, o in sorted(found.positions.items())},
                "equal": found.equal,
                "differing_tables": found.differing_tables,
                "differing_figures": [asdict(d) for d in found.differing_figures],
            }
        )
        differs = not found.equal
        if differs and getattr(log, "origin_key", b"") is None:
            # A Kafka log read without its origin key: a record forged in ingest's name counts
            # here, where the hub, run with the key, dead-lettered it.
            report["hint"] = (
                "the log was read without ?key=: records claiming ingest's origin were taken "
                "at their word; if the hub runs with an origin key, replay with the hub's "
                "origin key too, from the start (kafka://…?key=PATH and --fresh)"
            )
    # Of what "replayed" counts (every record, the caught-up ones too): a duplicate or a dead
    # letter changed no figure, so neither is an event applied.
    report.update(
        {
            "applied": tally.applied,
            "duplicates": tally.duplicates,
            "dead_letters": tally.dead_letters,
        }
    )
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(
            f"replayed {result.done:,} log records in {result.elapsed:.1f} s "
            f"({result.rate:,.0f} records/s) into {redacted(target_url)}"
        )
        if until is not None:
            print(f"cut at {report['until']}: the records recorded at or before it")
        if since is not None:
            print(f"counted from {report['from_time']}: the records before it build state only")
        if not args.no_compare:
            at = ", ".join(f"{p}:{o}" for p, o in report["compared_at"].items())  # type: ignore[attr-defined]
            print(
                f"compared where the live read model stands (partition:offset {at}; "
                f"{report['caught_up']:,} more records, which it applied meanwhile, replayed "
                f"too: {report['replayed']:,} in all)"
            )
        print(
            f"{tally.applied:,} events applied, {_n(tally.duplicates, 'duplicate')}, "
            f"{_n(tally.dead_letters, 'dead letter')}"
            + (
                " (refused; their reasons are in the dead_letters table)"
                if tally.dead_letters
                else ""
            )
        )
        print(f"digest of the rebuilt read model: {report['digest']}")
        if not args.no_compare:
            print(f"digest of the live read model:    {report['live_digest']}")
            if not differs:
                print("equal: the live figures are exactly what the log gives")
            else:
                print(f"DIFFERENT in: {', '.join(report['differing_tables'])}")  # type: ignore[arg-type]
                for d in report["differing_figures"]:  # type: ignore[attr-defined]
                    print(
                        f"  {d['metric']} at {shown(d['scope_id'])} "
                        f"area {shown(d['area']) or '(none)'} "
                        f"grain {d['grain']} bucket {d['bucket']}: live {d['left']}, "
                        f"replay {d['right']}"
                    )
                if "hint" in report:
                    print(report["hint"])
    return 4 if differs else 0


@contextlib.contextmanager
def _stopped_when_full(url: str) -> Iterator[None]:
    """Stop the replay with exit 2 naming --into when its disk is full: a batch command
    does not wait for space (before, it retried once a second, for ever). What committed
    stays, so a rerun once there is space resumes from there."""
    try:
        yield
    except (SQLAlchemyError, OSError) as e:
        if not disk_full(e):
            raise
        where = sqlite_file(url) or redacted(url)
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        client.fail(
            f"--into: the disk of {where} is full ({reason}): the replay stopped; what it "
            "committed is kept, and running it again once there is space resumes from there",
            client.EXIT_USAGE,
        )


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _open(url: str, option: str) -> Engine:
    """Open a read model, or exit 2 naming the option when it cannot be opened."""
    try:
        return open_engine(url)
    except (SQLAlchemyError, OSError, LayoutRefused) as e:  # refused: written by another build
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        client.fail(f"{option}: cannot open {redacted(url)}: {reason}", client.EXIT_USAGE)


def _start_over(url: str) -> None:
    """Empty a replay target (--fresh): delete a SQLite file, drop the tables of any other."""
    if url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        return
    engine = open_engine(url, create=False)
    try:
        cut_metadata.drop_all(engine)
        metadata.drop_all(engine)
    finally:
        engine.dispose()


def same_database(a: str, b: str) -> bool:
    """Return whether two read model URLs name the same database, however spelled: a
    relative SQLite path is relative to the working directory, as SQLAlchemy takes it."""
    if a == b:
        return True
    try:
        ua, ub = make_url(a), make_url(b)
    except ArgumentError:
        return False
    if ua.get_backend_name() != ub.get_backend_name():
        return False
    if ua.get_backend_name() == "sqlite":
        da, db = ua.database or "", ub.database or ""
        if da in ("", ":memory:") or db in ("", ":memory:"):
            return False
        pa, pb = Path(da).resolve(), Path(db).resolve()
        return pa == pb or (pa.exists() and pb.exists() and pa.samefile(pb))
    if (ua.host, ua.port, ua.database) == (ub.host, ub.port, ub.database):
        return True
    # A server has many names (localhost and 127.0.0.1, its port written or left to the
    # default): ask both what they are. One that does not answer is not known to be the other.
    found = [_server_identity(u) for u in (a, b)]
    return found[0] is not None and found[0] == found[1]


def _server_identity(url: str) -> tuple[object, ...] | None:
    """Return what tells one PostgreSQL database apart from every other (its cluster's
    system identifier and start, and its name), or None when it cannot be asked."""
    from sqlalchemy import create_engine

    if url.startswith("postgresql://"):  # psycopg2, as `open_engine` takes it
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    try:
        engine = create_engine(url, poolclass=NullPool)
    except (ArgumentError, ImportError):
        return None
    try:
        with engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT current_database(), pg_postmaster_start_time(), current_setting('port')"
            ).one()
            try:
                with conn.begin_nested():
                    system = conn.exec_driver_sql(
                        "SELECT system_identifier FROM pg_control_system()"
                    ).scalar()
            except SQLAlchemyError:  # not granted to this role: the start time tells enough
                system = None
        return (*row, system)
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def _offsets(text: str | None) -> dict[int, int]:
    """Parse --from-offset: N (partition 0, the embedded log) or P:O,P:O,… (Kafka)."""
    if not text:
        return {}
    try:
        pairs = (
            [(0, int(text))]
            if ":" not in text
            else [(int(p), int(o)) for p, o in (x.split(":") for x in text.split(","))]
        )
    except ValueError:
        raise ValueError(f"--from-offset: {text!r} is not N or PARTITION:OFFSET,…") from None
    found: dict[int, int] = {}
    for p, o in pairs:
        if p < 0 or o < 0:
            raise ValueError(f"--from-offset: {text!r} holds a negative partition or offset")
        if p in found:  # '0:5,0:6' counted from 6, the 5 dropped without a word
            raise ValueError(f"--from-offset: partition {p} given twice in {text!r}")
        if o > MAX_OFFSET:
            raise ValueError(
                f"--from-offset: offset {o} is past any a log holds (64-bit, {MAX_OFFSET} at most)"
            )
        found[p] = o
    return found
