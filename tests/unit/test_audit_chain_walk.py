"""The audit walks each source's chain in constant memory (`Chain`): its findings, gaps and
heads are those of the whole-chain classification it replaced (kept here as the oracle),
for chains broken in every way: events deleted, swapped, inserted, altered, several at once."""

from __future__ import annotations

import hashlib
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from duhub.audit.chain import Chain, Entry, Finding

SOURCE = "420581"


def oracle_first_break(source: str, chain: list[Entry]) -> Finding | None:
    """The classification as it was, over the whole chain in memory (its seqs as the whole
    chain holds them: a seq repeated, the seq before the break's anywhere in the chain)."""
    for i, e in enumerate(chain):
        expected = chain[i - 1].stored_hash if i else b""
        if e.prev_hash != expected:
            return oracle_break(source, chain, i)
    return None


def oracle_break(source: str, chain: list[Entry], i: int) -> Finding:
    """The classification of the broken link of `chain[i]`, as a chain's first was."""
    later = {e.stored_hash: i for i, e in enumerate(chain)}

    def at(kind: str, x: Entry, text: str) -> Finding:
        return Finding(kind, source, x.partition, x.offset, x.event_id, text)

    e = chain[i]
    where = f"{e.partition}:{e.offset}"
    if later.get(e.prev_hash, -1) > i:
        j = later[e.prev_hash]
        text = f"seq {e.seq} at {where} comes before seq {chain[j].seq}, which it follows"
        return at("reordered", e, text)
    if i + 1 < len(chain) and i and chain[i + 1].prev_hash == chain[i - 1].stored_hash:
        return at("inserted", e, f"seq {e.seq} at {where} is not part of the chain")
    if i >= 2 and e.prev_hash == chain[i - 2].stored_hash:
        x = chain[i - 1]
        text = f"seq {x.seq} at {x.partition}:{x.offset} is not part of the chain"
        return at("inserted", x, text)
    if e.seq in {x.seq for x in chain[:i]}:
        text = f"seq {e.seq} at {where} is not part of the chain (the log holds seq {e.seq} "
        return at("inserted", e, text + "before it)")
    seqs = {x.seq for x in chain}
    if e.seq > 1 and e.seq - 1 not in seqs:
        before = max((s for s in seqs if s < e.seq), default=0)
        after = chain[i - 1].seq if i else 0
        also = f", after seq {after}" if after != before else ""
        text = f"events between seq {before} and seq {e.seq} (before {where}{also}) are missing"
        return at("missing", e, text)
    x = chain[i - 1] if i else e
    return at(
        "altered",
        x,
        f"seq {x.seq} at {x.partition}:{x.offset} differs from what was "
        f"accepted (seq {e.seq} links to other bytes)",
    )


def intact(n: int) -> list[tuple[int, str, bytes, bytes]]:
    """(seq, event id, stored hash, prev hash) of a chain as ingest links it."""
    out, prev = [], b""
    for seq in range(1, n + 1):
        h = hashlib.sha256(f"{SOURCE}-{seq}".encode()).digest()
        out.append((seq, f"e{seq}", h, prev))
        prev = h
    return out


@st.composite
def damaged(draw) -> list[tuple[int, str, bytes, bytes]]:  # type: ignore[no-untyped-def]
    chain = intact(draw(st.integers(1, 30)))
    for _ in range(draw(st.integers(0, 3))):
        if not chain:
            break
        i = draw(st.integers(0, len(chain) - 1))
        how = draw(st.sampled_from(["delete", "swap", "insert", "alter", "forge"]))
        seq, eid, h, prev = chain[i]
        if how == "delete":
            del chain[i]
        elif how == "swap" and i + 1 < len(chain):
            chain[i], chain[i + 1] = chain[i + 1], chain[i]
        elif how == "insert":
            chain.insert(i, (99, "forged", hashlib.sha256(b"forged%d" % i).digest(), prev))
        elif how == "alter":  # its bytes changed: its hash is another
            chain[i] = (seq, eid, hashlib.sha256(b"altered" + h).digest(), prev)
        elif how == "forge":  # an event that links to nothing of the chain
            chain.insert(i, (seq, "forged", hashlib.sha256(b"x%d" % i).digest(), b"\0" * 32))
    return chain


def entries(chain: list[tuple[int, str, bytes, bytes]]) -> list[Entry]:
    return [
        Entry(0, 100 + k, SOURCE, seq, eid, h, prev) for k, (seq, eid, h, prev) in enumerate(chain)
    ]


@settings(max_examples=400, deadline=None)
@given(damaged())
def test_the_walk_classifies_as_the_whole_chain_did(chain) -> None:  # type: ignore[no-untyped-def]
    es = entries(chain)
    walk: dict[str, Chain] = defaultdict(Chain)
    for e in es:
        walk[SOURCE].add(e)
    if not es:
        return
    c = walk[SOURCE]
    assert (c.findings(SOURCE) or [None])[0] == oracle_first_break(SOURCE, es)
    # The seqs missing from 1 to the highest, whatever the order: (the seq before, after).
    seen = sorted({e.seq for e in es})
    gaps = [(a, b) for a, b in zip([0, *seen], seen, strict=False) if b > a + 1]
    assert c.gaps == gaps
    assert (c.count, c.last.seq, c.last.stored_hash) == (len(es), es[-1].seq, es[-1].stored_hash)


def test_each_kind_of_break_is_reached() -> None:
    # The generator above does reach every classification (else the comparison proves little).
    kinds = set()
    for chain in (intact(10), *(_one(how) for how in ("delete", "swap", "insert", "alter"))):
        walk = Chain()
        for e in entries(chain):
            walk.add(e)
        f = (walk.findings(SOURCE) or [None])[0]
        kinds.add(f.kind if f else "ok")
    assert kinds == {"ok", "missing", "reordered", "inserted", "altered"}


def _one(how: str) -> list[tuple[int, str, bytes, bytes]]:
    chain = intact(10)
    seq, eid, h, prev = chain[4]
    if how == "delete":
        del chain[4]
    elif how == "swap":
        chain[4], chain[5] = chain[5], chain[4]
    elif how == "insert":
        chain.insert(4, (99, "forged", hashlib.sha256(b"f").digest(), prev))
    else:
        chain[4] = (seq, eid, hashlib.sha256(b"altered").digest(), prev)
    return chain


def test_gaps_are_the_seqs_missing_not_jumps_in_log_order() -> None:
    """Seqs 3, 2, 5 in that order (the hub takes any order): 1 and 4 are missing. The walk
    compared neighbours in the log and said '2→5' (3 is there), and nothing of seq 1."""
    walk = Chain()
    for seq in (3, 2, 5, 9, 7, 8):
        walk.add(Entry(0, seq, SOURCE, seq, f"e{seq}", b"%d" % seq, b""))
    assert walk.gaps == [(0, 2), (3, 5), (5, 7)]
