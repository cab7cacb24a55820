"""`duhub publish FILE` on files as county systems write them: bytes that are not UTF-8, a
byte order mark, a field given twice in its two spellings, and events that together (or alone)
exceed what one gRPC request may carry. A real hub (embedded log, SQLite) in process, the
`duhub` command as its own process, an outbox per test."""

from __future__ import annotations

import fcntl
import itertools
import json
import socket
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from duhub.bootstrap import MAX_MESSAGE, Hub, HubConfig
from duhub.node import Outbox
from duhub.v1 import events_pb2 as pb
from tests.e2e.hubproc import DUHUB, duhub, stat_values


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = Hub(HubConfig(tmp_path_factory.mktemp("publish-input") / "data", listen="127.0.0.1:0"))
    hub.start()
    yield hub
    hub.stop()


def sanction(event_id: str, source: str, seq: int, area: str = "ecology") -> dict[str, object]:
    return {
        "eventId": event_id,
        "source": source,
        "seq": str(seq),
        "occurredAt": "2022-11-05T00:00:00Z",
        "sanctionImposed": {"unitId": source, "area": area, "persons": 1},
    }


def publish(hub: Hub, tmp_path: Path, data: bytes, *args: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "events.jsonl"
    path.write_bytes(data)
    return duhub(hub.address, "publish", str(path), "--outbox", str(tmp_path / "outbox.db"), *args)


def pending(tmp_path: Path) -> int:
    with Outbox(tmp_path / "outbox.db") as box:
        return box.counts()["pending"]


def test_a_line_that_is_not_utf8_is_rejected_by_its_number_and_the_rest_is_sent(
    hub: Hub, tmp_path: Path
) -> None:
    """One Latin-1 byte on line 700 of 1,000: before, publish died with a traceback (exit 1,
    no line named) after storing the first 500 events, which the next publish of any other
    file then sent: half the file counted, the other half never sent."""
    lines = [json.dumps(sanction(f"u8-{i}", "420525", i)).encode() for i in range(1, 1001)]
    lines[699] = lines[699].replace(b"ecology", b"ecol\xe9gy")
    column = lines[699].index(b"\xe9") + 1
    done = publish(hub, tmp_path, b"\n".join(lines) + b"\n")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "999 accepted, 0 duplicate, 1 rejected" in done.stdout
    assert f"line 700: invalid UTF-8 (byte 0xe9 at column {column})" in done.stdout
    assert pending(tmp_path) == 0
    assert stat_values(hub.address, "--metric", "sanctioned_persons", "--scope", "420525") == {
        "sanctioned_persons": 999
    }


def test_stdin_that_is_not_utf8_is_answered_as_a_file_is(hub: Hub, tmp_path: Path) -> None:
    """Before: 'Failed to parse eventId field: Unpaired surrogate' (stdin is read with
    surrogateescape), where a file died with a traceback."""
    ok = json.dumps(sanction("stdin-1", "420526", 1)).encode()
    bad = json.dumps(sanction("stdin-\u00e9", "420526", 2), ensure_ascii=False).encode("latin-1")
    done = subprocess.run(
        [DUHUB, "publish", "-", "--outbox", str(tmp_path / "outbox.db"), "--target", hub.address],
        input=ok + b"\n" + bad + b"\n",
        capture_output=True,
        timeout=120,
    )
    out = done.stdout.decode()
    assert done.returncode == 1, out + done.stderr.decode()
    assert "1 accepted, 0 duplicate, 1 rejected" in out
    column = bad.index(b"\xe9") + 1
    assert f"line 2: invalid UTF-8 (byte 0xe9 at column {column})" in out


def test_a_byte_order_mark_is_not_taken_for_part_of_the_first_event(
    hub: Hub, tmp_path: Path
) -> None:
    """Windows tools write UTF-8 with a BOM; RFC 8259 lets a reader ignore it. Before: line 1
    was rejected 'Unexpected UTF-8 BOM (decode using utf-8-sig)'."""
    lines = [json.dumps(sanction(f"bom-{i}", "420527", i)) for i in (1, 2)]
    done = publish(hub, tmp_path, b"\xef\xbb\xbf" + "\r\n".join(lines).encode())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 accepted, 0 duplicate, 0 rejected" in done.stdout


@pytest.mark.parametrize(
    ("encoding", "mark"),
    [("utf-16", "FF FE"), ("utf-16-be", "FE FF"), ("utf-32", "FF FE 00 00")],
)
def test_a_utf16_file_is_refused_as_a_whole_naming_its_encoding(
    hub: Hub, tmp_path: Path, encoding: str, mark: str
) -> None:
    """Windows PowerShell's `>` and Notepad's "Unicode" write UTF-16 with a byte order mark.
    Before: each 2-byte newline split the file at the wrong places, and two events came back
    as four rejected lines, none saying why ('line 1: invalid UTF-8 (byte 0xff at column 1)',
    'line 2: not a duhub.v1.Event in canonical JSON: Failed to load JSON: Expecting value')."""
    lines = [json.dumps(sanction(f"u16-{encoding}-{i}", "420529", i)) for i in (1, 2)]
    text = "\r\n".join(lines) + "\r\n"
    bom = b"\xfe\xff" if encoding == "utf-16-be" else b""
    done = publish(hub, tmp_path, bom + text.encode(encoding))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert (
        f"FILE: {tmp_path / 'events.jsonl'} is {encoding.upper()[:6]} (it starts with the byte "
        f"order mark {mark}): must be UTF-8; nothing of it was stored or sent"
    ) in done.stderr
    assert pending(tmp_path) == 0


def test_a_line_that_is_no_json_object_says_so_on_one_line(hub: Hub, tmp_path: Path) -> None:
    """A county system's export as one JSON array, or pretty-printed, or a value alone. Before:
    the array came back as "Failed to parse {'eventId': …the whole event…} field: unhashable
    type: 'dict'", "abc" as 'has no field named "a"', 42 as "'int' object is not iterable",
    and an unknown field's answer ran onto a second line of the output, unindented."""
    events = [sanction(f"shape-{i}", "420504", i) for i in (1, 2)]
    unknown = {**sanction("shape-3", "420504", 3), "note": "x"}
    lines = [json.dumps(events), '"abc"', "42", "null", json.dumps(unknown), "{"]
    done = publish(hub, tmp_path, "\n".join(lines).encode())
    assert done.returncode == 1, done.stdout + done.stderr
    one_event = "one event per line, each a JSON object (JSON Lines)"
    why = "not a duhub.v1.Event in canonical JSON"
    shown = done.stdout.splitlines()
    assert shown[0].endswith(": 0 accepted, 0 duplicate, 6 rejected"), done.stdout
    assert shown[1:5] == [
        f"  line {n}: {why}: a JSON {kind}, not an object: {one_event}"
        for n, kind in enumerate(["array", "string", "number", "null"], start=1)
    ]
    assert shown[5].startswith(
        f'  line 5 (shape-3): {why}: Message type "duhub.v1.Event" has no field named "note" at'
        ' "Event". Available Fields(except extensions): '
    )
    assert shown[6:] == [
        f"  line 6: {why}: '{{' alone: an event spread over several lines (pretty-printed"
        f" JSON); {one_event}"
    ]
    assert pending(tmp_path) == 0


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({**sanction("twice-a", "420528", 1), "event_id": "twice-b"}, "eventId"),
        (
            {
                **sanction("twice-c", "420528", 2),
                "sanctionImposed": {
                    "unitId": "420528",
                    "unit_id": "420528101",
                    "area": "ecology",
                    "persons": 1,
                },
            },
            "unitId",
        ),
    ],
)
def test_a_field_given_in_both_spellings_is_rejected_not_taken_at_random(
    hub: Hub, tmp_path: Path, event: dict[str, object], field: str
) -> None:
    """`eventId` and `event_id` are both accepted, but one object giving both (with two
    values) is the same field twice, as `"seq": 1, "seq": 2` is (rejected: duplicate key).
    Before, the last spelling won silently: 'twice-b' was accepted, 'twice-a' unknown."""
    done = publish(hub, tmp_path, json.dumps(event).encode() + b"\n")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "0 accepted, 0 duplicate, 1 rejected" in done.stdout
    assert f"{field}: given twice" in done.stdout
    assert stat_values(hub.address, "--metric", "sanctioned_persons", "--scope", "420528") == {
        "sanctioned_persons": 0
    }


