"""Check per-source hash chains. Pure: records in, findings out.

Ingest sets on every accepted event `prev_hash` = SHA-256 of the stored bytes of the previous
accepted event of the same source. Walking a source's events in log order, its broken links
are classified, its forks and the first that is none:
- reordered: the event links to one that comes later in the log;
- inserted: the event does not link to its predecessor, but the next one links past it, or
  it repeats a seq the chain holds before it (ingest never takes a seq twice);
- missing: the link is broken and the seq just before the event's is nowhere in the log (an
  event was deleted there);
- altered: the link is broken although the seq before the event's is in the log: the
  predecessor's bytes changed;
- forked (looked at before inserted-before-it, missing and altered): the event links to an
  earlier entry of its chain than the one before it (or to none, a chain's start), its own
  bytes hold (the next link is to them, or it is the chain's last), and the source's entries
  between the two have seqs between theirs, the highest just before its own: a second branch
  of one numbering, as a standby ingest that knew the chain only from a read model behind
  appends it. A fork breaks no record, so the chain is checked on past it, and its next
  broken link is classified too. Which earlier entry a link goes to takes a second read of
  the log (`duhub.audit.forks`), only when a broken link may be a fork: the walk keeps no
  chain's hashes.
A source's seqs may go backwards in the log (two processes publishing as one source, a node
restarted with an older outbox sending the seqs it had not used): what is missing is judged
by the seqs the whole log holds, not by the predecessor's seq (before 2026-12-06 a deletion
after such a step was called an alteration of the predecessor, an alteration before a step
forward "events missing" that were in the log, and a repeat appended an alteration).
A frame whose checksum fails or that does not parse is reported as altered where it lies (a
Kafka-direct record is in no chain: one that does not parse is a dead letter, not damage). Its
bytes are not those accepted, so no chain links it: neither its own link nor its successor's
to it can be checked. The broken link across it (seqs missing) is its damage, reported once,
where it lies, naming the chain and the seqs it lies between; the chain is checked on from the
event after it (and counts it, if it still parses). A broken link takes a damaged record of
its own source (by the record's bytes) first, else one naming no chain's source, never
another chain's: that chain's deletion across it is still found. A damaged record after its
chain's last event, which no link reaches, is named (and counted) by that chain.
Read with the hub's origin key, a record claiming ingest's origin whose MAC fails is named
forged where it lies: one with a MAC that does not match is chained (ingest's, damaged since,
its successor links to it), one with no MAC at all is in no chain (ingest signs every record).
"""

from __future__ import annotations

import bisect
import hashlib
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field, replace

from duhub.audit.forks import ForkLookup
from duhub.convert import chain_hash
from duhub.log.origin import MAC_MISSING
from duhub.v1 import events_pb2 as pb

CHECKPOINT_PREFIX = "duhub-checkpoint:v1"

# partition, offset, checksum ok, value, ingested, forged (`duhub.audit.records.Record`)
Record = tuple[int, int, bool, bytes, bool, str]


@dataclass(frozen=True, slots=True)
class Entry:
    partition: int
    offset: int
    source: str
    seq: int
    event_id: str
    stored_hash: bytes
    prev_hash: bytes


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # altered | missing | inserted | reordered | forked | forged
    source: str
    partition: int
    offset: int
    event_id: str
    detail: str


@dataclass(slots=True)
class AuditReport:
    records: int = 0
    chained: int = 0
    findings: list[Finding] = field(default_factory=list)
    # Per source: the seqs missing, as (the seq before them, the seq after them); 0 before
    # seq 1.
    gaps: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    heads: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    # Records claiming ingest's origin that the walk took as ingest's (their MAC passed, when
    # read with the key): none beside forgeries says the key is not the one ingest signs with.
    ingest_records: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def key_suspect(self) -> bool:
        """Whether every record claiming ingest's origin failed the origin key: another key
        file than ingest's, or ingest run without one, rather than forgeries among its own."""
        return not self.ingest_records and any(f.kind == "forged" for f in self.findings)

    @property
    def checkpoint(self) -> str:
        """Return a digest of every chain's head at the log ends walked, to write down."""
        ends = ",".join(f"{p}:{o}" for p, o in sorted(self.ends.items()))
        h = hashlib.sha256(repr(sorted(self.heads.items())).encode()).hexdigest()
        return f"{CHECKPOINT_PREFIX}:{ends}:{h}"


