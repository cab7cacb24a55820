"""`duhub publish FILE`: send a JSON Lines file of events to the running hub."""

from __future__ import annotations

import io
import itertools
import json
import re
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor

from duhub.cli import client
from duhub.cli.jsonvalues import first_wrong_value, read_int
from duhub.cli.served import NO_QUERIES
from duhub.cli.spool import Spool
from duhub.cli.tables import shown
from duhub.convert import MAX_EVENT_ID
from duhub.health import hub_answered
from duhub.node.outbox import (
    PENDING,
    Backoff,
    Outbox,
    Stored,
    Unreachable,
    default_path,
    fitting,
    placed,
    retryable,
    too_big,
)
from duhub.timeparse import OFFSET
from duhub.utf8 import bad_byte, wide_encoding
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc, query_pb2_grpc
from duhub.v1 import query_pb2 as qpb

BATCH = 500
# How long publish keeps retrying while no hub answers, before exit 3 (the events stay in the
# outbox and the next run sends them).
RETRY_FOR_S = 30.0
# Answered events older than this are forgotten by the outbox (pending and rejected are kept).
KEEP_ANSWERED_S = 7 * 24 * 3600.0
STORED_RESULT = {
    "accepted": ipb.RESULT_ACCEPTED,
    "duplicate": ipb.RESULT_DUPLICATE,
    "rejected": ipb.RESULT_REJECTED,
}


@dataclass(slots=True)
class Tally:
    accepted: int = 0
    duplicate: int = 0
    rejected: list[dict[str, object]] = field(default_factory=list)
    # The log end each partition must reach for every accepted (or duplicate) event to show.
    ends: dict[int, int] = field(default_factory=dict)
    # Answers to the outbox's other events (an earlier run's, another publish's), by result.
    earlier: dict[int, int] = field(default_factory=dict)
    # Whether the hub answered anything (lines that are no event are refused by publish).
    heard: bool = False


class NotUtf8(ValueError):
    """The whole input is in another encoding (UTF-16, UTF-32): no line of it can be read."""


class NotAnEvent(json_format.ParseError):
    """A line that is no event: the event id, when the line names one, and the field at fault,
    when a value is not of its field's kind (the message is then "field: reason", as the hub's
    rejections are)."""

    def __init__(self, message: str, event_id: str = "", field: str = "") -> None:
        super().__init__(message)
        self.event_id = event_id
        self.field = field


@dataclass(frozen=True, slots=True)
class Refused:
    """A line publish refuses, unsent: why, and what it can name."""

    reason: str
    event_id: str = ""
    field: str = ""


def read_events(path: str) -> Iterator[tuple[int, pb.Event | Refused]]:
    """Yield (line number, event) or (line number, why the line is not an event).

    The file is UTF-8; a byte order mark before the first line is skipped (RFC 8259 lets a
    reader ignore it, and Windows tools write one). A line that is not UTF-8 is answered as a
    line that is not an event: it does not stop the reading (it did, with a traceback, after the
    lines before it were stored in the outbox). A UTF-16 or UTF-32 file (Windows PowerShell's
    `>`, Notepad's "Unicode") raises NotUtf8 before any line is yielded.
    """
    raw = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    wide = wide_encoding(raw.peek(4)[:4])
    if wide:
        raw.close()
        raise NotUtf8(f"is {wide}: must be UTF-8")
    # surrogateescape: a byte that is not UTF-8 comes through as U+DC80..U+DCFF, which no
    # decoded UTF-8 yields, so the line it is on can be answered and the rest read on.
    stream = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline=None)
    with stream:
        for n, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            bad = bad_byte(line)
            if bad:
                yield n, Refused(f"invalid UTF-8 ({bad}): must be UTF-8")
                continue
            try:
                yield n, parse_event(line)
            except NotAnEvent as e:
                why = str(e) if e.field else f"not a duhub.v1.Event in canonical JSON: {e}"
                yield n, Refused(why, e.event_id, e.field)
            except json_format.ParseError as e:
                yield n, Refused(f"not a duhub.v1.Event in canonical JSON: {e}")


