"""Audit verify names a fork of a source's chain a fork (FORKED), saying which earlier entry
the broken link continues from, where it said ALTERED: a county's node moved to a standby
ingest before the workers caught up (README) makes one, and sent an auditor looking for
tampering. A fork breaks no record, so the chain is checked on past it; tampering (an event
altered, deleted, inserted, or altered to link back as a fork would) is reported as before."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import duhub.audit.chain as chain_module
import tests.unit.builders as b
from duhub.audit.chain import Chain, Entry, Finding, audit, audit_to_checkpoint
from duhub.audit.forks import ForkLookup
from duhub.bootstrap import load_reference
from duhub.cli.main import main
from duhub.convert import chain_hash
from duhub.log.embedded import EmbeddedLog
from duhub.readmodel import schema
from duhub.readmodel.engine import open_engine
from duhub.v1 import events_pb2 as pb
from services.aggregate.embedded import LogTailer
from services.ingest.ingestor import Ingestor
from tests.unit.test_audit import SOURCE, visit
from tests.unit.test_audit_chain_walk import oracle_break

Record = tuple[int, int, bool, bytes, bool, str]


def log_of(links: list[tuple[int, int | None]], alter: int = -1) -> list[Record]:
    """Records of SOURCE's events in log order: (seq, the index of the record it links to;
    None: to no event). `alter`: the record whose bytes change after it was linked to."""
    values: list[bytes] = []
    for seq, to in links:
        msg = visit(seq)
        msg.prev_hash = chain_hash(values[to]) if to is not None else b""
        values.append(msg.SerializeToString())
    if alter >= 0:
        values[alter] = values[alter].replace(b"ecology", b"Ecology")
    return [(0, k, True, v, True, "") for k, v in enumerate(values)]


def run(records: list[Record]) -> list[Finding]:
    return audit(records, again=lambda: iter(records)).findings


def walked(records: list[Record]) -> list[Finding]:
    """What the walk alone says (no second read): the classification before forks."""
    return audit(records).findings


# Ingest A appended seqs 1-5, the read model applied 1-3; the node moved to standby B, which
# linked seq 6 to seq 3, the head it knew, and seq 7 to seq 6.
FAILOVER = [(1, None), (2, 0), (3, 1), (4, 2), (5, 3), (6, 2), (7, 5)]


def test_a_failover_fork_is_named_a_fork_from_the_entry_it_continues() -> None:
    records = log_of(FAILOVER)
    (f,) = walked(records)
    assert f.kind == "altered" and f.event_id == "audit-005"  # what it said before
    (f,) = run(records)
    assert (f.kind, f.source, f.offset, f.event_id) == ("forked", SOURCE, 5, "audit-006")
    assert f.detail.startswith(
        "seq 6 at 0:5 continues from seq 3 at 0:2, not from seq 5 at 0:4 before it: the chain "
        "forks there, the other branch the 2 events of the source between (seqs 4 to 5). A "
        "county's node moved to a standby ingest"
    ), f.detail
    assert not audit(records, again=lambda: iter(records)).ok  # verify still fails: exit 4


def test_a_fork_one_event_back_is_a_fork_not_an_insertion() -> None:
    # The read model had applied seq 4: A's seq 5 alone is the other branch.
    records = log_of([(1, None), (2, 0), (3, 1), (4, 2), (5, 3), (6, 3), (7, 5)])
    assert [f.kind for f in walked(records)] == ["inserted"]
    (f,) = run(records)
    assert (f.kind, f.event_id) == ("forked", "audit-006")
    assert "continues from seq 4 at 0:3, not from seq 5 at 0:4" in f.detail
    assert "the event of the source between (seq 5)" in f.detail


def test_a_fork_at_the_chain_start_is_a_fork() -> None:
    # The read model had applied none of the source: B linked seq 4 to no event.
    records = log_of([(1, None), (2, 0), (3, 1), (4, None), (5, 3)])
    (f,) = run(records)
    assert (f.kind, f.event_id) == ("forked", "audit-004")
    assert "continues from no event (the chain starts again), not from seq 3 at 0:2" in f.detail


def test_a_fork_at_the_chains_last_event_is_a_fork() -> None:
    (f,) = run(log_of(FAILOVER[:-1]))
    assert (f.kind, f.event_id) == ("forked", "audit-006")


def test_an_alteration_after_a_fork_is_still_found() -> None:
    records = log_of([*FAILOVER, (8, 6), (9, 7)], alter=7)
    forked, altered = run(records)
    assert forked.kind == "forked" and forked.event_id == "audit-006"
    assert (altered.kind, altered.event_id) == ("altered", "audit-008")


def test_a_deletion_after_a_fork_is_still_found() -> None:
    records = log_of([*FAILOVER, (8, 6), (9, 7)])
    del records[7]
    forked, missing = run(records)
    assert forked.kind == "forked"
    assert (missing.kind, missing.event_id) == ("missing", "audit-009")


def test_an_alteration_made_to_look_like_a_fork_is_still_an_alteration() -> None:
    # Seq 5 altered, and seq 6 altered to link to seq 3 (a hash in the log): seq 6's bytes
    # are not those seq 7 links to, so it is no fork.
    records = log_of([(1, None), (2, 0), (3, 1), (4, 2), (5, 3), (6, 4), (7, 5)], alter=4)
    msg = visit(6)
    msg.prev_hash = chain_hash(records[2][3])
    records[5] = (0, 5, True, msg.SerializeToString(), True, "")
    assert run(records) == walked(records)
    (f,) = run(records)
    assert (f.kind, f.event_id) == ("altered", "audit-005")


def test_events_inserted_with_a_link_back_are_no_fork() -> None:
    # A careful forger's two events before seq 4, the first linked to seq 3: the chain then
    # links back over them, but their seqs are not between 3 and 4.
    links = [(1, None), (2, 0), (3, 1), (99, 2), (100, 3), (4, 2), (5, 5)]
    records = log_of(links)
    assert run(records) == walked(records)
    assert [f.kind for f in run(records)] == ["altered"]


def test_a_fork_in_a_later_partition_is_found_there() -> None:
    """Kafka: each partition read in turn; a source's records lie in one."""
    other = [(0, k, True, v, True, "") for k, v in enumerate(_other_source(3))]
    records = other + [(1, 10 + k, *rest) for k, (_, _, *rest) in enumerate(log_of(FAILOVER))]
    (f,) = run(records)
    assert (f.kind, f.partition, f.offset) == ("forked", 1, 15)
    assert "continues from seq 3 at 1:12, not from seq 5 at 1:14" in f.detail


