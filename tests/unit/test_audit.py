"""Tamper evidence: one changed byte, one deleted and one swapped event in a stored log are
each found at the right place; an intact log and its checkpoint verify."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from collections.abc import Collection
from pathlib import Path

import pytest
from google.protobuf import json_format

from duhub.audit.chain import audit, audit_to_checkpoint, parse_checkpoint
from duhub.audit.records import log_records
from duhub.bootstrap import Hub, HubConfig
from duhub.cli.main import main
from duhub.convert import chain_hash
from duhub.log.embedded import HEADER, KEYLEN, EmbeddedLog, iter_frames
from duhub.v1 import events_pb2 as pb

SOURCE = "420581"


def visit(seq: int) -> pb.Event:
    return json_format.ParseDict(
        {
            "eventId": f"audit-{seq:03d}",
            "source": SOURCE,
            "seq": seq,
            "occurredAt": "2022-06-01T08:00:00Z",
            "supervisionVisit": {"unitId": "420581101", "area": "ecology"},
        },
        pb.Event(),
    )


@pytest.fixture(scope="module")
def stored_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose log holds the reference data and 20 events of one county."""
    data = tmp_path_factory.mktemp("audit") / "data"
    hub = Hub(HubConfig(data, listen="127.0.0.1:0"))
    hub.start()
    try:
        for seq in range(1, 21, 5):  # several batches: the chain spans appends
            results = hub.ingestor.publish([visit(s) for s in range(seq, seq + 5)])
            assert all(r.result == 1 for r in results)
    finally:
        hub.stop()
    return data


def frames(data: Path) -> list[tuple[bytes, bytes]]:
    return [(k, v) for _, _, k, v in iter_frames(data / EmbeddedLog.FILE)]


def write(
    data: Path, items: list[tuple[bytes, bytes]], bad_crc_at: int | Collection[int] = -1
) -> None:
    """Write the log's frames, with a wrong checksum at `bad_crc_at` (an index, or several)."""
    bad = {bad_crc_at} if isinstance(bad_crc_at, int) else set(bad_crc_at)
    out = bytearray()
    for i, (key, value) in enumerate(items):
        body = KEYLEN.pack(len(key)) + key + value
        crc = zlib.crc32(body) ^ (1 if i in bad else 0)
        out += HEADER.pack(len(body), crc) + body
    (data / EmbeddedLog.FILE).write_bytes(bytes(out))


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def offset_of(items: list[tuple[bytes, bytes]], seq: int) -> int:
    return next(
        i
        for i, (_, v) in enumerate(items)
        if (e := pb.Event.FromString(v)).source == SOURCE and e.seq == seq
    )


def county_findings(data: Path):  # type: ignore[no-untyped-def]
    # Read again as verify does, for links that may be forks: tampering is named as before.
    report = audit(log_records(str(data)), again=lambda: log_records(str(data)))
    return report, [f for f in report.findings if f.source in (SOURCE, "")]


def alter(items: list[tuple[bytes, bytes]], k: int) -> None:
    """Change one byte of the event at `k`'s body (its area's first letter), its frame whole."""
    key, value = items[k]
    pos = value.index(b"ecology")
    items[k] = (key, value[:pos] + b"E" + value[pos + 1 :])


def test_an_intact_log_verifies_and_its_checkpoint_matches(stored_log: Path) -> None:
    report = audit(log_records(str(stored_log)))
    assert report.ok and report.chained == report.records
    assert report.heads[SOURCE][:2] == (20, 20)
    again = audit(log_records(str(stored_log)), parse_checkpoint(report.checkpoint))
    assert again.checkpoint == report.checkpoint


def test_every_stored_event_links_to_the_previous_one_of_its_source(stored_log: Path) -> None:
    mine = [pb.Event.FromString(v) for _, v in frames(stored_log)]
    mine = [e for e in mine if e.source == SOURCE]
    assert mine[0].prev_hash == b""
    assert all(len(e.prev_hash) == 32 for e in mine[1:])


@pytest.mark.parametrize("fix_checksum", [True, False])
def test_one_changed_byte_is_found_at_its_event(
    stored_log: Path, tmp_path: Path, fix_checksum: bool
) -> None:
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 10)
    key, value = items[k]
    pos = value.index(b"ecology")
    items[k] = (key, value[:pos] + b"E" + value[pos + 1 :])  # one byte: ecology -> Ecology
    write(data, items, bad_crc_at=-1 if fix_checksum else k)
    report, found = county_findings(data)
    assert not report.ok
    assert found[-1].kind == "altered" and found[-1].offset == k, found
    if not fix_checksum:
        assert "checksum" in found[0].detail and found[0].offset == k