@pytest.mark.parametrize(
    ("time", "field"),
    [
        ("occurredAt", "occurredAt"),
        ("occurred_at", "occurred_at"),
        ("startsAt", "campaignLaunched.startsAt"),
    ],
)
@pytest.mark.parametrize(
    "value",
    [
        "2022-11-05",
        "2022-11-05 08:00:00+08:00",
        # Offsets past RFC 3339's (hours to 23, minutes to 59): protobuf's parser took them,
        # and '+80:00', a slip for +08:00, moved the event 80 hours (to 2022-11-01T16:00Z);
        # '-800:00' a month.
        "2022-11-05T00:00:00+80:00",
        "2022-11-05T00:00:00+08:99",
        "2022-11-05T00:00:00-800:00",
        "2022-11-05T00:00:00+8:00",
    ],
)
def test_a_time_that_is_not_rfc_3339_is_rejected_naming_the_field_and_the_form(
    hub: Hub, tmp_path: Path, time: str, field: str, value: str
) -> None:
    """The command line takes a date for a time; an event does not. Before, the line was
    answered with protobuf's "Failed to parse occurredAt field: time data '2022-11' does not
    match format '%Y-%m-%dT%H:%M:%S'": not what the line holds, nor what it should."""
    event = sanction("when-1", "420528", 1)
    if time == "startsAt":
        event = {**event, "campaignLaunched": {"campaignId": "c", "startsAt": value}}
        del event["sanctionImposed"]
    else:
        del event["occurredAt"]
        event[time] = value
    done = publish(hub, tmp_path, json.dumps(event).encode() + b"\n")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "0 accepted, 0 duplicate, 1 rejected" in done.stdout
    assert f"{field}: {value!r} is not an RFC 3339 time" in done.stdout, done.stdout
    assert "2022-11-05T00:00:00Z" in done.stdout and "time data" not in done.stdout