def parse_checkpoint(text: str) -> dict[int, int]:
    """Return the log ends a checkpoint was taken at; ValueError names what is wrong."""
    parts = text.strip().split(":")
    if len(parts) < 4 or ":".join(parts[:2]) != CHECKPOINT_PREFIX:
        raise ValueError(f"--checkpoint: not a {CHECKPOINT_PREFIX}:… string")
    try:
        body = text.strip()[len(CHECKPOINT_PREFIX) + 1 :].rsplit(":", 1)[0]
        return {int(p): int(o) for p, o in (x.split(":") for x in body.split(","))}
    except ValueError:
        raise ValueError("--checkpoint: its log ends are not partition:offset pairs") from None


def entry_of(partition: int, offset: int, value: bytes) -> Entry | None:
    """Return the chain entry of a stored record, or None when it does not parse."""
    try:
        msg = pb.Event.FromString(value)
    except Exception:
        return None
    return Entry(
        partition, offset, msg.source, msg.seq, msg.event_id, chain_hash(value), msg.prev_hash
    )


def _at_record(kind: str, entry: Entry | None, partition: int, offset: int, what: str) -> Finding:
    """Return a finding about one record, named by where it lies and, if it parses, by its
    event: "the record at P:O" followed by `what`."""
    return Finding(
        kind,
        entry.source if entry else "",
        partition,
        offset,
        entry.event_id if entry else "",
        f"the record at {partition}:{offset}{what}",
    )


def audit(
    records: Iterable[Record],
    until: dict[int, int] | None = None,
    *,
    again: Callable[[], Iterable[Record]] | None = None,
) -> AuditReport:
    """Check records (partition, offset, checksum ok, value, ingested, forged: why a record
    claiming ingest's origin is not ingest's, or "") in log order; with `until`, only those
    before those log ends (a checkpoint's). `again` reads the same records once more, to
    tell forks from breaks (`look_up_forks`); without it a fork is classified as a break."""
    walk = _Walk()
    for record in records:
        if until is None or _before(record, until):
            walk.feed(*record)
    look_up_forks([walk], again)
    return walk.finish()


def audit_to_checkpoint(
    records: Iterable[Record],
    until: dict[int, int],
    *,
    again: Callable[[], Iterable[Record]] | None = None,
) -> tuple[AuditReport, AuditReport]:
    """Return the reports of the whole log and of its part before `until`, in one walk of it:
    the second walk verify took for a checkpoint doubled its time (2026-12-06)."""
    whole, before = _Walk(), _Walk()
    for record in records:
        whole.feed(*record)
        if _before(record, until):
            before.feed(*record)
    look_up_forks([whole, before], again)
    return whole.finish(), before.finish()


def look_up_forks(walks: list[_Walk], again: Callable[[], Iterable[Record]] | None) -> None:
    """Read the log again, only when a walk's chain has a broken link that may be a fork,
    and only up to the last such link, to find the earlier entry each links to
    (`duhub.audit.forks`); a record past a walk's ends (appended since) is not its."""
    lookups = [(lookup, w.report.ends) for w in walks if (lookup := ForkLookup(w.chains.values()))]
    if not lookups or again is None:
        return
    records = again()
    try:
        for partition, offset, crc_ok, value, ingested, forged in records:
            if all(lookup.done(partition, offset) for lookup, _ in lookups):
                break
            # The entries the walk chained: ingested (or claiming to be, with a MAC), whole,
            # parsing.
            chained = ingested and crc_ok and forged != MAC_MISSING
            entry = entry_of(partition, offset, value) if chained else None
            if entry is None:
                continue
            for lookup, ends in lookups:
                if offset < ends.get(partition, 0):
                    lookup.see(entry)
    finally:
        close = getattr(records, "close", None)
        if close is not None:  # a generator stopped early: its log closed now
            close()


def _before(record: Record, until: dict[int, int]) -> bool:
    """Whether a record (partition, offset, …) lies before the log ends `until`."""
    return record[1] < until.get(record[0], 0)