def test_a_deleted_event_is_found_where_it_was(stored_log: Path, tmp_path: Path) -> None:
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 7)
    del items[k]
    write(data, items)
    report, found = county_findings(data)
    (f,) = found
    assert f.kind == "missing"
    assert f.offset == k  # seq 8 now sits where seq 7 was
    assert "seq 6 and seq 8" in f.detail
    assert report.gaps[SOURCE] == [(6, 8)]


def test_two_swapped_events_are_found_as_reordered(stored_log: Path, tmp_path: Path) -> None:
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 12)
    items[k], items[k + 1] = items[k + 1], items[k]
    write(data, items)
    _, found = county_findings(data)
    (f,) = found
    assert f.kind == "reordered" and f.offset == k
    assert "seq 13" in f.detail


def test_swapped_events_leave_no_seq_gap(stored_log: Path, tmp_path: Path) -> None:
    # Every seq is still there, out of order: a gap would say events are missing.
    # (Before, gaps followed log order: 11→13 and 12→14 were listed.)
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 12)
    items[k], items[k + 1] = items[k + 1], items[k]
    write(data, items)
    report, _ = county_findings(data)
    assert SOURCE not in report.gaps, report.gaps


def test_a_seq_arriving_late_fills_only_its_own_place_in_a_gap(
    stored_log: Path, tmp_path: Path
) -> None:
    # Seqs 11..13 gone, then seq 12 put back after seq 20: 11 and 13 are still missing.
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    twelve = items[offset_of(items, 12)]
    for seq in (11, 12, 13):
        del items[offset_of(items, seq)]
    items.insert(offset_of(items, 20) + 1, twelve)
    write(data, items)
    report, _ = county_findings(data)
    assert report.gaps[SOURCE] == [(10, 12), (12, 14)]


def test_an_inserted_event_is_found(stored_log: Path, tmp_path: Path) -> None:
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 15)
    forged = visit(99)
    forged.prev_hash = pb.Event.FromString(items[k][1]).prev_hash  # a careful forger
    items.insert(k, (SOURCE.encode(), forged.SerializeToString()))
    write(data, items)
    _, found = county_findings(data)
    (f,) = found
    assert f.kind == "inserted" and f.event_id == "audit-099" and f.offset == k


def test_a_checkpoint_no_longer_matches_after_the_last_event_changed(
    stored_log: Path, tmp_path: Path
) -> None:
    checkpoint = audit(log_records(str(stored_log))).checkpoint
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 20)  # the last event: no later link covers it, the checkpoint does
    alter(items, k)
    write(data, items)
    report = audit(log_records(str(data)), parse_checkpoint(checkpoint))
    assert report.checkpoint != checkpoint


def test_a_matching_checkpoint_is_not_called_an_intact_log_beside_a_finding(
    stored_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An event in the middle altered: its successor's link finds it, and every chain's head,
    # which the checkpoint digests, is as it was. Before, the command printed the ALTERED
    # finding and then "checkpoint matches: the log up to it is as it was".
    checkpoint = audit(log_records(str(stored_log))).checkpoint
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 10)
    alter(items, k)
    write(data, items)
    code = main(["audit", "verify", "--data-dir", str(data), "--checkpoint", checkpoint])
    out = capsys.readouterr().out
    assert code == 4
    assert "ALTERED" in out
    assert "the log up to it is as it was" not in out, out
    assert "every chain's head up to it is as it was then; the findings above lie before" in out