def test_the_log_is_read_again_only_for_a_link_that_may_fork_and_only_up_to_it() -> None:
    reads: list[int] = []

    def again(records: list[Record]):  # type: ignore[no-untyped-def]
        def read():  # type: ignore[no-untyped-def]
            for r in records:
                reads.append(r[1])
                yield r

        return read

    intact = log_of([(1, None), (2, 0), (3, 1)])
    assert audit(intact, again=again(intact)).ok and reads == []
    altered = log_of([(1, None), (2, 0), (3, 1), (4, 2)], alter=1)
    assert [f.kind for f in audit(altered, again=again(altered)).findings] == ["altered"]
    assert reads == [0, 1, 2]  # seq 3's link to other bytes may go further back: looked up
    reads.clear()
    records = log_of([*FAILOVER, (8, 6), (9, 7), (10, 8)])
    assert [f.kind for f in audit(records, again=again(records)).findings] == ["forked"]
    assert reads == [0, 1, 2, 3, 4, 5]  # not past the fork's link


def test_both_reports_of_a_checkpoint_verify_name_the_fork() -> None:
    records = log_of([*FAILOVER, (8, 6)])
    whole, before = audit_to_checkpoint(records, {0: 7}, again=lambda: iter(records))
    assert [f.kind for f in whole.findings] == [f.kind for f in before.findings] == ["forked"]


