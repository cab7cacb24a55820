"""The command line's text tables: what a name from the hub may hold must not garble them."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import grpc
from google.protobuf import json_format

from duhub.bootstrap import Hub, HubConfig
from duhub.cli.tables import percent, render, shown, width
from duhub.readmodel.writer import read_positions
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc
from tests.e2e.hubproc import DUHUB

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: reverses what follows it on the line
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_bidi_controls_in_a_name_are_written_out_not_obeyed() -> None:
    # A unit registered as '聂家河镇' + RLO made a terminal that does bidi draw the rest of its
    # row right to left: the figures after the name read reversed (12 as 21).
    table = render(["name", "visits"], [[f"聂家河镇{RLO}", 12], ["宜都市", 3]], [False, True])
    assert not any(c in table for c in BIDI)
    assert "聂家河镇<U+202E>" in table
    rows = table.splitlines()
    assert width(rows[2]) == width(rows[0]) == width(rows[3])  # still lined up


def test_shown_writes_out_every_bidi_control_and_keeps_other_text() -> None:
    assert shown("宜都市 (420581)") == "宜都市 (420581)"
    out = shown(BIDI)
    assert not any(c in out for c in BIDI)
    assert out.count("<U+") == len(BIDI)
    assert shown(shown(RLO)) == shown(RLO) == "<U+202E>"


def test_the_query_commands_write_a_name_s_bidi_controls_out(tmp_path: Path) -> None:
    # A county registers a township whose name ends in RLO; the city's terminal asks about it.
    hub = Hub(HubConfig(tmp_path / "data", listen="127.0.0.1:0"))
    hub.start()
    try:
        town = {
            "unit_id": "420502190",
            "parent_id": "420502",
            "level": "LEVEL_TOWNSHIP",
            "name": f"新{RLO}镇",
        }
        event = json_format.ParseDict(
            {
                "eventId": "rlo-town",
                "source": "420502",
                "seq": 1,
                "occurredAt": "2022-06-01T00:00:00Z",
                "orgUnitRegistered": town,
            },
            pb.Event(),
        )
        with grpc.insecure_channel(hub.address) as channel:
            stub = ingest_pb2_grpc.IngestServiceStub(channel)
            published = stub.Publish(ipb.PublishRequest(events=[event]), timeout=30)
        assert published.results[0].result == ipb.RESULT_ACCEPTED
        end, deadline = hub.log.end_offsets(), time.monotonic() + 30
        while read_positions(hub.engine).get(0, 0) < end[0]:
            assert time.monotonic() < deadline, "the read model never caught up"
            time.sleep(0.05)
        env = {**os.environ, "DUHUB_TARGET": hub.address}
        for args in (
            ["query", "stats", "--metric", "visits", "--scope", "420502190"],
            ["query", "stats", "--metric", "visits", "--scope", "420502", "--group-by", "unit"],
            ["units", "420502"],
        ):
            done = subprocess.run(
                [DUHUB, *args], capture_output=True, text=True, env=env, timeout=60
            )
            assert done.returncode == 0, done.stderr
            assert "新<U+202E>镇" in done.stdout, args
            assert RLO not in done.stdout, args
    finally:
        hub.stop(grace=0)


ESC = "\x1b"
CONTROLS = "".join(map(chr, [*range(0x20), 0x7F, *range(0x80, 0xA0)]))


def test_shown_writes_out_control_characters_and_keeps_a_message_s_lines_if_asked() -> None:
    out = shown(CONTROLS)
    assert not any(c in out for c in CONTROLS)
    assert out.count("<U+") == len(CONTROLS)
    assert shown(f"a{ESC}[2Jb") == "a<U+001B>[2Jb"
    assert shown("two\nlines") == "two<U+000A>lines"  # a name or id: one line
    assert shown(f"two\nlines{ESC}", lines=True) == "two\nlines<U+001B>"  # a message's own


def test_shown_writes_out_unicode_line_and_paragraph_separators() -> None:
    # U+2028/U+2029 are not controls but break a line where a viewer obeys them (a pager, a
    # log viewer, an editor): an id holding one split a table's row or a refusal's line.
    assert shown("a\u2028b\u2029c") == "a<U+2028>b<U+2029>c"
    assert shown("a\u2028b", lines=True) == "a<U+2028>b"  # not a line the message made
    table = render(["id"], [["x\u2028y"]])
    assert len(table.splitlines()) == 3 and "\u2028" not in table


def test_publish_and_a_refused_query_write_out_an_id_s_controls(tmp_path: Path) -> None:
    # An event id holding ESC [2J (clear the screen) or RLO was printed raw in publish's list
    # of rejections, and a hub's refusal quoting a --campaign so: the terminal obeyed them.
    hub = Hub(HubConfig(tmp_path / "data", listen="127.0.0.1:0"))
    hub.start()
    try:
        event_id = f"bad{ESC}[2J{RLO}id"
        events = tmp_path / "events.jsonl"
        line = {
            "eventId": event_id,
            "source": "420581",
            "seq": "1",
            "occurredAt": "2022-11-01T00:00:00Z",
            "supervisionVisit": {"unitId": "420581", "area": "vaccination"},
        }
        events.write_text(json.dumps(line) + "\n", encoding="utf-8")
        env = {**os.environ, "DUHUB_TARGET": hub.address}

        def duhub(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [DUHUB, *args], capture_output=True, text=True, env=env, timeout=60
            )

        outbox = str(tmp_path / "outbox.db")
        done = duhub("publish", "--outbox", outbox, str(events))
        assert done.returncode == 1, done.stderr
        assert "line 1 (bad<U+001B>[2J<U+202E>id): event_id:" in done.stdout, done.stdout
        assert ESC not in done.stdout and RLO not in done.stdout
        status = duhub("outbox", "status", "--outbox", outbox)
        assert "bad<U+001B>[2J<U+202E>id: event_id:" in status.stdout, status.stdout
        assert ESC not in status.stdout and RLO not in status.stdout
        # --json keeps the id exactly as it was
        done = duhub("publish", "--outbox", outbox, "--json", str(events))
        assert json.loads(done.stdout)["rejections"][0]["event_id"] == event_id
        refused = duhub("query", "coverage", "--campaign", f"x{ESC}[2J")
        assert refused.returncode == 2
        assert "unknown campaign 'x<U+001B>[2J'" in refused.stderr, refused.stderr
        assert ESC not in refused.stderr
    finally:
        hub.stop(grace=0)


def test_audit_verify_writes_out_the_controls_of_an_id_a_damaged_record_holds() -> None:
    # What a damaged or forged record of the log holds is anything: its id was printed raw.
    from duhub.audit.records import CutTail
    from duhub.cli.audit import _cut_line

    line = _cut_line(CutTail("events.log.cut-at-9", 90, 1, [f"e{ESC}]0;pwned{ESC}\\"]))
    assert "(e<U+001B>]0;pwned<U+001B>\\)" in line and ESC not in line


def test_a_ratio_s_half_tenth_rounds_up_as_the_dashboard_rounds_it() -> None:
    # 1 of 16 targets is 6.25%: the dashboard (Math.round) shows 6.3%, and the command line
    # printed 6.2% (Python's round() to even) for the same group and moment.
    assert [percent(k / 16) for k in (1, 5, 9, 13)] == ["6.3%", "31.3%", "56.3%", "81.3%"]
    assert [percent(k / 112) for k in (7, 35)] == ["6.3%", "31.3%"]  # 五峰's group in the demo
    assert [percent(x) for x in (0.0, 0.9995, 1.0, 0.0004)] == ["0.0%", "99.9%", "100.0%", "0.1%"]