def big_campaign(n: int, targets: list[str]) -> dict[str, object]:
    """A campaign of the city near the limits (1,000 groups, 100,000 targets): about 2 MB."""
    groups = [
        {
            "groupId": f"g{g}",
            "name": "督" * 200,
            "tier": "TIER_COUNTY",
            "targetUnitIds": sorted({targets[(g * 100 + k) % len(targets)] for k in range(100)}),
        }
        for g in range(1000)
    ]
    return {
        "eventId": f"camp-{n}",
        "source": "420500",
        "seq": str(100 + n),
        "occurredAt": "2022-11-01T00:00:00Z",
        "campaignLaunched": {
            "campaignId": f"camp-{n}",
            "name": "大督导",
            "area": "vaccination",
            "startsAt": "2022-11-01T00:00:00Z",
            "endsAt": "2023-01-01T00:00:00Z",
            "groups": groups,
        },
    }


def all_units(hub: Hub) -> list[str]:
    import grpc

    from duhub.v1 import query_pb2 as qpb
    from duhub.v1 import query_pb2_grpc

    with grpc.insecure_channel(hub.address) as ch:
        stub = query_pb2_grpc.QueryServiceStub(ch)
        out, todo = [], ["420500"]
        while todo:
            for u in stub.ListUnits(qpb.ListUnitsRequest(parent_id=todo.pop()), timeout=10).units:
                out.append(u.unit_id)
                todo.append(u.unit_id)
    return [u for u in out if len(u) >= 9]