class _Walk:
    """One walk of the log's records in log order: fed a record at a time, finished once."""

    def __init__(self) -> None:
        self.report = AuditReport()
        self.chains: dict[str, Chain] = defaultdict(Chain)
        # Per source, the seqs of records no chain holds (Kafka-direct ones, damaged ones that
        # still parse): they are in the log all the same, so they fill the chain's gaps.
        self.unchained_seqs: dict[str, SeqRuns] = defaultdict(SeqRuns)
        self.cuts = _Cuts()

    def feed(
        self, partition: int, offset: int, crc_ok: bool, value: bytes, ingested: bool, forged: str
    ) -> None:
        self.report.records += 1
        self.report.ends[partition] = max(self.report.ends.get(partition, 0), offset + 1)
        if forged == MAC_MISSING:
            # Read with the key, a record claiming ingest's origin with no MAC at all is not
            # ingest's (ingest signs every record): named where it lies and left out of the
            # chains, as a Kafka-direct record is. Chained, its link was judged as ingest's
            # and genuine events were blamed (FORKED, ALTERED, MISSING with none deleted).
            # Its seq fills no gap: the aggregator dead-letters it, the figures lack it too.
            self.report.findings.append(
                _at_record(
                    "forged",
                    entry_of(partition, offset, value),
                    partition,
                    offset,
                    f" claims ingest's origin, but headers.duhub-origin-mac: {forged}; not "
                    "ingest's, so in no chain",
                )
            )
            return
        if not ingested:
            # A Kafka-direct record: no chain holds it (ingest never saw it), so it is listed
            # as a record only, and one that does not parse is a dead letter, not damage. Its
            # seq is in the log all the same, so no gap of its source's chain.
            direct = entry_of(partition, offset, value)
            if direct is not None:
                self.unchained_seqs[direct.source].see(direct.seq)
            return
        entry = entry_of(partition, offset, value)
        if not forged:
            self.report.ingest_records += 1
        if forged:
            self.report.findings.append(
                _at_record(
                    "forged",
                    entry,
                    partition,
                    offset,
                    f" claims ingest's origin, but headers.duhub-origin-mac: {forged}",
                )
            )
        if not crc_ok or entry is None:
            why = "its checksum fails" if not crc_ok else "it is not a duhub.v1.Event"
            # No chain links it: its bytes are not those accepted, so its link and the one
            # to it cannot be checked (else its successor's link reports it a second time).
            source = entry.source if entry else ""
            self.cuts.add(partition, offset, len(self.report.findings), source)
            self.report.findings.append(_at_record("altered", entry, partition, offset, f": {why}"))
            if entry is not None:  # its seq is in the log all the same
                self.unchained_seqs[entry.source].see(entry.seq)
            return
        chain = self.chains[entry.source]
        claimed = None
        if chain.breaks_over_gap(entry):
            claimed = self.cuts.claim(chain.last, entry, self.chains)
        if claimed is not None:
            # One damage, one finding: the damaged record's, naming the chain it broke.
            at, parses = claimed
            if parses:  # it still reads as an event: one of this chain's
                _hold(self.report, chain)
            f = self.report.findings[at]
            before = chain.last.seq if chain.last is not None else 0
            self.report.findings[at] = replace(
                f,
                source=entry.source,
                detail=f"{f.detail}; it lies in source {entry.source}'s chain, between seq "
                f"{before} and seq {entry.seq}, which cannot be checked across it",
            )
        chain.add(entry, unverifiable=claimed is not None)
        self.report.chained += 1

    def finish(self) -> AuditReport:
        for at, head in self.cuts.after_heads(self.chains):
            _hold(self.report, self.chains[head.source])  # it still reads as an event of that chain
            f = self.report.findings[at]
            self.report.findings[at] = replace(
                f,
                detail=f"{f.detail}; by its bytes it is source {head.source}'s, after seq "
                f"{head.seq}, that chain's last: no later link checks it",
            )
        for source, chain in sorted(self.chains.items()):
            # Only what lies inside the chain's gaps is taken from the unchained records: a
            # Kafka-direct one dead-lettered (a seq far ahead, say) must not make a gap of its own.
            present = chain.seqs.filled_from(self.unchained_seqs[source])
            self.report.findings.extend(chain.findings(source, present))
            gaps = present.gaps if chain.gaps else []
            if gaps:
                self.report.gaps[source] = gaps
            assert chain.last is not None  # a chain is made by its first entry
            self.report.heads[source] = (chain.count, chain.last.seq, chain.last.stored_hash.hex())
        return self.report


