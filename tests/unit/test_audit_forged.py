"""Audit verify, given the hub's origin key, on a record claiming ingest's origin with no MAC
at all (`duhub-origin: ingest`, no `duhub-origin-mac`): a county or intruder writing straight
into Kafka in ingest's name. Ingest signs every record, so it is not ingest's: named FORGED
where it lies and left out of the chains, as a Kafka-direct record is. It was chained, and
its bad link judged as if it were ingest's: genuine events were blamed (FORKED at the next
genuine event, ALTERED of a genuine one, MISSING with nothing deleted). A record WITH a MAC
that does not match stays chained: ingest's record damaged since, its successor links to it.

The property: the report of a log with such forgeries is that of the log without them, with
one FORGED finding at each and each counted as a record: nothing else named, no gap filled,
no chain's head or count changed (the aggregator dead-letters them: the figures lack them too).
"""

from __future__ import annotations

import random

import pytest

from duhub.audit.chain import AuditReport, Record, audit
from duhub.convert import chain_hash
from duhub.log.origin import INGEST_ORIGIN, MAC_HEADER, MAC_MISSING, ORIGIN_HEADER, origin
from tests.unit.test_audit import SOURCE, visit

P = 6
# Why a record with ingest's header and a MAC that is not its value's fails the key.
BAD_MAC = origin(b"k" * 32, [(ORIGIN_HEADER, INGEST_ORIGIN), (MAC_HEADER, b"m" * 32)], b"v")


def _value(seq: int, event_id: str, prev: bytes = b"") -> bytes:
    event = visit(seq)
    event.event_id = event_id
    if seq == 0:
        event.ClearField("seq")
    event.prev_hash = prev
    return event.SerializeToString()


def _log(layout: list[tuple[str, int, str]]) -> list[Record]:
    """Records of a layout in log order: ("g", seq, _) ingest's, each linked to the one
    before; ("x", seq, _) ingest's, deleted since (linked to, not in the log); ("d", seq, _)
    Kafka-direct; ("f", seq, link) claiming ingest's origin with no MAC, linked to `link`:
    "none" (no event), "head" (ingest's last so far), "back" (the one before it), "direct"
    (the last Kafka-direct one), "rand" (no record's bytes), "garbage" (its value is no Event
    at all)."""
    records: list[Record] = []
    heads, direct = [b""], b""
    for kind, seq, link in layout:
        offset = len(records)
        if kind in "gx":
            value = _value(seq, f"g-{seq}", heads[-1])
            heads.append(chain_hash(value))
            if kind == "g":
                records.append((P, offset, True, value, True, ""))
        elif kind == "d":
            value = _value(seq, f"d-{seq}")
            direct = chain_hash(value)
            records.append((P, offset, True, value, False, ""))
        else:
            prev = {
                "none": b"",
                "head": heads[-1],
                "back": heads[-2] if len(heads) > 1 else b"",
                "direct": direct,
                "rand": b"r" * 32,
            }.get(link, b"")
            value = b"\x0a\x05abc" if link == "garbage" else _value(seq, f"f-{offset}", prev)
            records.append((P, offset, True, value, True, MAC_MISSING))
    return records


def _audit(records: list[Record]) -> AuditReport:
    return audit(records, again=lambda: iter(records))


def _assert_only_the_forgeries_named(records: list[Record]) -> None:
    """The report of `records` is that of the log without its no-MAC records, and one FORGED
    finding at each of them."""
    forged = [r[1] for r in records if r[5] == MAC_MISSING]
    without = _audit([r for r in records if r[5] != MAC_MISSING])
    report = _audit(records)
    named = [(f.kind, f.offset) for f in report.findings if f.kind == "forged"]
    assert named == [("forged", o) for o in forged], report.findings
    others = [f for f in report.findings if f.kind != "forged"]
    assert others == without.findings  # no genuine event blamed, no damage hidden
    assert (report.records, report.chained) == (without.records + len(forged), without.chained)
    assert (report.gaps, report.heads) == (without.gaps, without.heads)


G = [("g", s, "") for s in range(1, 24)]
D = [("d", s, "") for s in range(24, 31)]
G31 = [("g", 31, "")]

# The layouts of the investigation (s30): ingest's seqs 1-23, Kafka-direct 24-30, ingest's 31,
# and a record in ingest's name with no MAC; with what each blamed when it was chained.
LAYOUTS = {
    # an insertion of seq 0 at the forgery (harmless, but not ingest's)
    "no seq, no link, before g31": G + D + [("f", 0, "none")] + G31,
    "seq 30, linked to g23, before g31": G + D + [("f", 30, "head")] + G31,  # FORKED at g31
    "seq 24, linked to g23, before g31": G + D + [("f", 24, "head")] + G31,
    "seq 24, no link, among the direct": G + [("f", 24, "none")] + D[1:] + G31,
    "seq 35, no link, after g31": G + D + G31 + [("f", 35, "none")],  # MISSING 31-35
    "seq 32, no link, after g31": G + D + G31 + [("f", 32, "none")],  # FORKED (a restart)
    "seq 0, no link, after g31": G + D + G31 + [("f", 0, "none")],  # ALTERED g31
    "seq 32, linked to g31": G + D + G31 + [("f", 32, "head")],
    "seq 31, linked to g23, before g31": G + D + [("f", 31, "head")] + G31,
    "garbage, before g31": G + D + [("f", 0, "garbage")] + G31,  # also ALTERED, cut
    # ingest's seq 3 deleted, a forgery of seq 3 in its place: the deletion is still MISSING
    # (its seq counted, it was "seq 2 ALTERED")
    "seq 3 in a deleted one's place": [("g", 1, ""), ("g", 2, ""), ("f", 3, "head"), ("x", 3, "")]
    + [("g", s, "") for s in range(4, 8)],
}


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_a_record_in_ingests_name_without_a_mac_is_named_and_blames_no_genuine_event(
    layout: list[tuple[str, int, str]],
) -> None:
    records = _log(layout)
    _assert_only_the_forgeries_named(records)
    report = _audit(records)
    forged = next(f for f in report.findings if f.kind == "forged")
    assert "headers.duhub-origin-mac: missing" in forged.detail and "in no chain" in forged.detail