def test_a_chain_forking_more_often_than_a_verify_follows_says_where_it_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chain_module, "MAX_BREAKS", 2)
    # Three forks, each linking back over one event, then seq 8 altered.
    links = [(1, None), (2, 0), (3, 1), (4, 1), (5, 3), (6, 3), (7, 5), (8, 5), (9, 7)]
    found = run(log_of(links, alter=7))
    assert [f.kind for f in found] == ["forked", "forked"]
    assert found[-1].detail.endswith(
        "; the chain is not checked past it (a verify follows at most 2 broken links of one chain)"
    )


def _other_source(n: int) -> list[bytes]:
    out, prev = [], b""
    for seq in range(1, n + 1):
        msg = visit(seq)
        msg.source, msg.event_id, msg.prev_hash = "420582", f"dang-{seq}", prev
        out.append(msg.SerializeToString())
        prev = chain_hash(out[-1])
    return out


# The walk and the second read against the classification over the whole chain in memory.


def oracle_findings(source: str, chain: list[Entry]) -> list[Finding]:
    """Forks up to the first broken link that is none, then that link: over the whole chain,
    each link checked against the entry before it in the log."""
    out: list[Finding] = []
    for i, e in enumerate(chain):
        if e.prev_hash == (chain[i - 1].stored_hash if i else b""):
            continue
        if _oracle_forks(chain, i):
            out.append(Finding("forked", source, e.partition, e.offset, e.event_id, ""))
            continue
        out.append(oracle_break(source, chain, i))  # the first broken link no fork
        return out
    return out


def _oracle_forks(chain: list[Entry], i: int) -> bool:
    e = chain[i]
    if i == 0 or any(x.stored_hash == e.prev_hash for x in chain[i + 1 :]):
        return False  # the chain's first, or reordered
    if e.seq in {x.seq for x in chain[:i]}:
        return False  # a repeat
    if i + 1 < len(chain) and chain[i + 1].prev_hash != e.stored_hash:
        return False  # its own bytes are not those the next links to
    if not e.prev_hash:
        j = -1
    else:
        earlier = [k for k in range(i) if chain[k].stored_hash == e.prev_hash]
        if not earlier:
            return False
        j = earlier[0]
    start = chain[j].seq if j >= 0 else 0
    between = [x.seq for x in chain[j + 1 : i]]
    return all(start < s < e.seq for s in between) and max(between) == e.seq - 1


def _h(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@st.composite
def forked_and_damaged(draw) -> list[tuple[int, str, bytes, bytes]]:  # type: ignore[no-untyped-def]
    n = draw(st.integers(2, 30))
    chain = []
    prev = b""
    for seq in range(1, n + 1):
        h = _h(f"{SOURCE}-{seq}")
        chain.append((seq, f"e{seq}", h, prev))
        prev = h
    for _ in range(draw(st.integers(0, 3))):  # failovers: a link to an earlier head
        i = draw(st.integers(1, len(chain) - 1))
        j = draw(st.integers(-1, i - 1))
        seq, eid, h, _ = chain[i]
        chain[i] = (seq, eid, h, chain[j][2] if j >= 0 else b"")
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(chain) - 1))
        how = draw(st.sampled_from(["delete", "swap", "insert", "alter", "relink", "forge"]))
        seq, eid, h, prev = chain[i]
        if how == "delete":
            del chain[i]
        elif how == "swap" and i + 1 < len(chain):
            chain[i], chain[i + 1] = chain[i + 1], chain[i]
        elif how == "insert":
            s = draw(st.integers(1, 40))
            chain.insert(i, (s, "forged", _h(f"forged{i}-{s}"), prev))
        elif how == "alter":
            chain[i] = (seq, eid, _h(f"altered{i}"), prev)
        elif how == "relink" and i:  # altered to link to an earlier entry, as a fork does
            j = draw(st.integers(0, i - 1))
            chain[i] = (seq, eid, _h(f"relinked{i}"), chain[j][2])
        elif how == "forge":
            chain.insert(i, (seq, "forged", _h(f"x{i}"), b"\0" * 32))
        if not chain:
            break
    return chain