def _hold(report: AuditReport, chain: Chain) -> None:
    """Count a damaged record that still reads as one of `chain`'s events: in the chain's
    count (its heads, the checkpoint) and the report's, though no link of it is checked."""
    chain.hold()
    report.chained += 1


class _Cuts:
    """Records no chain could take (they do not parse, or their checksum fails), per partition
    in log order, until a chain's broken link across one of them claims it: each stands for
    one broken link."""

    def __init__(self) -> None:
        self._offsets: dict[int, list[int]] = defaultdict(list)
        self._findings: dict[int, list[int]] = defaultdict(list)
        self._sources: dict[int, list[str]] = defaultdict(list)  # by its bytes; "" unparsed

    def add(self, partition: int, offset: int, finding: int, source: str) -> None:
        self._offsets[partition].append(offset)
        self._findings[partition].append(finding)
        self._sources[partition].append(source)

    def claim(
        self, last: Entry | None, e: Entry, chained: Container[str]
    ) -> tuple[int, bool] | None:
        """Take a record between `last` and `e` in e's partition: the first of e's source by
        its bytes, else the first that names no source of a chain in `chained` (another
        chain's is left to it); return the index of its finding and whether it parses, or
        None when none lies there."""
        if last is not None and last.partition != e.partition:
            return None
        offsets, sources = self._offsets[e.partition], self._sources[e.partition]
        i = bisect.bisect_right(offsets, last.offset if last is not None else -1)
        j = bisect.bisect_left(offsets, e.offset, lo=i)
        if i == j:
            return None
        between = range(i, j)
        own = next((k for k in between if sources[k] == e.source), None)
        if own is None:
            own = next((k for k in between if sources[k] not in chained), None)
            if own is None:
                return None
        del offsets[own]
        return self._findings[e.partition].pop(own), sources.pop(own) != ""

    def after_heads(self, chains: dict[str, Chain]) -> Iterator[tuple[int, Entry]]:
        """Yield (index of its finding, the chain's last event) of each record left unclaimed
        that lies after the last event of the chain its bytes name: no later link reaches
        it."""
        for partition, sources in self._sources.items():
            for offset, source, at in zip(
                self._offsets[partition], sources, self._findings[partition], strict=True
            ):
                head = chains[source].last if source in chains else None
                if head is not None and head.partition == partition and head.offset < offset:
                    yield at, head


# Broken links a chain keeps, in log order (a fork is one, and the chain is checked on past
# it): their state is a few entries each, so memory stays bounded whatever the log holds.
MAX_BREAKS = 64


@dataclass(slots=True)
class Break:
    """A link of a chain that does not hold, with what classifying it needs: the two entries
    before it, the one after it, the last later entry it links to; and, for a link that may
    be a fork, the earlier entry it links to and the seqs of its source's entries between
    them (a second read of the log finds them: `duhub.audit.forks`)."""

    e: Entry
    prev: Entry | None
    prev2: Entry | None
    repeats: bool  # its seq is one the chain held before it
    after: Entry | None = None
    linked_later: Entry | None = None
    # The earlier entry of its source whose bytes it links to (none: it links to no event, a
    # chain's start, `from_start`); the source's entries between the two: how many, their
    # lowest and highest seq, and whether every one lies between the two's seqs.
    continues: Entry | None = None
    from_start: bool = False
    between: int = 0
    low: int = 0
    high: int = 0
    fits: bool = True

    def could_fork(self) -> bool:
        """Whether it may continue from an earlier entry than the one before it: not a
        reordering, insertion or repeat, and its own bytes hold (the next link is to them,
        or it is the chain's last)."""
        after = self.after
        return (
            self.prev is not None
            and self.linked_later is None
            and not self.repeats
            and (after is None or after.prev_hash == self.e.stored_hash)
        )

    def note_between(self, seq: int) -> None:
        """Count an entry of its source between the one it continues from and it."""
        self.low = seq if not self.between else min(self.low, seq)
        self.high = max(self.high, seq)
        self.between += 1
        start = self.continues.seq if self.continues is not None else 0
        self.fits = self.fits and start < seq < self.e.seq

    def forks(self) -> bool:
        """Whether it is a fork: it continues from an earlier entry of its chain (or its
        start), and the entries between are another branch of the same numbering, their seqs
        between the two's and the highest just before its own, as one node's events are when
        a second ingest takes them on from the first. Events inserted, or one altered to link
        further back, are none: their seqs are not between, or the next link breaks; nor is a
        link over events deleted at the fork (the seq before its own is gone)."""
        return (
            (self.continues is not None or self.from_start)
            and self.between > 0
            and self.fits
            and self.high == self.e.seq - 1
            and self.could_fork()
        )


