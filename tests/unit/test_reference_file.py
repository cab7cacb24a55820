"""A deployment loads its own reference hierarchy (`--reference FILE`) instead of the shipped
Yichang one with its sample townships and villages."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from sqlalchemy import select, update

from duhub.bootstrap import Hub, HubConfig, ReferenceMismatch, load_reference
from duhub.convert import content_digest
from duhub.log.embedded import EmbeddedLog
from duhub.readmodel import schema as s
from duhub.readmodel.engine import open_engine
from duhub.readmodel.writer import read_positions
from duhub.reference import Reference, events_of, reference_units
from duhub.reference import file as reference_file
from duhub.reference.file import reference_from_file
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc
from services.ingest.ingestor import NotReady

ROOT = Path(__file__).resolve().parents[2]

# A real city's own list: the city and a county with the real GB/T 2260 codes, and its own
# township under a code the shipped sample data uses too (420502101, a made-up 乐松岭街道).
OWN: list[dict[str, Any]] = [
    {"unit_id": "420500", "parent_id": "", "level": "LEVEL_CITY", "name": "宜昌市"},
    {"unit_id": "420502", "parent_id": "420500", "level": "LEVEL_COUNTY", "name": "西陵区"},
    {"unit_id": "420502101", "parent_id": "420502", "level": "LEVEL_TOWNSHIP", "name": "西陵街道"},
]


def write(path: Path, units: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"about": "our own", "units": units}, ensure_ascii=False))
    return path


def caught_up(hub: Hub) -> None:
    end = hub.log.end_offsets()
    deadline = time.monotonic() + 30
    while read_positions(hub.engine).get(0, 0) < end[0]:
        assert time.monotonic() < deadline, "the read model never caught up"
        time.sleep(0.05)


def units_of(hub: Hub) -> dict[str, tuple[str, bool]]:
    with hub.engine.connect() as conn:
        rows = conn.execute(select(s.units.c.unit_id, s.units.c.name, s.units.c.sample))
        return {r.unit_id: (r.name, r.sample) for r in rows}


def reference_seqs(hub: Hub) -> dict[str, int]:
    with hub.engine.connect() as conn:
        rows = conn.execute(
            select(s.events_seen.c.event_id, s.events_seen.c.seq).where(
                s.events_seen.c.source == "reference"
            )
        )
        return {r.event_id: r.seq for r in rows}


def start(data: Path, reference: Path | None) -> Hub:
    own = reference_from_file(str(reference)) if reference else None
    hub = Hub(HubConfig(data, listen="127.0.0.1:0", reference=own))
    hub.start()
    caught_up(hub)
    return hub


def register(hub: Hub, unit: dict[str, Any], seq: int) -> ipb.EventResult:
    event = json_format.ParseDict(
        {
            "eventId": f"own-{unit['unit_id']}",
            "source": "420502",
            "seq": seq,
            "occurredAt": "2022-06-01T00:00:00Z",
            "orgUnitRegistered": unit,
        },
        pb.Event(),
    )
    with grpc.insecure_channel(hub.address) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        return stub.Publish(ipb.PublishRequest(events=[event]), timeout=30).results[0]


def duhub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duhub.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


def up(data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`duhub up` expected to refuse to start (a hub that starts is killed after 60 s)."""
    return duhub(
        "up",
        "--data-dir",
        str(data),
        "--listen",
        "127.0.0.1:0",
        "--http",
        "off",
        "--metrics",
        "off",
        *extra,
    )


def log_end(data: Path) -> int:
    log = EmbeddedLog(data)
    try:
        return log.end_offsets()[0]
    finally:
        log.close()


def test_a_deployment_with_its_own_reference_has_none_of_the_sample_units(tmp_path: Path) -> None:
    # Before, every hub loaded the shipped yichang.json: 1,100 sample townships and villages
    # stayed in a real city's hierarchy, and its own township 420502101 was refused
    # "org_unit_registered.unit_id: '420502101' is already registered".
    hub = start(tmp_path / "data", write(tmp_path / "own.json", OWN))
    try:
        assert units_of(hub) == {u["unit_id"]: (u["name"], False) for u in OWN}
        village = {
            "unit_id": "420502101201",
            "parent_id": "420502101",
            "level": "LEVEL_VILLAGE",
            "name": "双青洲社区",
        }
        result = register(hub, village, seq=1)
        assert result.result == ipb.RESULT_ACCEPTED, result.reason
        # Its own event ids: never those of the shipped file's events.
        assert sorted(reference_seqs(hub)) == sorted(f"ref:own:{u['unit_id']}" for u in OWN)
    finally:
        hub.stop(grace=0)