def test_valid_events_too_big_for_one_request_together_are_sent_in_several(
    hub: Hub, tmp_path: Path
) -> None:
    """18 campaigns the hub accepts one by one, 36 MB together. Before: the outbox put all of
    them in one request, gRPC refused it (RESOURCE_EXHAUSTED, exit 3 'no hub answers'), and
    they stayed pending at the head of the outbox, failing every later publish the same way."""
    units = all_units(hub)
    lines = [json.dumps(big_campaign(n, units), ensure_ascii=False) for n in range(18)]
    data = ("\n".join(lines) + "\n").encode()
    assert len(data) > MAX_MESSAGE
    done = publish(hub, tmp_path, data, "--retry-for", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "18 accepted, 0 duplicate, 0 rejected" in done.stdout
    assert pending(tmp_path) == 0


def test_an_event_too_big_for_any_request_is_rejected_and_blocks_nothing(
    hub: Hub, tmp_path: Path
) -> None:
    """One event over 32 MiB (a campaign listing a unit 3.2 million times). Before: exit 3
    'RESOURCE_EXHAUSTED' naming no line, and the event stayed pending at the head of the
    outbox: no later publish to that hub got through (exit 3 each time)."""
    huge = big_campaign(99, ["420581101"])
    huge["campaignLaunched"]["groups"] = [  # type: ignore[index]
        {
            "groupId": "g",
            "name": "g",
            "tier": "TIER_CITY",
            "targetUnitIds": ["420581101"] * 3_200_000,
        }
    ]
    done = publish(hub, tmp_path, json.dumps(huge).encode() + b"\n", "--retry-for", "5")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "0 accepted, 0 duplicate, 1 rejected" in done.stdout
    assert "line 1 (camp-99): event: 35200" in done.stdout
    assert f"more than the {MAX_MESSAGE} bytes a request may carry" in done.stdout
    assert pending(tmp_path) == 0

    after = json.dumps(sanction("after-huge", "420529", 1)).encode() + b"\n"
    done = publish(hub, tmp_path, after, "--retry-for", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 accepted, 0 duplicate, 0 rejected" in done.stdout


class GoneAfterPublish(grpc.GenericRpcHandler):
    """Relays Publish to the hub, then answers every other call UNAVAILABLE: the hub went
    away right after it answered the events (its query side never answers again)."""

    def __init__(self, upstream: grpc.Channel) -> None:
        self.publish = upstream.unary_unary("/duhub.v1.IngestService/Publish")

    def service(self, details):  # type: ignore[no-untyped-def]
        if details.method == "/duhub.v1.IngestService/Publish":
            return grpc.unary_unary_rpc_method_handler(
                lambda request, _: self.publish(request, timeout=60)
            )

        def gone(_request, context):  # type: ignore[no-untyped-def]
            context.abort(grpc.StatusCode.UNAVAILABLE, "the hub went away")

        return grpc.unary_unary_rpc_method_handler(gone)


def test_the_hub_going_away_while_publish_waits_keeps_the_answers_it_gave(
    hub: Hub, tmp_path: Path
) -> None:
    """Every event answered (accepted or rejected), then the hub goes away before the figures
    could be asked about. Before: exit 3 'no hub answers', no summary and no rejection printed,
    though the outbox held every answer; run again, the same file printed '0 accepted, 2
    duplicate'. The answers are the summary; only whether the figures caught up is unknown."""
    with grpc.insecure_channel(hub.address) as upstream:
        relay = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        relay.add_generic_rpc_handlers((GoneAfterPublish(upstream),))
        port = relay.add_insecure_port("127.0.0.1:0")
        relay.start()
        try:
            events = [sanction("gone-1", "502", 1), sanction("gone-2", "420502", 1)]
            events.append(sanction("gone-3", "420502", 2))
            path = tmp_path / "events.jsonl"
            path.write_text("".join(json.dumps(e) + "\n" for e in events))
            done = duhub(
                f"127.0.0.1:{port}",
                "publish",
                str(path),
                "--outbox",
                str(tmp_path / "outbox.db"),
                "--wait",
                "2",
            )
        finally:
            relay.stop(0)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 accepted, 0 duplicate, 1 rejected" in done.stdout
    assert "line 1 (gone-1): source:" in done.stdout
    assert "accepted events are durable; could not ask whether the figures caught up" in (
        done.stdout
    )
    assert "UNAVAILABLE" in done.stdout


def test_input_that_fails_partway_is_not_half_queued(hub: Hub, tmp_path: Path) -> None:
    """Standard input is a TCP connection that the sender resets after 600 lines, once
    publish has read them: reading fails partway (ECONNRESET), as an I/O error of a disk would.
    Before: exit 2, and the first 500 events stayed pending in the outbox; the next publish of
    another file sent them ('also forwarded 500 events left by an earlier run'): a file that
    was refused, a third of it counted. Now nothing of it is queued."""
    data = b"".join(
        json.dumps(sanction(f"reset-{i}", "420583", i)).encode() + b"\n" for i in range(1, 601)
    )
    outbox = tmp_path / "outbox.db"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        reader = socket.create_connection(listener.getsockname())
        sender, _ = listener.accept()
    with reader, sender:
        cmd = [DUHUB, "publish", "-", "--outbox", str(outbox), "--target", hub.address]
        proc = subprocess.Popen(cmd, stdin=reader, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sender.sendall(data)
        deadline = time.monotonic() + 60
        while unsent(sender) or unread(reader):  # until publish holds every byte
            assert time.monotonic() < deadline, "publish did not read its input"
            time.sleep(0.05)
        time.sleep(1)  # and has gone through the lines (it waits for more then)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, out + err
    assert b"FILE: cannot read standard input: [Errno 104] Connection reset by peer" in err
    assert b"nothing of it was stored or sent" in err
    assert pending(tmp_path) == 0
    later = publish(hub, tmp_path, json.dumps(sanction("reset-after", "420583", 601)).encode())
    assert later.returncode == 0, later.stdout + later.stderr
    assert "earlier run" not in later.stdout
    assert stat_values(hub.address, "--metric", "sanctioned_persons", "--scope", "420583") == {
        "sanctioned_persons": 1
    }


def unsent(sock: socket.socket) -> int:
    """Bytes sent on a TCP socket that the peer has not acknowledged yet (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock, termios.TIOCOUTQ, b"\0" * 4))[0]


def unread(sock: socket.socket) -> int:
    """Bytes a TCP socket has received that no process has read yet (SIOCINQ)."""
    return struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4))[0]


def test_publish_to_an_ingest_alone_says_it_could_not_ask_about_the_figures(
    tmp_path: Path,
) -> None:
    """README's services apart publish to `duhub serve ingest`, which serves no queries. With
    --wait (default 30 s) publish printed only its counts: nothing said the figures were not
    asked about, where a hub says 'all accepted events are in the figures', and a query right
    after it missed events a worker had not applied yet."""
    from duhub.bootstrap import IngestProcess

    ingest = IngestProcess(HubConfig(tmp_path / "data", listen="127.0.0.1:0"))
    ingest.start()
    try:
        path = tmp_path / "events.jsonl"
        path.write_text(json.dumps(sanction("lone-1", "420502", 1)) + "\n")
        done = duhub(
            f"127.0.0.1:{ingest.port}", "publish", str(path), "--outbox", str(tmp_path / "o.db")
        )
    finally:
        ingest.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 accepted, 0 duplicate, 0 rejected" in done.stdout
    assert (
        "accepted events are durable; could not ask whether the figures caught up "
        f"(127.0.0.1:{ingest.port} answers no queries, as an ingest alone: ask the query service)"
    ) in done.stdout


def test_an_event_id_too_long_is_rejected_and_does_not_wedge_the_outbox(
    hub: Hub, tmp_path: Path
) -> None:
    """An event_id of 200 characters between two good events. The hub rejects it and echoes
    its first 128 characters (answers stay small). Before: the outbox took the echo for an
    answer to another event, publish died with a traceback ('hub answered for 'xxx…', not
    'xxx…'') without recording the answers, though the hub had appended the two good events,
    and every later publish through that outbox died the same way."""
    long_id = "x" * 200
    events = [sanction("long-1", "420503", 1), sanction(long_id, "420503", 2)]
    events.append(sanction("long-3", "420503", 3))
    done = publish(hub, tmp_path, "".join(json.dumps(e) + "\n" for e in events).encode())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "2 accepted, 0 duplicate, 1 rejected" in done.stdout
    assert f"line 2 ({long_id[:128]}): event_id: longer than 128 characters" in done.stdout
    assert pending(tmp_path) == 0

    after = json.dumps(sanction("long-4", "420503", 4)).encode() + b"\n"
    done = publish(hub, tmp_path, after)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 accepted, 0 duplicate, 0 rejected" in done.stdout
    assert stat_values(hub.address, "--metric", "sanctioned_persons", "--scope", "420503") == {
        "sanctioned_persons": 3
    }


def test_publishes_sharing_an_outbox_at_once_each_get_their_own_answers(
    hub: Hub, tmp_path: Path
) -> None:
    """Four `duhub publish` of four files of new events into one outbox at once (a county
    system's jobs run side by side). Before, each forwarded whatever was pending, so a batch
    went out twice at the same time: the second copy was answered DUPLICATE and recorded over
    the first's ACCEPTED, which lost its log position. Files of events never seen before were
    reported '0 accepted, 600 duplicate', publish did not wait for them to show in the
    figures, and `outbox status` counted duplicates the hub never received."""
    sources = ["420504", "420505", "420506", "420581"]
    outbox = tmp_path / "outbox.db"
    procs = []
    for source in sources:
        path = tmp_path / f"{source}.jsonl"
        lines = (json.dumps(sanction(f"share-{source}-{i}", source, i)) for i in range(1, 601))
        path.write_text("".join(line + "\n" for line in lines))
        cmd = [DUHUB, "publish", str(path), "--outbox", str(outbox), "--target", hub.address]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
        assert b"600 accepted, 0 duplicate, 0 rejected" in out, out
        assert b"all accepted events are in the figures" in out, out
        # What one forwarded of the others' files is theirs, not left by an earlier run.
        assert b"left by an earlier run (" not in out, out
    with Outbox(outbox) as box:
        assert box.counts() == {"pending": 0, "accepted": 2400, "duplicate": 0, "rejected": 0}
    for source in sources:
        assert stat_values(hub.address, "--metric", "sanctioned_persons", "--scope", source) == {
            "sanctioned_persons": 600
        }


class LosesFirstReply(grpc.GenericRpcHandler):
    """Relays every call to the hub, but the answer to the first Publish is lost on the way
    back (the node sees UNAVAILABLE): its events are in the log all the same."""

    def __init__(self, upstream: grpc.Channel) -> None:
        self.upstream = upstream
        self.lost = False

    def service(self, details):  # type: ignore[no-untyped-def]
        call = self.upstream.unary_unary(details.method)

        def relay(request, context):  # type: ignore[no-untyped-def]
            reply = call(request, timeout=60)
            if details.method.endswith("/Publish") and not self.lost:
                self.lost = True
                context.abort(grpc.StatusCode.UNAVAILABLE, "the reply was lost")
            return reply

        return grpc.unary_unary_rpc_method_handler(relay)


def test_events_answered_duplicate_after_a_lost_reply_are_waited_for(
    hub: Hub, tmp_path: Path
) -> None:
    """The hub appends a publish's events, the reply is lost, the outbox sends them again and
    the hub answers DUPLICATE. The proto has a duplicate carry its position in the log 'when
    known'; the hub never gave it, so publish had no position to wait for: '0 accepted, 2
    duplicate' and nothing said about the figures (visible: null), and a query right after it
    could miss events this very publish put in the log."""
    with grpc.insecure_channel(hub.address) as upstream:
        relay = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        relay.add_generic_rpc_handlers((LosesFirstReply(upstream),))
        port = relay.add_insecure_port("127.0.0.1:0")
        relay.start()
        try:
            path = tmp_path / "events.jsonl"
            events = [sanction("lost-1", "420582", 1), sanction("lost-2", "420582", 2)]
            path.write_text("".join(json.dumps(e) + "\n" for e in events))
            outbox = str(tmp_path / "outbox.db")
            done = duhub(f"127.0.0.1:{port}", "publish", str(path), "--outbox", outbox, "--json")
        finally:
            relay.stop(0)
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert (answer["accepted"], answer["duplicate"]) == (0, 2)
    assert answer["visible"] is True


def test_audit_reports_the_seqs_a_source_is_missing_whatever_their_order(
    hub: Hub, tmp_path: Path
) -> None:
    """The contract: gaps are allowed (a rejected event leaves one) and audit reports them. A
    node's seq 1 is rejected, then seqs 3, 2 and 5 are accepted, in that order (the hub takes
    seqs in any order). Before, audit compared each event with the one before it in the log:
    it reported '2→5' (as if 3 were missing, which is there) and nothing of seq 1, the very
    gap a rejected first event leaves."""
    source = "420500-L01"
    events = [sanction("order-1", source, 1)]
    events[0]["sanctionImposed"]["unitId"] = "420581"  # type: ignore[index]
    events += [sanction(f"order-{seq}", source, seq) for seq in (3, 2, 5)]
    done = publish(hub, tmp_path, "".join(json.dumps(e) + "\n" for e in events).encode())
    assert "3 accepted, 0 duplicate, 1 rejected" in done.stdout, done.stdout + done.stderr
    data = str(hub.config.data_dir)
    verify = subprocess.run(
        [DUHUB, "audit", "verify", "--data-dir", data, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["seq_gaps"][source] == [[0, 2], [3, 5]]


class StoresAnotherCopyFirst(grpc.GenericRpcHandler):
    """Relays every call to the hub; before the first Publish goes on, another publish stores
    its own copy of that request's first event in the outbox (same id, other content)."""

    def __init__(self, upstream: grpc.Channel, outbox: Path, other: dict[str, object]) -> None:
        self.upstream, self.outbox, self.other = upstream, outbox, other
        self.stored = False

    def service(self, details):  # type: ignore[no-untyped-def]
        call = self.upstream.unary_unary(details.method)

        def relay(request, context):  # type: ignore[no-untyped-def]
            if details.method.endswith("/Publish") and not self.stored:
                self.stored = True
                with Outbox(self.outbox) as box:
                    event = json_format.ParseDict(self.other, pb.Event())
                    assert box.add([event], replace=True) == ["replaced"]
            return call(request, timeout=60)

        return grpc.unary_unary_rpc_method_handler(relay)


def test_another_publishs_copy_sent_in_this_ones_forward_is_not_counted_for_this_file(
    hub: Hub, tmp_path: Path
) -> None:
    """While a publish's event is on its way, another publish stores its own copy of it (same
    id, other content): the answer to the copy sent is not recorded on the new one (2a5266b),
    which stays pending and goes out next, in the same forward. Its answer was counted for the
    file's line as well: a file of one line said '1 accepted, 0 duplicate, 1 rejected'."""
    mine = sanction("copied-1", "420583", 1)
    theirs = {**mine, "sanctionImposed": {"unitId": "420583", "area": "ecology", "persons": 2}}
    outbox = tmp_path / "outbox.db"
    with grpc.insecure_channel(hub.address) as upstream:
        relay = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        relay.add_generic_rpc_handlers((StoresAnotherCopyFirst(upstream, outbox, theirs),))
        port = relay.add_insecure_port("127.0.0.1:0")
        relay.start()
        try:
            path = tmp_path / "events.jsonl"
            path.write_text(json.dumps(mine) + "\n")
            done = duhub(f"127.0.0.1:{port}", "publish", str(path), "--outbox", str(outbox))
        finally:
            relay.stop(0)
    assert "1 accepted, 0 duplicate, 0 rejected" in done.stdout, done.stdout + done.stderr
    # The other copy's answer is the other publish's (the hub refuses its other content).
    assert "also forwarded 1 events" in done.stdout, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_countys_mistakes_are_mended_as_readme_says_and_an_accepted_event_stays(
    tmp_path: Path,
) -> None:
    """README, "Mistakes": a rejected event is fixed in the file and the file sent again, under
    the same event_id and seq; an accepted event cannot be taken back or changed (its corrected
    copy is rejected, the figures keep the first); an event taken out of the file while it
    waits in the outbox is still sent by the next publish."""
    hub = Hub(HubConfig(tmp_path / "data", listen="127.0.0.1:0"))
    hub.start()
    try:

        def event(event_id: str, seq: int, at: str, **payload: object) -> str:
            return json.dumps(
                {"eventId": event_id, "source": "420581", "seq": str(seq), "occurredAt": at}
                | payload
            )

        visit = event(
            "yd-1", 1, "2026-12-01T09:00:00+08:00",
            supervisionVisit={"unitId": "420581101203", "area": "ecology"},
        )  # fmt: skip
        found = event(
            "yd-2", 2, "2026-12-01T10:00:00+08:00",
            problemFound={"problemId": "yd-p-1", "unitId": "420581101203", "area": "ecology"},
        )  # fmt: skip
        rectified = event(
            "yd-3", 3, "2026-12-01T11:00:00+08:00", problemRectified={"problemId": "yd-p-1"}
        )
        # The county's export put the rectification before its finding.
        done = publish(hub, tmp_path, "\n".join([visit, rectified, found]).encode())
        assert done.returncode == 1, done.stdout + done.stderr
        assert (
            "line 2 (yd-3): problem_rectified.problem_id: unknown problem 'yd-p-1' in the "
            "source's 420581\n"
        ) in done.stdout
        # Mended: the lines in order, and the visit's village corrected (it was 204's).
        mended = visit.replace("420581101203", "420581101204")
        done = publish(hub, tmp_path, "\n".join([mended, found, rectified]).encode())
        assert done.returncode == 1, done.stdout + done.stderr
        assert "1 accepted, 1 duplicate, 1 rejected" in done.stdout
        assert "line 1 (yd-1): event_id: already used by an event with other content" in (
            done.stdout
        )
        assert stat_values(hub.address, "--metric", "visits", "--scope", "420581101203") == {
            "visits": 1
        }
        assert stat_values(
            hub.address, "--metric", "visits,problems_rectified", "--scope", "420581101204"
        ) == {"visits": 0, "problems_rectified": 0}
        assert stat_values(
            hub.address, "--metric", "problems_rectified,problems_open", "--scope", "420581"
        ) == {"problems_rectified": 1, "problems_open": 0}
        # A wrong line waits in the outbox (no hub answers); it is taken out of the file, and
        # the next publish sends it all the same.
        wrong = event(
            "yd-4", 4, "2026-12-02T09:00:00+08:00",
            accountabilityImposed={"unitId": "420581102", "area": "ecology", "persons": 3},
        )  # fmt: skip
        right = event(
            "yd-5", 5, "2026-12-02T09:00:00+08:00",
            accountabilityImposed={"unitId": "420581103", "area": "ecology", "persons": 3},
        )  # fmt: skip
        done = publish(
            hub, tmp_path, (wrong + "\n").encode(), "--target", "127.0.0.1:1", "--retry-for", "1"
        )
        assert done.returncode == 3, done.stdout + done.stderr
        done = publish(hub, tmp_path, (right + "\n").encode())
        assert done.returncode == 0, done.stdout + done.stderr
        assert "also forwarded 1 events an earlier run or another publish left in it" in (
            done.stdout
        )
        assert stat_values(
            hub.address, "--metric", "accountability_persons", "--scope", "420581102"
        ) == {"accountability_persons": 3}
    finally:
        hub.stop()


UINT32 = "must be a whole number from 0 to 4294967295"
GOOD_SEQS = itertools.count(9001)  # source 420506's, one per case's good line


def valued(event_id: object, payload: dict[str, object], **envelope: object) -> str:
    """An event of source 420506 whose payload (or envelope) holds a value of the wrong kind."""
    event = {**sanction("", "420506", 9000), "eventId": event_id, **envelope}
    del event["sanctionImposed"]
    return json.dumps({**event, **payload})


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (
            valued("v-neg", {"sanctionImposed": {"unitId": "420506", "persons": -3}}),
            f"(v-neg): sanction_imposed.persons: {UINT32}, not -3",
        ),
        (
            valued("v-lots", {"supervisionVisit": {"unitId": "420506", "findings": "lots"}}),
            f"(v-lots): supervision_visit.findings: {UINT32}, not 'lots'",
        ),
        (json.dumps({"eventId": 1}), ": event_id: must be a string, not the number 1"),
        # An id that is no text (a lone surrogate) is not printed: it ended publish with a
        # traceback (UnicodeEncodeError).
        (
            valued("v-\ud800", {"talkHeld": {"unitId": "420506", "persons": -1}}),
            f": talk_held.persons: {UINT32}, not -1",
        ),
        (
            valued("v-long", {"talkHeld": {"unitId": "420506", "persons": 7}}).replace(
                '"persons": 7', '"persons": ' + "9" * 5001
            ),
            f"(v-long): talk_held.persons: {UINT32}, not a number of 5001 digits",
        ),
        (
            valued("v-big", {"talkHeld": {"unitId": "420506", "persons": 4294967297}}),
            f"(v-big): talk_held.persons: {UINT32}, not 4294967297",
        ),
        (
            valued("v-seq", {"talkHeld": {"unitId": "420506", "persons": 1}}, seq=2**64),
            "(v-seq): seq: must be a whole number from 0 to 18446744073709551615, not "
            "18446744073709551616",
        ),
        (
            valued("v-seqs", {"talkHeld": {"unitId": "420506", "persons": 1}}, seq=str(2**64)),
            "(v-seqs): seq: must be a whole number from 0 to 18446744073709551615, not "
            "'18446744073709551616'",
        ),
        (
            # Python's int() reads it as 70, and protobuf's parser took it so.
            valued("v-under", {"talkHeld": {"unitId": "420506", "persons": "7_0"}}),
            f"(v-under): talk_held.persons: {UINT32}, not '7_0'",
        ),
        (
            valued("v-kind", {"talkHeld": {"unitId": "420506", "kind": "OTHER", "persons": 1}}),
            "(v-kind): talk_held.kind: must be one of TALK_KIND_TOP_LEADER, "
            "TALK_KIND_ADMONISHMENT, TALK_KIND_OTHER, not 'OTHER'",
        ),
        (
            valued("v-obj", {"talkHeld": 5}),
            "(v-obj): talk_held: must be a JSON object, not the number 5",
        ),
        (
            valued("v-ids", {"campaignLaunched": {"groups": [{"targetUnitIds": ["4205", 6]}]}}),
            "(v-ids): campaign_launched.groups[0].target_unit_ids[1]: must be a string, not "
            "the number 6",
        ),
    ],
)
def test_a_value_of_the_wrong_kind_is_rejected_naming_the_event_and_the_field(
    hub: Hub, tmp_path: Path, line: str, said: str
) -> None:
    """A value out of its field's range or of another kind. Before, the line was answered with
    protobuf's or Python's words and no field path: 'Failed to parse persons field: Value out
    of range: -3.', "invalid literal for int() with base 10: 'lots'", "expected string or
    bytes-like object, got 'int'", a long number's "Exceeds the limit (4300 digits) … use
    sys.set_int_max_str_digits()". Nothing of the line is sent; the next line is."""
    seq = next(GOOD_SEQS)
    good = json.dumps(sanction(f"v-ok-{seq}", "420506", seq))
    done = publish(hub, tmp_path, f"{line}\n{good}\n".encode())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 accepted, 0 duplicate, 1 rejected" in done.stdout, done.stdout
    assert f"  line 1{' ' if said.startswith('(') else ''}{said}\n" in done.stdout, done.stdout
    for internal in ("Failed to parse", "int()", "bytes-like", "sys.", "Traceback"):
        assert internal not in done.stdout + done.stderr
    assert pending(tmp_path) == 0
    with Outbox(tmp_path / "outbox.db") as box:
        assert box.counts()["accepted"] == 1  # the good line alone was stored and sent
    answer = json.loads(publish(hub, tmp_path, f"{line}\n".encode(), "--json").stdout)
    field = said.split(": ")[1]  # "(v-neg): sanction_imposed.persons: …", ": event_id: …"
    assert [(r["line"], r["field"]) for r in answer["rejections"]] == [(1, field)]
