"""Audit verify on a source whose seqs go backwards in the log. Ingest takes any seq not used
yet (CONTRACT: gaps are allowed, reuse is rejected), so a county that published seqs 1-5 and
10-12, and then 6-9 (two processes publishing as one source, or a node restarted with an older
outbox sending the seqs it had not used), has a log that is intact in that order. Damage
after such a step is named by the event the log lacks, where it lies: before 2026-12-06 the
walk judged a broken link by the predecessor's seq, so a deletion after the step back was
"seq 12 altered", an alteration before the step forward "events between seq 5 and seq 10 are
missing" (all of them in the log), and a copy of an earlier event appended to the chain an
alteration or a deletion."""

from __future__ import annotations

from pathlib import Path

import pytest

from duhub.audit.chain import audit
from duhub.audit.records import log_records
from duhub.bootstrap import Hub, HubConfig
from duhub.cli.main import main
from tests.unit.test_audit import (
    SOURCE,
    alter,
    copy,
    county_findings,
    cut,
    frames,
    offset_of,
    visit,
    write,
)

# The order the county's events were accepted in, each group a publish.
PUBLISHED = [[1, 2, 3, 4, 5], [10, 11, 12], [6, 7, 8, 9]]


@pytest.fixture(scope="module")
def stored_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("audit-back") / "data"
    hub = Hub(HubConfig(data, listen="127.0.0.1:0"))
    hub.start()
    try:
        for seqs in PUBLISHED:
            results = hub.ingestor.publish([visit(s) for s in seqs])
            assert all(r.result == 1 for r in results), results
    finally:
        hub.stop()
    report = audit(log_records(str(data)), again=lambda: log_records(str(data)))
    assert report.ok and SOURCE not in report.gaps  # intact as ingest wrote it
    return data


def test_a_deletion_after_the_seqs_go_back_is_missing_not_an_alteration(
    stored_log: Path, tmp_path: Path
) -> None:
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 6)  # the first event after seq 12
    del items[k]
    write(data, items)
    report, found = county_findings(data)
    (f,) = found
    assert (f.kind, f.offset, f.event_id) == ("missing", k, "audit-007"), f
    assert f.detail == (f"events between seq 5 and seq 7 (before 0:{k}, after seq 12) are missing")
    assert report.gaps[SOURCE] == [(5, 7)]


def test_a_deletion_after_the_seqs_jump_names_only_the_seq_gone(
    stored_log: Path, tmp_path: Path
) -> None:
    # Seqs 6-9 are in the log, later: only seq 10 is missing, where it was.
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 10)
    del items[k]
    write(data, items)
    report, found = county_findings(data)
    (f,) = found
    assert (f.kind, f.offset, f.event_id) == ("missing", k, "audit-011"), f
    assert f.detail == f"events between seq 9 and seq 11 (before 0:{k}, after seq 5) are missing"
    assert report.gaps[SOURCE] == [(9, 11)]


def test_an_alteration_before_the_seqs_jump_is_not_missing_events(
    stored_log: Path, tmp_path: Path
) -> None:
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 5)
    alter(items, k)
    write(data, items)
    report, found = county_findings(data)
    (f,) = found
    assert (f.kind, f.offset, f.event_id) == ("altered", k, "audit-005"), f
    assert SOURCE not in report.gaps


@pytest.mark.parametrize("seq", [4, 11])
def test_a_copy_of_an_earlier_event_appended_is_inserted_where_it_lies(
    stored_log: Path, tmp_path: Path, seq: int
) -> None:
    # A seq the chain holds already: the later holder is not part of it (before: seq 9, the
    # chain's head, "altered", or "events between seq 9 and seq 11 are missing").
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    items.append(items[offset_of(items, seq)])
    write(data, items)
    report, found = county_findings(data)
    (f,) = found
    k = len(items) - 1
    assert (f.kind, f.offset, f.event_id) == ("inserted", k, f"audit-{seq:03d}"), f
    assert f.detail == (
        f"seq {seq} at 0:{k} is not part of the chain (the log holds seq {seq} before it)"
    )
    assert SOURCE not in report.gaps


def test_a_record_cut_short_after_the_seqs_go_back_is_named_once(
    stored_log: Path, tmp_path: Path
) -> None:
    # Before: twice, the cut record unclaimed, and seq 12 "altered" by the link across it.
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 6)
    cut(data, items, k)
    report, found = county_findings(data)
    (f,) = found
    assert (f.kind, f.offset, f.source) == ("altered", k, SOURCE), f
    assert f.detail.endswith(
        f"it lies in source {SOURCE}'s chain, between seq 12 and seq 7, which cannot be "
        "checked across it"
    )
    assert report.gaps[SOURCE] == [(5, 7)]


def test_audit_verify_prints_the_event_missing_after_the_step_back(
    stored_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = copy(stored_log, tmp_path / "data")
    items = frames(data)
    k = offset_of(items, 6)
    del items[k]
    write(data, items)
    assert main(["audit", "verify", "--data-dir", str(data)]) == 4
    out = capsys.readouterr().out
    assert (
        f"MISSING   source {SOURCE} at 0:{k} (audit-007): events between seq 5 and seq 7 "
        f"(before 0:{k}, after seq 12) are missing" in out
    ), out
    assert f"  {SOURCE}: 5→7" in out
    assert "ALTERED" not in out