@dataclass(slots=True)
class Chain:
    """One source's chain walked in log order. It keeps its head, the seqs it has seen and
    its first broken links (`Break`, up to MAX_BREAKS), not the chain itself: a log of 10M
    events is walked in memory per source that grows with its gaps only."""

    count: int = 0
    last: Entry | None = None
    before_last: Entry | None = None
    seqs: SeqRuns = field(default_factory=lambda: SeqRuns())
    breaks: list[Break] = field(default_factory=list)
    # The breaks waiting for a later entry whose bytes they link to (reordered), by that hash.
    _waiting: dict[bytes, list[Break]] = field(default_factory=dict)

    def breaks_over_gap(self, e: Entry) -> bool:
        """Return whether `e` would be a broken link kept, its seq not following on from the
        last one's (a jump, or a step back: seqs may go backwards in the log)."""
        last = self.last
        return (
            len(self.breaks) < MAX_BREAKS
            and e.prev_hash != (last.stored_hash if last is not None else b"")
            and e.seq != (last.seq if last is not None else 0) + 1
        )

    def hold(self) -> None:
        """Count an event whose bytes were damaged where it lies in the chain: it is one of
        the chain's, though no link to or from it can be checked."""
        self.count += 1

    def add(self, e: Entry, *, unverifiable: bool = False) -> None:
        """Walk on to `e`; `unverifiable`: its link cannot be checked (a record that does not
        parse lies between it and the last entry), so it is taken as it comes."""
        last = self.last
        if self.breaks:
            if self.breaks[-1].after is None:
                self.breaks[-1].after = e
            for b in self._waiting.get(e.stored_hash, ()):
                b.linked_later = e
        if (
            e.prev_hash != (last.stored_hash if last is not None else b"")
            and not unverifiable
            and len(self.breaks) < MAX_BREAKS
        ):
            b = Break(e, last, self.before_last, e.seq in self.seqs)
            if not e.prev_hash and last is not None:
                # It links to no event: a chain started again, after all the chain holds.
                b.from_start, b.between = True, self.count
                b.low, b.high = self.seqs.runs[0][0], self.seqs.runs[-1][1]
                b.fits = b.high < e.seq
            self.breaks.append(b)
            self._waiting.setdefault(e.prev_hash, []).append(b)
        self.seqs.see(e.seq)
        self.before_last, self.last = last, e
        self.count += 1

    @property
    def gaps(self) -> list[tuple[int, int]]:
        return self.seqs.gaps

    def findings(self, source: str, present: SeqRuns | None = None) -> list[Finding]:
        """Return its forks up to its first broken link that is none, and that link: each
        classified. A fork breaks nothing of the chain, which is checked on past it, so
        damage after one is found as it is in a chain without it."""
        out = []
        for b in self.breaks:
            out.append(_classify(b, source, present if present is not None else self.seqs))
            if out[-1].kind != "forked":
                return out
        if len(self.breaks) == MAX_BREAKS:
            f = out[-1]
            out[-1] = replace(
                f,
                detail=f"{f.detail}; the chain is not checked past it (a verify follows at "
                f"most {MAX_BREAKS} broken links of one chain)",
            )
        return out