@settings(max_examples=400, deadline=None)
@given(forked_and_damaged())
def test_the_walk_and_its_second_read_classify_as_the_whole_chain_does(chain) -> None:  # type: ignore[no-untyped-def]
    es = [Entry(0, 100 + k, SOURCE, s, eid, h, p) for k, (s, eid, h, p) in enumerate(chain)]
    if not es:
        return
    walk: dict[str, Chain] = defaultdict(Chain)
    for e in es:
        walk[SOURCE].add(e)
    lookup = ForkLookup(walk.values())
    for e in es:
        if lookup.done(e.partition, e.offset):
            break
        lookup.see(e)
    found = walk[SOURCE].findings(SOURCE)
    expected = oracle_findings(SOURCE, es)
    assert [(f.kind, f.offset) for f in found] == [(f.kind, f.offset) for f in expected]
    assert [f for f in found if f.kind != "forked"] == [f for f in expected if f.kind != "forked"]


def test_a_node_moved_to_a_standby_ingest_before_the_workers_caught_up_is_named_a_fork(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The failover the README warns of, on the embedded log: two ingests in front of one
    log, the read model behind the first when the county's node moves to the second."""
    log_ = EmbeddedLog(tmp_path)
    engine = open_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
    tailer = LogTailer(log_, engine)
    first, standby = Ingestor(log_, engine), Ingestor(log_, engine)

    def yidu(*seqs: int) -> list[pb.Event]:
        return [
            b.visit(b.YIDU_T1, area="ecology", event_id=f"y{s}", source=b.YIDU, seq=s) for s in seqs
        ]

    try:
        load_reference(first, engine)
        tailer.catch_up()
        # The standby runs: it took in the log at its first append, another county's event.
        dang = b.visit(b.DANG_T1, area="ecology", event_id="d1", source=b.DANG, seq=1)
        assert b.kinds(standby.publish([dang])) == ["accepted"]
        assert b.kinds(first.publish(yidu(1, 2, 3))) == ["accepted"] * 3
        tailer.catch_up()
        at = [r.offset for r in first.publish(yidu(4, 5))]  # not applied when the node moves
        moved = standby.publish(yidu(6, 7))
        assert b.kinds(moved) == ["accepted"] * 2
        tailer.catch_up()
        with engine.connect() as conn:  # the figures: each of the county's events once
            seen = select(func.count()).select_from(schema.events_seen)
            assert conn.execute(seen.where(schema.events_seen.c.source == b.YIDU)).scalar_one() == 7
    finally:
        log_.close()
        engine.dispose()
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 4  # as for any finding
    out = capsys.readouterr().out
    six, five = moved[0].offset, at[1]
    assert (
        f"FORKED    source {b.YIDU} at 0:{six} (y6): seq 6 at 0:{six} continues from seq 3 at "
        f"0:{at[0] - 1}, not from seq 5 at 0:{five} before it: the chain forks there, the "
        f"other branch the 2 events of the source between (seqs 4 to 5). A county"
    ) in out, out
    assert "every link holds but where a chain forks (below)" in out
    assert "ALTERED" not in out
    # Against the checkpoint it printed: both walks name the fork, and the heads match.
    checkpoint = out.rsplit("\n  ", 1)[1].strip()
    assert main(["audit", "verify", "--data-dir", str(tmp_path), "--checkpoint", checkpoint]) == 4
    out = capsys.readouterr().out
    assert out.count("FORKED") == 1 and "ALTERED" not in out, out
    assert "checkpoint matches: every chain's head up to it is as it was then" in out