def test_without_the_option_the_shipped_reference_is_loaded_as_before(tmp_path: Path) -> None:
    hub = start(tmp_path / "data", None)
    try:
        units = units_of(hub)
        assert units["420502101"] == ("乐松岭街道", True)
        assert reference_seqs(hub)["ref:yichang:420500"] == 1
    finally:
        hub.stop(grace=0)


BAD = [
    # (units, the words the message must hold)
    (
        OWN
        + [
            {
                "unit_id": "420502101201",
                "parent_id": "4205021019",
                "level": "LEVEL_VILLAGE",
                "name": "x",
            }
        ],
        ["units[3]", "'420502101201'", "parent_id", "unknown unit '4205021019'"],
    ),
    (
        OWN + [{"unit_id": "420503", "parent_id": "420502", "level": "LEVEL_COUNTY", "name": "x"}],
        ["units[3]", "'420503'", "parent_id", "'420502' is not a city"],
    ),
    (
        OWN + [{"unit_id": "420503", "parent_id": "420500", "level": "COUNTY", "name": "x"}],
        ["units[3]", "'420503'", "level", "LEVEL_COUNTY"],
    ),
    (
        OWN + [{"unit_id": "420503", "parent_id": "420500", "level": "LEVEL_COUNTY"}],
        ["units[3]", "'420503'", "name", "required"],
    ),
    (
        OWN
        + [
            {
                "unit_id": "420503",
                "parent_id": "420500",
                "level": "LEVEL_COUNTY",
                "name": "x",
                "code": "1",
            }
        ],
        ["units[3]", "'420503'", "code", "not a field of a unit"],
    ),
    (OWN + [dict(OWN[2], name="again")], ["units[3]", "'420502101'", "unit_id", "units[2]"]),
    # A unit without an id: before, a KeyError traceback (exit 1).
    (
        OWN + [{"parent_id": "420502", "level": "LEVEL_TOWNSHIP", "name": "x"}],
        ["units[3]", "unit_id", "required"],
    ),
    (
        OWN + [{"unit_id": "420600", "parent_id": "", "level": "LEVEL_CITY", "name": "襄阳市"}],
        ["units[3]", "'420600'", "level", "one city"],
    ),
    ([OWN[1], OWN[0]], ["units[0]", "'420502'", "parent_id", "unknown unit '420500'"]),
    ([], ["units", "no unit"]),
]