def _classify(b: Break, source: str, present: SeqRuns) -> Finding:
    """Return what a broken link is. `present`: the seqs of the source the whole log holds."""
    e, prev, prev2 = b.e, b.prev, b.prev2
    where = f"{e.partition}:{e.offset}"

    def at(kind: str, x: Entry, text: str) -> Finding:
        return Finding(kind, source, x.partition, x.offset, x.event_id, text)

    if b.linked_later is not None:
        seq = b.linked_later.seq
        text = f"seq {e.seq} at {where} comes before seq {seq}, which it follows"
        return at("reordered", e, text)
    if b.after is not None and prev is not None and b.after.prev_hash == prev.stored_hash:
        return at("inserted", e, f"seq {e.seq} at {where} is not part of the chain")
    if b.forks():
        assert prev is not None  # could_fork
        return at("forked", e, _fork_text(b, where, prev))
    if prev is not None and prev2 is not None and e.prev_hash == prev2.stored_hash:
        text = f"seq {prev.seq} at {prev.partition}:{prev.offset} is not part of the chain"
        return at("inserted", prev, text)
    if b.repeats:
        # Ingest takes a seq once: the later holder of it is the one the chain lacks.
        text = f"seq {e.seq} at {where} is not part of the chain (the log holds seq {e.seq} "
        return at("inserted", e, text + "before it)")
    if e.seq > 1 and e.seq - 1 not in present:
        # The event before it in its source's numbering is nowhere in the log: deleted
        # here, where the link breaks, whatever seq the log holds before it.
        before = present.below(e.seq)
        after = prev.seq if prev is not None else 0
        also = f", after seq {after}" if after != before else ""
        text = f"events between seq {before} and seq {e.seq} (before {where}{also}) are missing"
        return at("missing", e, text)
    x = prev if prev is not None else e
    return at(
        "altered",
        x,
        f"seq {x.seq} at {x.partition}:{x.offset} differs from what was "
        f"accepted (seq {e.seq} links to other bytes)",
    )


def _fork_text(b: Break, where: str, prev: Entry) -> str:
    """What a fork finding says: where the link goes, and the other branch."""
    e, f = b.e, b.continues
    to = f"seq {f.seq} at {f.partition}:{f.offset}" if f is not None else "no event"
    seqs = f"seq {b.low}" if b.low == b.high else f"seqs {b.low} to {b.high}"
    many = "event" if b.between == 1 else f"{b.between:,} events"
    return (
        f"seq {e.seq} at {where} continues from {to}"
        f"{' (the chain starts again)' if f is None else ''}, not from seq {prev.seq} at "
        f"{prev.partition}:{prev.offset} before it: the chain forks there, the other branch "
        f"the {many} of the source between ({seqs}). A county's node moved to a standby "
        "ingest before the workers caught up does this (README); if none moved then, events "
        "were written into the log there"
    )


@dataclass(slots=True)
class SeqRuns:
    """The seqs seen of one source, as sorted runs [first, last] with a seq missing between
    each two: memory grows with the gaps only."""

    runs: list[list[int]] = field(default_factory=list)

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """Return the seqs missing, as (the seq before, the seq after) each run of them, from
        seq 1 (0 before it) up to the highest seen, whatever order the log holds them in."""
        out, before = [], 0
        for first, last in self.runs:
            if first > before + 1:
                out.append((before, first))
            before = last
        return out

    def __contains__(self, seq: int) -> bool:
        k = bisect.bisect_right(self.runs, seq, key=lambda run: run[0])
        return k > 0 and seq <= self.runs[k - 1][1]

    def below(self, seq: int) -> int:
        """Return the highest seq held below `seq` (0 when none)."""
        k = bisect.bisect_left(self.runs, seq, key=lambda run: run[0])
        return min(self.runs[k - 1][1], seq - 1) if k else 0

    def filled_from(self, other: SeqRuns) -> SeqRuns:
        """Return these seqs with those of `other` that lie in their gaps added."""
        out = SeqRuns([run[:] for run in self.runs])
        for before, after in self.gaps:
            for first, last in other.runs:
                for seq in range(max(first, before + 1), min(last, after - 1) + 1):
                    out.see(seq)
        return out

    def see(self, seq: int) -> None:
        runs = self.runs
        if runs and runs[-1][1] < seq:  # in order, as nearly always
            if runs[-1][1] + 1 == seq:
                runs[-1][1] = seq
            else:
                runs.append([seq, seq])
            return
        k = bisect.bisect_right(runs, seq, key=lambda run: run[0])
        before = runs[k - 1] if k else None
        if before is not None and seq <= before[1]:
            return  # seen already (a seq reused in the log)
        after = runs[k] if k < len(runs) else None
        joins_before = before is not None and before[1] + 1 == seq
        joins_after = after is not None and after[0] == seq + 1
        if joins_before and joins_after:
            before[1] = after[1]  # type: ignore[index]
            del runs[k]
        elif joins_before:
            before[1] = seq  # type: ignore[index]
        elif joins_after:
            after[0] = seq  # type: ignore[index]
        else:
            runs.insert(k, [seq, seq])