def test_a_forgery_inside_a_fork_leaves_the_fork_as_it_is() -> None:
    # A node moved to a standby ingest: seq 6 continues from seq 3, ingest's 4 and 5 the other
    # branch. A forgery of seq 9 between them must not count in that branch (the fork's second
    # read of the log skips it as the walk does), or the fork is judged a break.
    values = []
    for seq in range(1, 6):
        values.append(_value(seq, f"g-{seq}", chain_hash(values[-1]) if values else b""))
    values.append(_value(6, "g-6", chain_hash(values[2])))
    records: list[Record] = [(P, o, True, v, True, "") for o, v in enumerate(values[:4])]
    records.append((P, 4, True, _value(9, "f-4"), True, MAC_MISSING))
    records += [(P, o + 1, True, v, True, "") for o, v in enumerate(values[4:], start=4)]
    _assert_only_the_forgeries_named(records)
    assert [f.kind for f in _audit(records).findings] == ["forged", "forked"]


def test_forgeries_without_a_mac_blame_no_genuine_event_in_any_layout() -> None:
    # Seeded and bounded: ingest's and Kafka-direct seqs of one source mixed, in order or
    # with seqs stepping back, sometimes an ingest event deleted or its bytes changed, and
    # one or two records in ingest's name with no MAC anywhere, any seq, any link.
    rng = random.Random(20261207)
    for _ in range(300):
        n = rng.randint(3, 14)
        kinds = [rng.choice("ggd") for _ in range(n)]
        order = list(range(1, n + 1))
        for _ in range(rng.randint(0, 2)):
            i, j = rng.randrange(n), rng.randrange(n)
            order[i], order[j] = order[j], order[i]
        layout = [(kinds[s - 1], s, "") for s in order]
        for _ in range(rng.randint(1, 2)):
            seq = rng.choice([0, rng.randint(1, n + 3), 10**6])
            link = rng.choice(["none", "head", "back", "direct", "rand", "garbage"])
            layout.insert(rng.randint(0, len(layout)), ("f", seq, link))
        records = _log(layout)
        damage = rng.choice(["none", "none", "delete", "alter", "checksum"])
        genuine = [k for k, r in enumerate(records) if r[4] and not r[5]]
        if damage != "none" and genuine:
            k = rng.choice(genuine)
            p, o, _ok, value, _i, _f = records[k]
            if damage == "delete":
                del records[k]
            elif damage == "alter":
                records[k] = (p, o, True, value + b"\x0a\x01X", True, "")  # another event_id
            else:
                records[k] = (p, o, False, value, True, "")
        _assert_only_the_forgeries_named(records)


def test_a_record_whose_mac_does_not_match_stays_chained() -> None:
    # Ingest's seq 3 with a MAC that does not match its value: ingest's record, its header
    # damaged since (or another hub's key): named FORGED, and chained, since seq 4 links to
    # its bytes; with its value changed too, seq 4's link names it ALTERED, as before.
    values = []
    for seq in range(1, 6):
        values.append(_value(seq, f"g-{seq}", chain_hash(values[-1]) if values else b""))
    records: list[Record] = [(P, o, True, v, True, "") for o, v in enumerate(values)]
    records[2] = (P, 2, True, values[2], True, BAD_MAC)
    report = _audit(records)
    assert [(f.kind, f.offset) for f in report.findings] == [("forged", 2)]
    assert f"headers.duhub-origin-mac: {BAD_MAC}" in report.findings[0].detail
    assert (report.chained, report.heads[SOURCE][:2]) == (5, (5, 5))

    records[2] = (P, 2, True, values[2] + b"\x0a\x01X", True, BAD_MAC)
    report = _audit(records)
    assert [(f.kind, f.offset) for f in report.findings] == [("forged", 2), ("altered", 2)]
    assert "seq 3 at 6:2 differs from what was accepted" in report.findings[1].detail
    assert report.chained == 5


def test_a_log_whose_every_ingest_record_fails_the_key_is_said_to_suspect_the_key() -> None:
    """Audit given another key than ingest's (or ingest run without one) named every record
    of the hub FORGED and said nothing of the likelier fault, the key. A forgery among
    records that pass the key is not that case."""
    genuine = _log([("g", s, "") for s in (1, 2, 3)])
    other_key = [(p, o, ok, v, ingested, BAD_MAC) for p, o, ok, v, ingested, _ in genuine]
    assert audit(other_key).key_suspect
    assert audit(_log([("f", 1, "none"), ("f", 2, "none")])).key_suspect
    assert not audit(genuine).key_suspect  # read without a key, or with ingest's
    assert not audit(_log([("g", 1, ""), ("g", 2, ""), ("f", 3, "head")])).key_suspect
