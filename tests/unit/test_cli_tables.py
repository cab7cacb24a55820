"""The command line's text tables: what a name from the hub may hold must not garble them."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import grpc
from google.protobuf import json_format

from duhub.bootstrap import Hub, HubConfig
from duhub.cli.tables import render, shown, width
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