def test_a_log_cut_short_of_its_checkpoint_is_named_as_records_missing_from_its_end(
    stored_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The last events deleted: no later link finds that (every chain is intact), only the
    # checkpoint written down before. Before, all it said was "checkpoint DIFFERS: the log
    # up to it changed", as for a changed byte, and the JSON did not say where.
    checkpoint = audit(log_records(str(stored_log))).checkpoint
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    write(data, items[:-2])
    code = main(["audit", "verify", "--data-dir", str(data), "--checkpoint", checkpoint])
    out = capsys.readouterr().out
    assert code == 4
    assert "every chain is intact" not in out and "every link holds, but records are gone" in out
    end = len(items)
    assert (
        f"checkpoint DIFFERS: the log ends before it: partition 0 at {end - 2}, the checkpoint "
        f"at {end} (2 records it covered are gone)"
    ) in out, out
    code = main(["audit", "verify", "--data-dir", str(data), "--checkpoint", checkpoint, "--json"])
    assert code == 4
    assert json.loads(capsys.readouterr().out)["checkpoint_missing"] == {"0": 2}


def test_a_checkpoint_written_down_earlier_still_has_the_log_after_it_walked(
    stored_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The checkpoint of an earlier day, and an event altered since, after it. Before, verify
    # walked the log up to the checkpoint only: "every chain is intact … checkpoint matches",
    # exit 0, and it printed that old checkpoint again as the one to write down.
    items = frames(stored_log)
    k = offset_of(items, 15)
    earlier = audit(log_records(str(stored_log)), {0: k}).checkpoint
    data = copy(stored_log, tmp_path / "data")
    later = offset_of(items, 17)  # its successor's link finds it
    alter(items, later)
    write(data, items)
    code = main(["audit", "verify", "--data-dir", str(data), "--checkpoint", earlier])
    out = capsys.readouterr().out
    assert code == 4, out
    assert "ALTERED" in out and f"at 0:{later} " in out, out
    assert "checkpoint matches: the log up to it is as it was" in out, out
    assert f"walked {len(items):,} records" in out, out
    now = audit(log_records(str(data)), again=lambda: log_records(str(data))).checkpoint
    assert out.endswith(f"verify later with --checkpoint):\n  {now}\n") and now != earlier
    # The log as it was, grown since: intact, the checkpoint matching, exit 0.
    code = main(["audit", "verify", "--data-dir", str(stored_log), "--checkpoint", earlier])
    assert code == 0 and "checkpoint matches" in capsys.readouterr().out


def test_one_walk_gives_the_whole_log_and_its_part_to_a_checkpoint_as_two_walks_do(
    stored_log: Path, tmp_path: Path
) -> None:
    # verify --checkpoint walked the log twice (the whole, then up to the checkpoint); one
    # walk must give both reports as they were, damage before and after the checkpoint too.
    items = frames(stored_log)
    until = {0: offset_of(items, 12)}
    data = copy(stored_log, tmp_path / "data")
    alter(items, offset_of(items, 6))
    del items[offset_of(items, 17)]
    write(data, items)
    reads = 0

    def records():  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        yield from log_records(str(data))

    whole, before = audit_to_checkpoint(records(), until)
    assert reads == 1
    for got, want in (
        (whole, audit(log_records(str(data)))),
        (before, audit(log_records(str(data)), until)),
    ):
        assert got.findings == want.findings and got.findings
        assert (got.records, got.chained, got.gaps, got.ends, got.heads) == (
            want.records,
            want.chained,
            want.gaps,
            want.ends,
            want.heads,
        )
    assert before.records < whole.records and before.checkpoint != whole.checkpoint
    assert whole.gaps != before.gaps  # seq 17 deleted after the checkpoint


def test_a_torn_tail_is_said_before_anything_opened_the_log(
    stored_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The last record cut short in a copy no hub has opened: "every chain is intact", with
    # not a word of the bytes left, until an open had moved them aside (auditor probe).
    data = copy(stored_log, tmp_path / "data")
    log = data / "events.log"
    with open(log, "r+b") as f:
        f.truncate(log.stat().st_size - 10)
    code = main(["audit", "verify", "--data-dir", str(data)])
    out = capsys.readouterr().out
    assert code == 0, out  # as the open's cut of such a tail: said, not failed
    assert "  torn tail: the log ends in " in out and "no whole record" in out, out
    assert main(["audit", "verify", "--data-dir", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["torn_tail_bytes"] > 0
    assert main(["audit", "verify", "--data-dir", str(stored_log), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["torn_tail_bytes"] == 0


def test_parse_checkpoint_names_the_option_when_malformed() -> None:
    with pytest.raises(ValueError, match="--checkpoint"):
        parse_checkpoint("nonsense")
    assert parse_checkpoint("duhub-checkpoint:v1:0:12,3:4:abcd") == {0: 12, 3: 4}


@pytest.mark.parametrize("damage", ["huge", "longer", "shorter", "past_the_end"])
def test_a_changed_byte_in_a_frame_header_hides_no_later_record(
    stored_log: Path, tmp_path: Path, damage: str
) -> None:
    # The length of record k changed: the walk must name k and still read every record after
    # it (before, a length over 64 MiB or past the end of the file ended the walk there as if
    # it were a torn tail: "every chain is intact", exit 0, the rest of the log unread).
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 10)
    write(data, items)
    raw = bytearray((data / EmbeddedLog.FILE).read_bytes())
    at = sum(HEADER.size + KEYLEN.size + len(key) + len(v) for key, v in items[:k])
    (length,) = struct.unpack_from("<I", raw, at)
    changed = {
        "huge": length | 0x10000000,
        "longer": length + 1,
        "shorter": length - 1,
        "past_the_end": len(raw),
    }[damage]
    struct.pack_into("<I", raw, at, changed)
    (data / EmbeddedLog.FILE).write_bytes(bytes(raw))
    report, found = county_findings(data)
    assert not report.ok
    assert report.records == len(items)
    assert found[0].kind == "altered" and found[0].offset == k, found
    assert report.heads[SOURCE][1] == 20  # the chain was walked to its end


def cut(data: Path, items: list[tuple[bytes, bytes]], k: int) -> None:
    """Write the log with 20 bytes cut out of record k's body (its header as it was)."""
    write(data, items)
    raw = bytearray((data / EmbeddedLog.FILE).read_bytes())
    at = sum(HEADER.size + KEYLEN.size + len(key) + len(v) for key, v in items[:k])
    del raw[at + HEADER.size + 30 : at + HEADER.size + 50]
    (data / EmbeddedLog.FILE).write_bytes(bytes(raw))


def test_a_record_cut_short_is_reported_once_where_it_lies(
    stored_log: Path, tmp_path: Path
) -> None:
    # Before, twice: the cut record (altered: its checksum fails, source and event unknown)
    # and, at the next event of its source, "events between seq 9 and seq 11 are missing":
    # the same seq 10, the link to it unverifiable since its bytes are gone.
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 10)
    cut(data, items, k)
    report, found = county_findings(data)
    assert report.records == len(items)
    (f,) = found
    assert (f.kind, f.offset, f.source) == ("altered", k, SOURCE), f
    assert f.detail == (
        f"the record at 0:{k}: its checksum fails; it lies in source {SOURCE}'s chain, "
        "between seq 9 and seq 11, which cannot be checked across it"
    )
    assert report.gaps[SOURCE] == [(9, 11)]
    assert report.heads[SOURCE][:2] == (19, 20)


def test_a_break_after_a_cut_record_is_still_found(stored_log: Path, tmp_path: Path) -> None:
    # The cut stands for its source's first broken link no more: a deletion later in the
    # chain is found too (before, only the first break of a chain was reported: the missing
    # seq 10 that was the cut record, and the deletion of seq 15 went unreported).
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    del items[offset_of(items, 15)]
    k = offset_of(items, 10)
    cut(data, items, k)
    _, found = county_findings(data)
    assert [(f.kind, f.offset) for f in found] == [("altered", k), ("missing", k + 5)], found
    assert "between seq 14 and seq 16" in found[1].detail


def test_a_deletion_beside_a_cut_record_of_another_chain_is_still_missing(
    stored_log: Path, tmp_path: Path
) -> None:
    # One cut record accounts for one chain's broken link, not for every chain's across it.
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    other = visit(1)
    other.source, other.event_id = "420582", "other-1"
    k = offset_of(items, 10)
    items.insert(k, (b"420582", other.SerializeToString()))
    other.seq, other.event_id = 2, "other-2"
    other.prev_hash = hashlib.sha256(items[k][1]).digest()
    items.insert(k + 2, (b"420582", other.SerializeToString()))
    del items[k + 1]  # seq 10 of SOURCE: gone
    cut(data, items, k)  # 420582's seq 1: cut short, between SOURCE's seq 9 and seq 11
    report = audit(log_records(str(data)), again=lambda: log_records(str(data)))
    found = sorted((f.kind, f.offset, f.source) for f in report.findings)
    assert found == [("altered", k, "420582"), ("missing", k + 2, SOURCE)], report.findings


def _chained(events: list[pb.Event]) -> list[bytes]:
    """Return the stored bytes of `events` as ingest links them: each to the one before."""
    out: list[bytes] = []
    for e in events:
        e.prev_hash = chain_hash(out[-1]) if out else b""
        out.append(e.SerializeToString())
    return out


def test_a_seq_taken_by_a_kafka_direct_record_is_no_gap() -> None:
    # The contract: audit reports the seq gaps. A county publishing seqs 1 and 4 straight into
    # Kafka and 2, 3 and 6 through ingest has all but 5 in the log; before, seq 1 and 4 were
    # reported missing too ("deletions too"), as Kafka-direct records are in no chain. Only
    # the chain's gaps are filled: a Kafka-direct record far ahead (seq 99, dead-lettered,
    # say) makes no gap of its own, and a source only in Kafka-direct records has no chain.
    ingested = _chained([visit(2), visit(3), visit(6)])
    direct = [visit(seq).SerializeToString() for seq in (1, 4, 99)]
    only_direct = [
        json_format.ParseDict(
            {
                "eventId": f"kd-{seq}",
                "source": "420582",
                "seq": seq,
                "occurredAt": "2022-06-01T08:00:00Z",
                "supervisionVisit": {"unitId": "420582101", "area": "ecology"},
            },
            pb.Event(),
        ).SerializeToString()
        for seq in (1, 5)
    ]
    records = [(0, i, True, v, False, "") for i, v in enumerate(direct)]
    records += [(0, 3 + i, True, v, True, "") for i, v in enumerate(ingested)]
    records += [(1, i, True, v, False, "") for i, v in enumerate(only_direct)]
    records.append((1, 2, True, b"\xff not an event", False, ""))  # a dead letter: no seq
    report = audit(records)
    assert report.ok, report.findings
    assert report.chained == 3 and report.records == 9
    assert report.gaps == {SOURCE: [(4, 6)]}, report.gaps


def bad_checksum(data: Path, items: list[tuple[bytes, bytes]], k: int, damage: str) -> None:
    """Write the log with record k's bytes changed so that they still parse as an event but
    fail the frame's checksum (the checksum left as it was: as a tamperer or bit rot does)."""
    key, value = items[k]
    e = pb.Event.FromString(value)
    if damage == "payload":  # one byte: ecology -> Ecology
        pos = value.index(b"ecology")
        items[k] = (key, value[:pos] + b"E" + value[pos + 1 :])
    else:
        if damage == "prev_hash":
            e.prev_hash = bytes([e.prev_hash[0] ^ 1]) + e.prev_hash[1:]
        elif damage == "source":  # a source of no other event
            e.source = "420589"
        elif damage == "seq":
            e.seq = 74
        items[k] = (key, e.SerializeToString())
    write(data, items, bad_crc_at=k)


@pytest.mark.parametrize("damage", ["payload", "prev_hash", "source", "seq"])
def test_a_record_whose_checksum_fails_but_still_parses_is_reported_once_where_it_lies(
    stored_log: Path, tmp_path: Path, damage: str
) -> None:
    # Before, twice: "its checksum fails" where it lies, and again where the chain was walked,
    # as its successor links to the bytes it held when accepted ("seq 10 ... differs from what
    # was accepted", or, its source changed, "events between seq 9 and seq 11 are missing").
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 10)
    bad_checksum(data, items, k, damage)
    report = audit(log_records(str(data)), again=lambda: log_records(str(data)))
    assert report.records == len(items)
    (f,) = report.findings
    assert (f.kind, f.partition, f.offset, f.source, f.event_id) == (
        "altered",
        0,
        k,
        SOURCE,
        "audit-010",
    ), f
    assert f.detail == (
        f"the record at 0:{k}: its checksum fails; it lies in source {SOURCE}'s chain, "
        "between seq 9 and seq 11, which cannot be checked across it"
    )
    assert report.heads[SOURCE][1] == 20  # the chain was checked on to its end
    # A record that still reads as seq 10 leaves no gap; one whose seq or source changed does.
    readable = damage in ("payload", "prev_hash")
    assert report.gaps.get(SOURCE) == (None if readable else [(9, 11)]), report.gaps


def test_a_break_after_a_bad_checksum_record_is_still_found(
    stored_log: Path, tmp_path: Path
) -> None:
    # The damaged record stands for its own broken link only: a deletion later in the chain
    # is still the chain's first break, reported where it lies.
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    del items[offset_of(items, 15)]
    k = offset_of(items, 10)
    bad_checksum(data, items, k, "payload")
    report = audit(log_records(str(data)), again=lambda: log_records(str(data)))
    assert [(f.kind, f.offset) for f in report.findings] == [
        ("altered", k),
        ("missing", k + 5),
    ], report.findings
    assert "between seq 9 and seq 11" in report.findings[0].detail
    assert "between seq 14 and seq 16" in report.findings[1].detail


def test_a_break_before_a_bad_checksum_record_is_still_found(
    stored_log: Path, tmp_path: Path
) -> None:
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 10)
    bad_checksum(data, items, k, "payload")
    del items[offset_of(items, 5)]
    write(data, items, bad_crc_at=k - 1)
    report = audit(log_records(str(data)), again=lambda: log_records(str(data)))
    kinds = sorted((f.kind, f.offset) for f in report.findings)
    assert kinds == [("altered", k - 1), ("missing", offset_of(items, 6))], report.findings


def test_a_deletion_in_another_chain_across_a_bad_checksum_record_is_still_missing(
    stored_log: Path, tmp_path: Path
) -> None:
    # Another source's events lie on either side of the damaged record, one of them deleted:
    # its chain breaks across the damaged record, which is not its own. Each chain's damage is
    # reported once, in its own chain.
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 10)
    others = []
    for seq in (1, 2, 3):
        other = visit(seq)
        other.source, other.event_id = "420582", f"other-{seq}"
        other.prev_hash = chain_hash(others[-1]) if others else b""
        others.append(other.SerializeToString())
    items[k + 1 : k + 1] = [(b"420582", others[2])]  # seq 3, after the damaged record
    items[k:k] = [(b"420582", others[0])]  # seq 1, before it; seq 2 deleted
    k += 1
    bad_checksum(data, items, k, "payload")
    report = audit(log_records(str(data)), again=lambda: log_records(str(data)))
    found = sorted((f.kind, f.offset, f.source) for f in report.findings)
    assert found == [("altered", k, SOURCE), ("missing", k + 1, "420582")], report.findings
    assert "between seq 9 and seq 11" in next(f.detail for f in report.findings if f.offset == k)


def test_a_bad_checksum_record_at_the_end_of_its_chain_names_that_chain(
    stored_log: Path, tmp_path: Path
) -> None:
    # No later link checks the last event of a chain: the finding says where it lies.
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 20)
    bad_checksum(data, items, k, "payload")
    report = audit(log_records(str(data)), again=lambda: log_records(str(data)))
    (f,) = report.findings
    assert (f.kind, f.offset, f.source) == ("altered", k, SOURCE)
    assert report.chained == report.records  # it still reads as an event of that chain
    assert f.detail == (
        f"the record at 0:{k}: its checksum fails; by its bytes it is source {SOURCE}'s, "
        "after seq 19, that chain's last: no later link checks it"
    )


def test_audit_verify_names_a_bad_checksum_record_once(
    stored_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command as an auditor runs it: one ALTERED line for the one damaged record, exit 4.
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 10)
    bad_checksum(data, items, k, "payload")
    code = main(["audit", "verify", "--data-dir", str(data)])
    out = capsys.readouterr().out
    assert code == 4
    altered = [line for line in out.splitlines() if line.lstrip().startswith("ALTERED")]
    assert altered == [
        f"  ALTERED   source {SOURCE} at 0:{k} (audit-010): the record at 0:{k}: its checksum "
        f"fails; it lies in source {SOURCE}'s chain, between seq 9 and seq 11, which cannot be "
        "checked across it"
    ], out
    assert main(["audit", "verify", "--data-dir", str(data), "--json"]) == 4
    checked = json.loads(capsys.readouterr().out)
    assert checked["ok"] is False and len(checked["findings"]) == 1
    assert checked["seq_gaps"] == {}


def test_a_bad_checksum_event_is_still_counted_in_its_chain(
    stored_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its bytes still read as an event of the chain, between two whose link it was: the
    # chain's count and head are as they were, so a checkpoint written down before the damage
    # still matches and says the damage lies before the heads, as for an altered event whose
    # checksum holds (a record that does not parse is no event: not counted).
    checkpoint = audit(log_records(str(stored_log))).checkpoint
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    bad_checksum(data, items, offset_of(items, 10), "payload")
    report = audit(log_records(str(data)), again=lambda: log_records(str(data)))
    assert report.chained == report.records and report.heads[SOURCE][:2] == (20, 20)
    assert report.checkpoint == checkpoint
    code = main(["audit", "verify", "--data-dir", str(data), "--checkpoint", checkpoint])
    assert code == 4
    assert "every chain's head up to it is as it was then" in capsys.readouterr().out


@pytest.mark.parametrize("damaged", [1, 2, 3])
def test_damaged_last_records_are_reported_not_taken_for_a_torn_tail(
    stored_log: Path, tmp_path: Path, damaged: int
) -> None:
    # Whole frames whose checksums fail, up to the end of the file: bit rot or a tamperer's
    # edit of the last events, not a write cut short (that one's length runs past the end).
    # One was reported; from two on, the walk took them all for a torn tail and left them
    # out: "every chain is intact", exit 0.
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    damage_last(data, damaged)
    report = audit(log_records(str(data)), again=lambda: log_records(str(data)))
    assert report.records == len(items)
    assert not report.ok
    named = sorted(f.offset for f in report.findings if "checksum fails" in f.detail)
    assert named == list(range(len(items) - damaged, len(items))), report.findings


def damage_last(data: Path, n: int) -> list[str]:
    """Change a byte of each of the log's last n events, their checksums left as they were
    (bit rot, or an edit); return their event ids."""
    items = frames(data)
    last = range(len(items) - n, len(items))
    ids = []
    for i in last:
        key, value = items[i]
        ids.append(pb.Event.FromString(value).event_id)
        items[i] = (key, value.replace(b"ecology", b"Ecology"))
    write(data, items, bad_crc_at=last)
    return ids


def test_a_write_cut_short_at_the_end_is_still_a_torn_tail(
    stored_log: Path, tmp_path: Path
) -> None:
    # The last frame's length runs past the end of the file: a crash mid-append (never
    # acknowledged), left out as before, the records before it intact.
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    path = data / EmbeddedLog.FILE
    path.write_bytes(path.read_bytes()[:-5])
    report = audit(log_records(str(data)), again=lambda: log_records(str(data)))
    assert report.records == len(items) - 1
    assert report.ok, report.findings


def test_records_an_open_cut_from_the_end_are_named_by_the_audit(
    stored_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The last two events' bytes changed: an open takes them for a torn write and cuts them
    # (kept beside the log). The log left breaks no link, so the audit said "every chain is
    # intact", exit 0, of a log that had lost two acknowledged events.
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    ids = damage_last(data, 2)
    EmbeddedLog(data).close()  # the open cuts them
    assert len(frames(data)) == len(items) - 2
    assert main(["audit", "verify", "--data-dir", str(data)]) == 4
    out = capsys.readouterr().out
    assert "CUT" in out and f"{EmbeddedLog.FILE}.cut-at-" in out, out
    assert all(i in out for i in ids), out
    assert main(["audit", "verify", "--data-dir", str(data), "--json"]) == 4
    (cut,) = json.loads(capsys.readouterr().out)["cut_from_end"]
    assert cut["records"] == 2 and cut["event_ids"] == ids, cut


def test_a_write_a_crash_cut_short_is_mentioned_but_fails_nothing(
    stored_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = copy(stored_log, tmp_path / "data")
    path = data / EmbeddedLog.FILE
    path.write_bytes(path.read_bytes() + frame_bytes(b"k", b"never acknowledged")[:-3])
    EmbeddedLog(data).close()
    assert main(["audit", "verify", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "every chain is intact" in out and "no whole record" in out, out


def frame_bytes(key: bytes, value: bytes) -> bytes:
    body = KEYLEN.pack(len(key)) + key + value
    return HEADER.pack(len(body), zlib.crc32(body)) + body


def test_a_hub_refused_after_its_open_cut_records_says_where_they_are(
    stored_log: Path, tmp_path: Path
) -> None:
    # The read model holds the two cut events, the log no longer does: the hub refuses to
    # start ("stands past the end of --log … or the log lost records"); it now says which
    # records the open cut just now, and where they are kept.
    data = copy(stored_log, tmp_path / "data")
    hub = Hub(HubConfig(data, listen="127.0.0.1:0"))
    hub.tailer.catch_up()  # the read model holds every event
    hub.stop()
    damage_last(data, 2)
    with pytest.raises(ValueError) as refused:
        Hub(HubConfig(data, listen="127.0.0.1:0"))
    said = str(refused.value)
    assert "the read model stands past the end of --log" in said, said
    assert f"{EmbeddedLog.FILE}.cut-at-" in said and "duhub audit verify" in said, said
