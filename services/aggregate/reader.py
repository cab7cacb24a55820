"""The records an aggregate worker folds: its partitions read straight from Kafka with
kafka-python, from the read model's positions. Faust keeps the group membership only
(`services/aggregate/feed.py` follows its assignment)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from kafka import KafkaConsumer, TopicPartition

from duhub.log.base import LogRecord
from duhub.log.kafka import ISOLATION_LEVEL, RECONNECT_BACKOFF_MAX_MS, KafkaSpec, to_record

FETCH_MAX_BYTES = 16 * 1024 * 1024
PARTITION_FETCH_MAX_BYTES = 4 * 1024 * 1024
# How long the broker may hold a fetch for data to come. kafka-python keeps one fetch in
# flight per broker, and leaves out of it the partitions whose last response is not read yet:
# a fetch sent just after a response landed names only the others, at worst those that get
# no records (4 of the 12 in the freshness benchmark), and the busy ones wait for it to expire.
# At the default 500 ms the worker's longest fetch took 487 ms through a run at 5,000/s;
# at 20 ms, 42 ms (kafka-python's fetch-latency-max). An idle worker fetches 50 times a second.
FETCH_MAX_WAIT_MS = 20


class PartitionReader:
    """Reads the partitions it is given, each from the offset it is told."""

    def __init__(self, spec: KafkaSpec, max_poll_records: int) -> None:
        self.topic = spec.topic
        self._origin_key = spec.origin_key()
        self.partitions: set[int] = set()
        self._consumer = KafkaConsumer(
            bootstrap_servers=spec.bootstrap,
            group_id=None,  # no group of its own: the positions are the read model's
            enable_auto_commit=False,
            client_id="duhub-aggregate",
            # An offset out of the log's range raises (OffsetOutOfRangeError): the feed finds
            # why (`Feed.check_log`). With "earliest", a topic made afresh under a running worker
            # was read from 0, each record taken for one applied at that offset, unsaid.
            auto_offset_reset="none",
            # Committed records only: an aborted transaction's are skipped, and the driver
            # finds the log holds none there (`ContiguousDriver._log_skips`).
            isolation_level=ISOLATION_LEVEL,
            max_poll_records=max_poll_records,
            # A fetch response is held ~3 times while decoded (socket buffer, response,
            # records): 64 MiB fetches took the worker to 677 MB through the 10M log. 16 MiB
            # is still ~50,000 records, seconds of the worker's work (8 MiB halved its pace).
            fetch_max_bytes=FETCH_MAX_BYTES,
            max_partition_fetch_bytes=PARTITION_FETCH_MAX_BYTES,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        )

    def assign(self, partitions: set[int], positions: Mapping[int, int]) -> None:
        """Read `partitions` from now on; those not read before start at `positions`
        (those kept go on from where they are)."""
        gained = partitions - self.partitions
        self._consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
        self.partitions = set(partitions)
        self.seek({p: positions.get(p, 0) for p in gained})

    def seek(self, offsets: Mapping[int, int]) -> None:
        """Go on from these offsets (partitions not read here are left alone)."""
        for p, offset in offsets.items():
            if p in self.partitions:
                self._consumer.seek(TopicPartition(self.topic, p), offset)

    def take(self, limit: int, within_s: float) -> list[LogRecord]:
        """Return up to `limit` records, waiting at most `within_s` for more to come."""
        out: list[LogRecord] = []
        if not self.partitions:
            time.sleep(within_s)
            return out
        deadline = time.monotonic() + within_s
        while len(out) < limit:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            got = self._consumer.poll(timeout_ms=int(left * 1000) + 1, max_records=limit - len(out))
            for records in got.values():
                out += [to_record(m, self._origin_key) for m in records]
        return out