@pytest.mark.parametrize(("units", "words"), BAD)
def test_a_bad_reference_file_is_refused_naming_the_unit_field_and_reason(
    tmp_path: Path, units: list[dict[str, Any]], words: list[str]
) -> None:
    path = write(tmp_path / "bad.json", units)
    data = tmp_path / "data"
    done = up(data, "--no-simulate", "--reference", str(path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--reference {path}" in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not data.exists()  # refused before anything is opened: nothing appended


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", ["not JSON"]),
        ('{"units": {}}', ["units", "a list"]),
        ('{"units": [3]}', ["units[0]", "an object"]),
        ('{"units": [{"unit_id": 420500}]}', ["units[0]", "unit_id", "a string"]),
    ],
)
def test_a_reference_file_of_another_shape_is_refused(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    done = up(tmp_path / "data", "--no-simulate", "--reference", str(path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--reference {path}" in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_reference_file_is_refused(tmp_path: Path) -> None:
    done = up(tmp_path / "data", "--no-simulate", "--reference", str(tmp_path / "none.json"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--reference {tmp_path / 'none.json'}: cannot read" in done.stderr


def test_an_own_reference_with_the_simulator_is_refused(tmp_path: Path) -> None:
    # The simulated nodes publish for the shipped Yichang units, which it does not hold.
    done = up(tmp_path / "data", "--reference", str(write(tmp_path / "own.json", OWN)))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--reference" in done.stderr and "--no-simulate" in done.stderr


def test_a_restart_with_another_reference_is_refused_and_appends_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    hub = start(data, write(tmp_path / "own.json", OWN))
    hub.stop(grace=0)
    end = log_end(data)
    changed = write(tmp_path / "changed.json", [*OWN[:2], dict(OWN[2], name="改名街道")])
    cases = [
        (["--reference", str(changed)], "ref:own:420502101"),
        ([], "ref:yichang:420500"),  # the shipped one, on a log with its own
        (["--reference", str(write(tmp_path / "fewer.json", OWN[:2]))], "3 reference units"),
    ]
    for extra, words in cases:
        done = up(data, "--no-simulate", *extra)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "the log holds another reference hierarchy" in done.stderr, done.stderr
        assert words in done.stderr, done.stderr
        assert "duhub is up" not in done.stdout
        assert log_end(data) == end


def test_a_restart_with_the_shipped_log_and_an_own_file_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start(data, None).stop(grace=0)
    end = log_end(data)
    done = up(data, "--no-simulate", "--reference", str(write(tmp_path / "own.json", OWN)))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the log holds another reference hierarchy" in done.stderr, done.stderr
    assert log_end(data) == end


def test_units_added_at_the_end_of_the_file_are_loaded_on_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start(data, write(tmp_path / "own.json", OWN)).stop(grace=0)
    town = {"unit_id": "420502102", "parent_id": "420502", "level": "LEVEL_TOWNSHIP", "name": "新"}
    hub = start(data, write(tmp_path / "own.json", [*OWN, town]))
    try:
        assert "420502102" in units_of(hub)
        seqs = reference_seqs(hub)
        # The units loaded before keep their seqs; the new one takes the next.
        assert [seqs[f"ref:own:{u['unit_id']}"] for u in OWN] == [1, 2, 3]
        assert seqs["ref:own:420502102"] == 4
    finally:
        hub.stop(grace=0)


def test_a_unit_added_to_the_file_that_the_hub_holds_already_is_refused(tmp_path: Path) -> None:
    # A county registered its township itself; the same id added to the file is not loaded
    # over it, and nothing of the file's new units is appended.
    data = tmp_path / "data"
    hub = start(data, write(tmp_path / "own.json", OWN))
    try:
        town = {
            "unit_id": "420502102",
            "parent_id": "420502",
            "level": "LEVEL_TOWNSHIP",
            "name": "新",
        }
        assert register(hub, town, seq=1).result == ipb.RESULT_ACCEPTED
        caught_up(hub)
    finally:
        hub.stop(grace=0)
    end = log_end(data)
    more = [
        {"unit_id": "420502103", "parent_id": "420502", "level": "LEVEL_TOWNSHIP", "name": "甲"},
        {"unit_id": "420502102", "parent_id": "420502", "level": "LEVEL_TOWNSHIP", "name": "新"},
    ]
    done = up(data, "--no-simulate", "--reference", str(write(tmp_path / "own.json", OWN + more)))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "units[4]" in done.stderr and "already registered" in done.stderr, done.stderr
    assert log_end(data) == end


def test_serve_ingest_refuses_a_restart_with_another_reference(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start(data, write(tmp_path / "own.json", OWN)).stop(grace=0)
    end = log_end(data)
    proc = subprocess.Popen(
        [sys.executable, "-m", "duhub.cli.main", "serve", "ingest", "--data-dir", str(data)]
        + ["--listen", "127.0.0.1:0", "--metrics", "off"]
        + ["--reference", str(write(tmp_path / "other.json", [*OWN[:2]]))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"serve ingest ran on with another reference:\n{out}{err}")
    assert proc.returncode == 2, out + err
    assert "the log holds another reference hierarchy" in err, err
    assert log_end(data) == end


def test_a_restart_with_the_same_file_appends_nothing(tmp_path: Path) -> None:
    data, own = tmp_path / "data", write(tmp_path / "own.json", OWN)
    start(data, own).stop(grace=0)
    end = log_end(data)
    hub = start(data, own)
    try:
        assert sorted(units_of(hub)) == sorted(u["unit_id"] for u in OWN)
    finally:
        hub.stop(grace=0)
    assert log_end(data) == end == len(OWN)


def test_serve_ingest_loads_its_own_reference(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "duhub.cli.main", "serve", "ingest", "--data-dir", str(data)]
        + ["--listen", "127.0.0.1:0", "--metrics", "off"]
        + ["--reference", str(write(tmp_path / "own.json", OWN))],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        deadline = time.monotonic() + 60
        while not (data / EmbeddedLog.FILE).exists() or log_end(data) < len(OWN):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "serve ingest never loaded the reference"
            time.sleep(0.2)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    log = EmbeddedLog(data)
    try:
        records = log.read(0, 0, 100)
    finally:
        log.close()
    ids = [pb.Event.FromString(r.value).event_id for r in records]
    assert ids == [f"ref:own:{u['unit_id']}" for u in OWN], out


def test_a_reference_larger_than_a_publish_batch_is_loaded_whole(tmp_path: Path) -> None:
    # Ingest takes at most 10,000 events a batch: a city with more villages than that did
    # not start ("events: more than 10000 events in one batch").
    villages = [
        {"unit_id": f"420502101{i:04d}", "parent_id": "420502101", "level": "LEVEL_VILLAGE"}
        | {"name": f"村{i}"}
        for i in range(10_050)
    ]
    hub = start(tmp_path / "data", write(tmp_path / "own.json", OWN + villages))
    try:
        assert len(units_of(hub)) == len(OWN) + len(villages)
        assert max(reference_seqs(hub).values()) == len(OWN) + len(villages)
    finally:
        hub.stop(grace=0)


def test_a_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "own.json"
    path.write_text(json.dumps({"units": OWN}, ensure_ascii=False), encoding="utf-8-sig")
    events = reference_from_file(str(path)).events
    assert [e.org_unit_registered.unit_id for e in events] == [u["unit_id"] for u in OWN]


def restart(data: Path, reference: Path | Reference) -> str:
    """Start a hub on `data` once more; return why it refused to, or '' when it started."""
    if isinstance(reference, Path):
        reference = reference_from_file(str(reference))
    hub = Hub(HubConfig(data, listen="127.0.0.1:0", reference=reference))
    try:
        hub.start()
        caught_up(hub)
        return ""
    except ReferenceMismatch as e:
        return str(e)
    finally:
        hub.stop(grace=0)


def test_a_restart_with_the_same_file_reads_only_what_no_fingerprint_vouches_for(
    tmp_path: Path,
) -> None:
    # A country's 640,800 units were read and compared one by one at every start (~3 s per
    # 200k). Once found the same, they are fingerprinted: a restart compares the fingerprint.
    data, own = tmp_path / "data", write(tmp_path / "own.json", OWN)
    start(data, own).stop(grace=0)
    assert restart(data, own) == ""  # reads all three, and fingerprints them
    engine = open_engine(f"sqlite:///{data / 'readmodel.db'}")
    try:
        seen = s.events_seen.c
        with engine.begin() as conn:
            # Unit 2's row garbled behind the hub's back: only a start that reads it sees it.
            conn.execute(
                update(s.events_seen)
                .where(seen.event_id == "ref:own:420502")
                .values(digest=bytes(32))
            )
        assert restart(data, own) == ""
        with engine.begin() as conn:
            conn.execute(s.reference_loaded.delete())
    finally:
        engine.dispose()
    # Without the fingerprint every row is read again, and the garbled one refuses the start.
    refused = restart(data, own)
    assert "its reference event 2 'ref:own:420502' registered the unit otherwise" in refused


def test_the_start_after_the_first_load_trusts_the_fingerprint(tmp_path: Path) -> None:
    # The first load fingerprints what it appended. Before 2026-12-05 only the start after it
    # did: that second start still checked and read every unit (a country's 640,800: ~100 s).
    data, own = tmp_path / "data", write(tmp_path / "own.json", OWN)
    start(data, own).stop(grace=0)
    database = f"sqlite:///{data / 'readmodel.db'}"
    assert len(reference_from_file(str(own), database).digests) == len(OWN)  # not checked
    engine = open_engine(database)
    try:
        with engine.begin() as conn:
            # Unit 2's row garbled behind the hub's back: only a start that reads it sees it.
            conn.execute(
                update(s.events_seen)
                .where(s.events_seen.c.event_id == "ref:own:420502")
                .values(digest=bytes(32))
            )
    finally:
        engine.dispose()
    assert restart(data, own) == ""


def test_a_first_load_cut_short_leaves_no_fingerprint(tmp_path: Path) -> None:
    # The fingerprint vouches only once its last event is in the read model: a hub stopped
    # before the read model caught up is checked whole at the next start.
    data, own = tmp_path / "data", write(tmp_path / "own.json", OWN)
    database = f"sqlite:///{data / 'readmodel.db'}"
    start(data, own).stop(grace=0)
    engine = open_engine(database)
    try:
        with engine.begin() as conn:
            conn.execute(
                s.events_seen.delete().where(s.events_seen.c.event_id == "ref:own:420502101")
            )
    finally:
        engine.dispose()
    assert reference_from_file(str(own), database).digests == ()


def test_a_fingerprinted_reference_still_refuses_another_file_and_loads_added_units(
    tmp_path: Path,
) -> None:
    data, own = tmp_path / "data", write(tmp_path / "own.json", OWN)
    start(data, own).stop(grace=0)
    assert restart(data, own) == ""  # fingerprinted now
    changed = write(tmp_path / "changed.json", [*OWN[:2], dict(OWN[2], name="改名街道")])
    assert "its reference event 3 'ref:own:420502101' registered the unit otherwise" in (
        restart(data, changed)
    )
    assert "3 reference units, where this one has 2" in restart(
        data, write(tmp_path / "fewer.json", OWN[:2])
    )
    town = {"unit_id": "420502102", "parent_id": "420502", "level": "LEVEL_TOWNSHIP", "name": "新"}
    more = write(tmp_path / "more.json", [*OWN, town])
    hub = start(data, more)
    try:
        assert reference_seqs(hub)["ref:own:420502102"] == 4
    finally:
        hub.stop(grace=0)
    assert restart(data, more) == ""
    assert "4 reference units, where this one has 3" in restart(data, changed)


def test_reference_events_are_the_bytes_json_format_made() -> None:
    # Built field by field now (ParseDict took 18 s of a country-scale start): a log loaded
    # by an earlier version must still be found to hold the same events, digest for digest.
    own = [*OWN, dict(OWN[2], unit_id="420502102", sample=True, local_code=True, kind="x")]
    for units, name in ((reference_units(), "yichang"), (own, "own")):
        made = [
            json_format.ParseDict(
                {
                    "event_id": f"ref:{name}:{unit['unit_id']}",
                    "source": "reference",
                    "seq": seq,
                    "occurred_at": "2020-01-01T00:00:00Z",
                    "org_unit_registered": {k: v for k, v in unit.items() if k != "kind"},
                },
                pb.Event(),
            )
            for seq, unit in enumerate(units, start=1)
        ]
        events = events_of(units, name)
        assert [content_digest(e) for e in events] == [content_digest(e) for e in made]
        assert events == made


def test_a_reference_larger_than_ingest_lets_the_read_model_fall_behind_is_loaded_whole(
    tmp_path: Path,
) -> None:
    # Ingest refuses to append while the read model is MAX_PENDING (200,000) events behind:
    # a country's 640,800 units stopped `duhub up` after the first 200,000 ("NotReady: the
    # read model is 200000 events behind …"). The load waits for the read model instead.
    villages = [
        {"unit_id": f"420502101{i:04d}", "parent_id": "420502101", "level": "LEVEL_VILLAGE"}
        | {"name": f"村{i}"}
        for i in range(10_050)
    ]
    own = reference_from_file(str(write(tmp_path / "own.json", OWN + villages)))
    hub = Hub(HubConfig(tmp_path / "data", listen="127.0.0.1:0", reference=own))
    hub.ingestor.max_pending = 5_000  # under one publish batch (10,000): the second waits
    try:
        hub.start()
        caught_up(hub)
        assert len(units_of(hub)) == len(OWN) + len(villages)
        assert max(reference_seqs(hub).values()) == len(OWN) + len(villages)
    finally:
        hub.stop(grace=0)


def test_a_reference_load_ends_when_ingest_refuses_for_good(tmp_path: Path) -> None:
    # The load waits while ingest is behind (NotReady), but a log that lost records makes
    # ingest refuse for good (Ingestor.failure): the start waited on it for ever, saying
    # "loading the reference waits" every 10 s, where the services stop with exit 2.
    hub = start(tmp_path / "data", write(tmp_path / "own.json", OWN[:2]))
    try:
        hub.ingestor.failure = "--log lost records (partition 0 at 9, the log ends at 0)"
        more = reference_from_file(str(write(tmp_path / "more.json", OWN)))
        done: list[BaseException] = []

        def load() -> None:
            try:
                load_reference(hub.ingestor, hub.engine, more)
            except BaseException as e:  # noqa: BLE001 - what the load ended with
                done.append(e)

        loading = threading.Thread(target=load, daemon=True)
        loading.start()
        loading.join(timeout=5)
        assert not loading.is_alive(), "the load waits on an ingest that refuses for good"
        assert isinstance(done[0], NotReady) and "lost records" in str(done[0])
    finally:
        hub.stop(grace=0)


def rules_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many units each rules check of a file is asked about (the real check)."""
    asked: list[int] = []
    real = reference_file.check_units

    def check_units(events: Any, base: Any, first: int = 0) -> str | None:
        asked.append(len(events))
        return real(events, base, first)

    monkeypatch.setattr(reference_file, "check_units", check_units)
    return asked


def test_an_unchanged_file_is_not_checked_unit_by_unit_again_and_a_changed_one_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every start checked each unit of the file by the rules before anything was opened:
    # 26-30 s of each start with a country's 640,800 units, the same file every time.
    data, own = tmp_path / "data", write(tmp_path / "own.json", OWN)
    db = f"sqlite:///{data / 'readmodel.db'}"
    asked = rules_checks(monkeypatch)
    reference_from_file(str(own), database=db)
    assert asked == [3]  # no read model yet: checked whole
    assert not data.exists()  # and asked nothing into being
    start(data, own).stop(grace=0)
    assert restart(data, own) == ""  # found the same one for one: fingerprinted
    asked.clear()
    same = reference_from_file(str(own), database=db)
    assert asked == []  # the fingerprint vouches for all three, checked by these rules
    assert restart(data, same) == ""
    # Other bytes, the same units: the same events, which is what the rules are asked about.
    path = tmp_path / "reformatted.json"
    path.write_text(json.dumps({"about": "x", "units": [dict(u, kind="k") for u in OWN]}, indent=2))
    reference_from_file(str(path), database=db)
    assert asked == []
    # A changed unit is checked whole again, then compared, naming the first difference.
    changed = write(tmp_path / "changed.json", [*OWN[:2], dict(OWN[2], name="改名街道")])
    end = log_end(data)
    assert "its reference event 3 'ref:own:420502101' registered the unit otherwise" in (
        restart(data, reference_from_file(str(changed), database=db))
    )
    assert asked == [3]
    # One the rules refuse is refused by them, before anything is opened, as on a new hub.
    bad = write(tmp_path / "bad.json", [*OWN[:2], dict(OWN[2], parent_id="420599")])
    with pytest.raises(ValueError, match=r"units\[2\] \('420502101'\): parent_id: unknown unit"):
        reference_from_file(str(bad), database=db)
    town = {"unit_id": "420502102", "parent_id": "420502", "level": "LEVEL_TOWNSHIP", "name": "新"}
    more = write(tmp_path / "more.json", [*OWN, town])
    asked.clear()
    reference_from_file(str(more), database=db)
    assert asked == [4]  # units added: all checked
    assert log_end(data) == end


def test_a_hub_with_other_rules_checks_an_unchanged_file_whole_once_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fingerprint says the units are those loaded, not that this version's rules pass
    # them: the skip holds only under the rules version that checked them.
    data, own = tmp_path / "data", write(tmp_path / "own.json", OWN)
    db = f"sqlite:///{data / 'readmodel.db'}"
    start(data, own).stop(grace=0)
    assert restart(data, own) == ""
    asked = rules_checks(monkeypatch)
    now = reference_file.REFERENCE_RULES
    monkeypatch.setattr(reference_file, "REFERENCE_RULES", now + 1)
    upgraded = reference_from_file(str(own), database=db)
    assert asked == [3]
    assert restart(data, upgraded) == ""  # passed: fingerprinted as checked by these rules
    reference_from_file(str(own), database=db)
    assert asked == [3]
    # Stricter rules that refuse a unit loaded before refuse the start, naming it.
    monkeypatch.setattr(reference_file, "REFERENCE_RULES", now + 2)
    monkeypatch.setattr(
        reference_file,
        "check_units",
        lambda events, base, first=0: "units[2] ('420502101'): name: stricter now",
    )
    with pytest.raises(ValueError, match="stricter now"):
        reference_from_file(str(own), database=db)


def test_a_mark_kept_before_rules_were_recorded_has_its_file_checked_whole_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read model of the version before: its mark says nothing of the rules that checked
    # the units, so the first start after the upgrade checks them, and records the rules.
    data, own = tmp_path / "data", write(tmp_path / "own.json", OWN)
    db = f"sqlite:///{data / 'readmodel.db'}"
    start(data, own).stop(grace=0)
    assert restart(data, own) == ""
    engine = open_engine(db, create=False)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE reference_loaded DROP COLUMN rules")
            conn.exec_driver_sql("DELETE FROM layout WHERE name = 'reference-rules'")
    finally:
        engine.dispose()
    asked = rules_checks(monkeypatch)
    before = reference_from_file(str(own), database=db)
    assert asked == [3]  # the mark could not be read: checked whole
    assert restart(data, before) == ""  # the layout gains the column; the mark, the rules
    reference_from_file(str(own), database=db)
    assert asked == [3]
