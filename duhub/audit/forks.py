"""Which broken links of the chains are forks: a second read of the log, made only when a
chain has a link that may be one. Pure: entries in, the links' `Break`s filled in.

A county's node moved to a standby ingest before the workers caught up forks its source's
chain: the standby knows the chain's head only from the read model, so its first event links
to an earlier entry than the one before it in the log (README, failover). The walk keeps no
hashes of a chain but its last two (its memory stays bounded), so whether a broken link's
hash is an earlier entry's is looked up here, for the few links that broke, by hash.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # chain.py reads the log again with this: no import back at run time
    from duhub.audit.chain import Break, Chain, Entry


class ForkLookup:
    """Fed the log's chained entries in log order (those of the walk that kept `chains`),
    finds for each broken link that may be a fork the earlier entry of its source whose bytes
    it links to, and notes the seqs of the source's entries between the two."""

    def __init__(self, chains: Iterable[Chain]) -> None:
        self._wanted: dict[bytes, list[Break]] = defaultdict(list)
        self._last = (-1, -1)
        for chain in chains:
            for b in chain.breaks:
                if b.could_fork() and b.e.prev_hash:
                    self._wanted[b.e.prev_hash].append(b)
                    self._last = max(self._last, (b.e.partition, b.e.offset))
        self._open: dict[str, list[Break]] = defaultdict(list)

    def __bool__(self) -> bool:
        """Whether any link is looked up (else the log need not be read again)."""
        return bool(self._wanted)

    def done(self, partition: int, offset: int) -> bool:
        """Whether nothing at or after (partition, offset) in log order changes an answer."""
        return (partition, offset) >= self._last

    def see(self, e: Entry) -> None:
        place = (e.partition, e.offset)
        opened = self._open.get(e.source)
        if opened:
            for b in list(opened):
                if place >= (b.e.partition, b.e.offset):
                    opened.remove(b)  # reached the link: the entries between are counted
                else:
                    b.note_between(e.seq)
        for b in self._wanted.get(e.stored_hash, ()):
            here = b.continues is None and b.e.source == e.source
            if here and place < (b.e.partition, b.e.offset):
                b.continues = e
                self._open[e.source].append(b)