def _json_name(key: str) -> str:
    """Return protobuf's JSON name for a field name (`unit_id` -> `unitId`); others as they are."""
    parts = key.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


class _GivenTwice(ValueError):
    pass


def _one_spelling(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """Build a JSON object, refusing a field given twice, in one spelling or in both."""
    seen: dict[str, str] = {}
    for key, _ in pairs:
        name = _json_name(key)
        if name in seen:
            given = f'"{seen[name]}" and "{key}"' if seen[name] != key else f'"{key}" twice'
            raise _GivenTwice(f"{name}: given twice ({given})")
        seen[name] = key
    return dict(pairs)


def parse_event(line: str) -> pb.Event:
    """Parse one canonical-JSON Event. `eventId` and `event_id` are both accepted, but an object
    naming one field in both spellings is refused as a duplicate key is: protobuf's parser
    took the last of them (`{"eventId": "a", "event_id": "b"}` was published as 'b')."""
    if line.strip() in ("{", "["):
        raise json_format.ParseError(
            f"'{line.strip()}' alone: an event spread over several lines (pretty-printed "
            f"JSON); {_ONE_EVENT}"
        )
    try:
        js = json.loads(line, object_pairs_hook=_one_spelling, parse_int=read_int)
    except _GivenTwice as e:
        raise json_format.ParseError(str(e)) from e
    except Exception as e:  # noqa: BLE001 - as json_format.Parse (RecursionError too)
        raise json_format.ParseError(_unreadable(line, e)) from e
    if not isinstance(js, dict):
        # protobuf answered an array with its first element and "unhashable type: 'dict'",
        # "abc" with 'no field named "a"', a number with "'int' object is not iterable".
        raise json_format.ParseError(f"a JSON {_json_kind(js)}, not an object: {_ONE_EVENT}")
    event_id = _readable_id(js)
    field, reason = first_wrong_value(js, pb.Event.DESCRIPTOR)
    if field:
        raise NotAnEvent(f"{field}: {reason}", event_id, field)
    odd = _odd_time(js, pb.Event.DESCRIPTOR, "")
    if odd:
        raise NotAnEvent(_not_rfc3339(*odd), event_id)
    try:
        return json_format.ParseDict(js, pb.Event())
    except json_format.ParseError as e:
        bad = _BAD_TIME.match(str(e))
        if bad:
            raise NotAnEvent(_bad_time(js, bad.group(1)), event_id) from e
        # One line of output per line of input: protobuf lists the known fields on a second.
        raise NotAnEvent(" ".join(str(e).split()), event_id) from e
    except Exception as e:  # noqa: BLE001 - as json_format.Parse: what ParseDict raises else
        raise NotAnEvent(" ".join(str(e).split()), event_id) from e


def _unreadable(line: str, e: Exception) -> str:
    """Why `line` is not one JSON value, as json_format.Parse says it, but for more after the
    value: an array's line ('{…},') or two events on one line, said so, not "Extra data"."""
    if isinstance(e, json.JSONDecodeError) and e.msg == "Extra data":
        after = line[e.pos :].strip()[:20]
        return f"{after!r} after the end of the JSON value at column {e.colno}: {_ONE_EVENT}"
    return f"Failed to load JSON: {e}."


def _readable_id(js: dict[str, object]) -> str:
    """The event id a JSON event gives, as the hub echoes one (its first MAX_EVENT_ID
    characters); "" when it gives none that is a string of text."""
    given = js.get("eventId", js.get("event_id"))
    if not isinstance(given, str):
        return ""
    try:
        given.encode("utf-8")
    except UnicodeEncodeError:
        return ""  # a lone surrogate ("\ud800"): printed, it ended publish with a traceback
    return given[:MAX_EVENT_ID]


_ONE_EVENT = "one event per line, each a JSON object (JSON Lines)"


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else "number"


# protobuf's answer to a time that is not RFC 3339 quotes what its parser cut of it ('2022-11'
# of '2022-11-05') and a strptime format: neither what the line holds nor what it should.
_BAD_TIME = re.compile(r"Failed to parse \w+ field: time data .* at Event\.([\w.]+)\.$")


def _bad_time(js: object, path: str) -> str:
    """Say that the time at `path` (`campaignLaunched.startsAt`) is not RFC 3339, quoting it."""
    value = js
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return _not_rfc3339(path, value)


def _not_rfc3339(path: str, value: object) -> str:
    shown = f" {value!r}" if isinstance(value, str) else ""
    return (
        f"{path}:{shown} is not an RFC 3339 time: a date, a time and an offset, e.g. "
        "2022-11-05T00:00:00Z or 2022-11-05T08:00:00+08:00 (a date alone is for the command line)"
    )


# RFC 3339's offsets (timeparse.OFFSET): protobuf's parser takes any digits there: '+80:00',
# a slip for +08:00, moved an event 80 hours, '-800:00' a month, silently.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|" + OFFSET + ")", re.I)
_TIMESTAMP = "google.protobuf.Timestamp"


def _odd_time(js: dict[str, object], d: Descriptor, path: str) -> tuple[str, str] | None:
    """Return (path, value) of the first time string of a JSON event outside RFC 3339's form."""
    for key, value in js.items():
        f = d.fields_by_camelcase_name.get(key) or d.fields_by_name.get(key)
        if f is None or f.message_type is None:
            continue  # protobuf answers a field it does not know
        where = f"{path}.{key}" if path else key
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            at = f"{where}[{i}]" if isinstance(value, list) else where
            if f.message_type.full_name == _TIMESTAMP:
                if isinstance(item, str) and not _RFC3339.fullmatch(item):
                    return at, item
            elif isinstance(item, dict) and (found := _odd_time(item, f.message_type, at)):
                return found
    return None


def _send(
    stub: ingest_pb2_grpc.IngestServiceStub, events: list[pb.Event], retry_for: float
) -> ipb.PublishResponse:
    """Send events the outbox cannot hold (no event_id, or an id repeated in the file)."""
    # Retrying is safe: the hub answers DUPLICATE for what it already accepted.
    backoff = Backoff()
    deadline = time.monotonic() + retry_for
    while True:
        try:
            return stub.Publish(ipb.PublishRequest(events=events), timeout=60)
        except grpc.RpcError as e:
            if not retryable(e) or time.monotonic() > deadline:
                raise
            time.sleep(backoff.next())


def publish(
    path: str, address: str, box: Outbox, retry_for: float = RETRY_FOR_S, tally: Tally | None = None
) -> Tally:
    """Store the file's events in the outbox, forward it, and tally the answers per line in
    `tally` (a new one if not given); return the tally.

    Every event of the file is sent again, as it is now, even one the outbox answered before
    (the hub de-duplicates); events left pending by an earlier run are forwarded first, and
    those another publish stores meanwhile are forwarded by whichever has the outbox's turn.
    Raises Unreachable when the hub did not answer for `retry_for` seconds: a caller that
    passed `tally` still holds what the hub answered before, to say it.
    """
    tally = Tally() if tally is None else tally
    spool = Spool()
    try:
        # The file is read whole before any of it is stored, then stored in one transaction:
        # input that fails partway (an I/O error, a connection reset) raises OSError with
        # nothing of it queued, where each 500 events stored as read stayed pending for the
        # next publish to send. Kept on disk meanwhile, not in memory (duhub.cli.spool).
        for line, item in read_events(path):
            if isinstance(item, Refused):
                tally.rejected.append(
                    {
                        "line": line,
                        "event_id": item.event_id,
                        "field": item.field,
                        "reason": item.reason,
                    }
                )
            else:
                spool.keep(line, item)
        box.store(spool.for_outbox(), replace=True)
        _forward(spool, address, box, retry_for, tally)
    finally:
        # Also when the hub stopped answering: what it answered before is said all the same.
        tally.rejected.sort(key=lambda r: r["line"])  # type: ignore[arg-type, return-value]
        spool.close()
    return tally


def _forward(spool: Spool, address: str, box: Outbox, retry_for: float, tally: Tally) -> None:
    """Forward the outbox and send the events it cannot hold; tally the answers per line."""

    def count(line: int | None, r: ipb.EventResult) -> None:
        if line is None:
            tally.earlier[r.result] = tally.earlier.get(r.result, 0) + 1
        if placed(r):  # a duplicate too: a lost reply may have hidden that this run sent it
            tally.ends[r.partition] = max(tally.ends.get(r.partition, 0), r.offset + 1)
        if line is None:
            return
        if r.result == ipb.RESULT_ACCEPTED:
            tally.accepted += 1
        elif r.result == ipb.RESULT_DUPLICATE:
            tally.duplicate += 1
        else:
            tally.rejected.append(
                {"line": line, "event_id": r.event_id, "field": r.field, "reason": r.reason}
            )

    def on_result(row: Stored, r: ipb.EventResult) -> None:
        # The answer to this file's copy of the event. Another publish's copy, stored while
        # this one's was on its way and sent next (duhub.node.outbox: an answer is recorded
        # only on the copy sent), was counted for this file's line too.
        tally.heard = True
        line = spool.line_of(row.event_id, row.body)
        if line is not None:
            spool.answered(row.event_id)
        count(line, r)

    def read_held() -> None:
        """Count the answers the outbox holds for lines of ours that no reply of this run
        answered: another process's, or a refusal's (the events it held back)."""
        for chunk in spool.unanswered():
            held = box.get([event_id for event_id, _ in chunk])
            for event_id, line in chunk:
                s = held.get(event_id)
                if s is not None and s.state in STORED_RESULT:
                    tally.heard = True
                    r = ipb.EventResult(event_id=event_id, result=STORED_RESULT[s.state])
                    r.field, r.reason = s.field, s.reason
                    r.partition, r.offset = s.partition or 0, s.offset or 0
                    count(line, r)

    try:
        box.forward(
            client.channel(address),
            batch=BATCH,
            timeout=60,
            give_up_after=retry_for,
            on_result=on_result,
        )
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.PERMISSION_DENIED:  # type: ignore[attr-defined]
            # The lines the refusal held back are said by their line, as rejections are.
            read_held()
        raise
    # Another process sharing the outbox may have forwarded some of ours: read their answers.
    read_held()
    stub = ingest_pb2_grpc.IngestServiceStub(client.channel(address))
    apart = spool.apart()
    part: list[tuple[int, pb.Event]] = []
    while True:
        part += itertools.islice(apart, BATCH - len(part))
        if not part:
            return
        fit = fitting([e for _, e in part])
        if not fit:  # no request can carry it
            count(part[0][0], too_big(part[0][1]))
            del part[0]
            continue
        resp = _send(stub, [e for _, e in part[:fit]], retry_for)
        tally.heard = True
        for (line, _), r in zip(part[:fit], resp.results, strict=True):
            count(line, r)
        # A later line correcting a rejected one: the outbox keeps the copy the hub took.
        box.record_held(zip((e for _, e in part[:fit]), resp.results, strict=True))
        del part[:fit]


def wait_visible(address: str, ends: dict[int, int], timeout: float) -> bool | None:
    """Wait until the read model has applied every accepted event; False on time-out, None
    when the address serves no queries (a lone ingest) and so cannot tell."""
    stub = query_pb2_grpc.QueryServiceStub(client.channel(address))
    deadline = time.monotonic() + timeout
    while True:
        try:
            progress = stub.GetProgress(qpb.GetProgressRequest(), timeout=10)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:  # type: ignore[attr-defined]
                return None
            if not retryable(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # a flaky link: ask again
            continue
        applied = {p.partition: p.applied for p in progress.partitions}
        if all(applied.get(p, 0) >= end for p, end in ends.items()):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def open_outbox(outbox: str | None, address: str, create: bool = True) -> Outbox:
    """Open the outbox at --outbox, else the default one for the target; exit 2 if it can't,
    or, unless `create`, if there is none (nothing is made)."""
    where = Path(outbox) if outbox else default_path(address)
    try:
        box = Outbox(where, create=create)
        box.prune(KEEP_ANSWERED_S)
        return box
    except FileNotFoundError as e:
        if create:  # its directory could not be made: not a missing outbox
            client.fail(f"--outbox: cannot open {where}: {e}", client.EXIT_USAGE)
        default = "" if outbox else f" (the default of target {address}; give --outbox PATH)"
        client.fail(f"--outbox: no outbox at {where}{default}", client.EXIT_USAGE)
    except (OSError, sqlite3.Error) as e:
        client.fail(f"--outbox: cannot open {where}: {e}", client.EXIT_USAGE)


def run(
    path: str,
    address: str,
    as_json: bool,
    wait: float = 30.0,
    outbox: str | None = None,
    retry_for: float = RETRY_FOR_S,
) -> int:
    client.check_channel(address)  # before anything is stored: bad input changes nothing
    box = open_outbox(outbox, address)
    unasked = ""  # why publish could not ask whether the figures caught up
    tally = Tally()  # filled as the hub answers, so that a give-up can say what it answered
    try:
        publish(path, address, box, retry_for, tally)
        visible = None
        if wait > 0 and tally.ends:
            # Every event is answered by now: a hub gone away meanwhile leaves only whether
            # the figures caught up unknown, not the answers (they were lost with exit 3).
            try:
                visible = wait_visible(address, tally.ends, wait)
                if visible is None:  # said, or a user takes the silence for "in the figures"
                    unasked = NO_QUERIES.format(address=address)
            except grpc.RpcError as e:
                visible = False
                unasked = f"{e.code().name}: {e.details()}"  # type: ignore[attr-defined]
    except OSError as e:
        name = "standard input" if path == "-" else path
        client.fail(
            f"FILE: cannot read {name}: {e}; nothing of it was stored or sent", client.EXIT_USAGE
        )
    except NotUtf8 as e:
        name = "standard input" if path == "-" else path
        client.fail(f"FILE: {name} {e}; nothing of it was stored or sent", client.EXIT_USAGE)
    except Unreachable as e:
        # A hub that answered UNAVAILABLE (its read model away or behind) is no silent one.
        refused = hub_answered(e.error)
        _print_tally(tally, path, as_json, box, gave_up=e.report.pending, unavailable=refused)
        sys.stdout.flush()
        print(
            f"duhub: {e.report.pending} events wait in the outbox {box.path}; the next "
            "'duhub publish' or 'duhub outbox retry' sends them",
            file=sys.stderr,
        )
        client.fail_rpc(e.error, address)
    except grpc.RpcError as e:
        waiting = box.counts()[PENDING]
        if e.code() == grpc.StatusCode.UNIMPLEMENTED:  # type: ignore[attr-defined]
            # Another service answered (a query service alone): said as a give-up is, the
            # events waiting in the outbox of this target, which no publish to ingest reads.
            _print_tally(
                tally, path, as_json, box, gave_up=waiting, why=f"{address} takes no events"
            )
            sys.stdout.flush()
            print(
                f"duhub: {waiting} events wait in the outbox {box.path}; 'duhub outbox retry "
                f"--outbox {box.path} --target INGEST' sends them to the ingest service",
                file=sys.stderr,
            )
        if e.code() == grpc.StatusCode.PERMISSION_DENIED:  # type: ignore[attr-defined]
            # Said as a give-up is: what was answered before, the lines held back by line.
            _print_tally(tally, path, as_json, box, gave_up=waiting, refused=True)
            sys.stdout.flush()
            if waiting:
                # A node's refused request held back the lines naming another source: the
                # rest may go as they are. A user's credentials may send none of them.
                held_back = any(_held_back(r) for r in tally.rejected)
                print(
                    f"duhub: {waiting} events wait in the outbox {box.path}; "
                    + ("" if held_back else "with credentials that may send them, ")
                    + "the next 'duhub publish' or 'duhub outbox retry' sends them",
                    file=sys.stderr,
                )
        client.fail_rpc(e, address)
    finally:
        box.close()
    _print_tally(tally, path, as_json, box, visible=visible, unasked=unasked, wait=wait)
    return client.EXIT_REJECTED if tally.rejected else client.EXIT_OK


def _held_back(rejection: dict[str, object]) -> bool:
    """Return whether a line was held back by a refused request (its source another node's),
    not rejected by the hub event by event."""
    return rejection["field"] == "request" and str(rejection["reason"]).startswith(
        "PERMISSION_DENIED"
    )


def _print_tally(
    tally: Tally,
    path: str,
    as_json: bool,
    box: Outbox,
    *,
    visible: bool | None = None,
    unasked: str = "",
    wait: float = 0.0,
    gave_up: int | None = None,
    why: str = "",
    unavailable: bool = False,
    refused: bool = False,
) -> None:
    """Print the answers per line; `gave_up`: the events left waiting in the outbox when the
    hub stopped answering (the answers are then those it gave before), or, with `why`, when
    the target would not take them."""
    if as_json:
        out: dict[str, object] = {
            "accepted": tally.accepted,
            "duplicate": tally.duplicate,
            "rejected": len(tally.rejected),
            "visible": visible,
            "rejections": tally.rejected,
            "outbox": str(box.path),
            "earlier": sum(tally.earlier.values()),
        }
        if gave_up is not None:
            out["pending"] = gave_up
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return
    before = ""
    if why:
        before = f"not sent, {why}: "
    elif refused:
        before = (
            "before the hub refused a request: "
            if tally.accepted or tally.duplicate
            else "not sent, the hub refused the request: "
        )
    elif gave_up is not None and unavailable:
        before = (
            "before the hub answered UNAVAILABLE: "
            if tally.heard
            else "not sent, the hub answers UNAVAILABLE: "
        )
    elif gave_up is not None:
        before = "before the hub stopped answering: " if tally.heard else "no hub answered: "
    print(
        f"{path}: {before}{tally.accepted} accepted, {tally.duplicate} duplicate, "
        f"{len(tally.rejected)} rejected"
    )
    if visible is True:
        print("  all accepted events are in the figures")
    elif unasked:
        print(
            "  accepted events are durable; could not ask whether the figures caught up "
            f"({shown(unasked)})"
        )
    elif visible is False:
        print(f"  accepted events are durable; figures not caught up after {wait:g} s")
    for r in tally.rejected:
        # The id and the reason (which may quote a value) as the file had them: written out.
        who = f" ({shown(r['event_id'])})" if r["event_id"] else ""
        print(f"  line {r['line']}{who}: {shown(r['reason'])}")
    if tally.earlier:
        e = tally.earlier
        print(
            f"  outbox: also forwarded {sum(e.values())} events an earlier run or another "
            f"publish left in it ({e.get(ipb.RESULT_ACCEPTED, 0)} accepted, "
            f"{e.get(ipb.RESULT_DUPLICATE, 0)} duplicate, "
            f"{e.get(ipb.RESULT_REJECTED, 0)} rejected: duhub outbox status)"
        )
