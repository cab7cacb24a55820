"""The Kafka log: topic `duhub.events.v1`, keyed by source, unlimited retention.

Appends use an idempotent producer with acks=all and return only after the broker
acknowledged every record. Records written by ingest carry the header duhub-origin=ingest
and, with the hub's origin key (`?key=PATH`), its MAC (`duhub/log/origin.py`); anything else
on the topic is a Kafka-direct event, checked by the aggregator.

Appends go through aiokafka's batch API on an event loop of the log's own (`_Appender`): a
whole record batch per partition is built in C, where kafka-python's `send` costs ~30 µs of
Python per record (the ingest bottleneck). Partitions are chosen as kafka-python's default
partitioner does (murmur2 of the key), by the partition count ingest first wrote the topic with
(`duhub/log/placement.py`), so a source keeps its partition when partitions are added.
Reading, the health probe and the dead-letter producer stay on kafka-python.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import aiokafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
)
from kafka.net.selector import NetworkSelector

from duhub.log.base import LogClosed, LogRecord
from duhub.log.origin import INGEST_ORIGIN, ORIGIN_HEADER, ingest_headers, load_key, origin
from duhub.log.placement import count_of, header, place
from duhub.log.value_hint import HINT_HEADER, value_hint

log = logging.getLogger(__name__)

# kafka-python warns of any step of its network loop over 0.1 s ("Task … ran for 0.152s
# (>0.100s threshold). It is blocking the event loop -- likely a tight sync loop"): on a
# 2-core host a fold or write holding the GIL makes one every 10-30 s, idle or not, each line
# differing (the task's address) so no repeat filter holds it back; the operator can do
# nothing about it (ops review, 2026-12-07). A loop stalled for a second, which a real
# livelock is, is still said. The library's default, as its consumers take no such option.
SLOW_NETWORK_STEP_S = 1.0
NetworkSelector.DEFAULT_CONFIG["slow_task_threshold_secs"] = SLOW_NETWORK_STEP_S

EVENTS_TOPIC = "duhub.events.v1"
DLQ_TOPIC = "duhub.events.dlq"
# A dead letter's event, for the county that sent it: it reads the topic, not the read model.
EVENT_ID_HEADER = "duhub-event-id"
# A dead letter too large for its topic goes without its value: the log keeps it (its offset).
VALUE_OMITTED_HEADER = "duhub-value-omitted"
__all__ = ["INGEST_ORIGIN", "ORIGIN_HEADER", "KafkaLog", "KafkaSpec"]
DEFAULT_PARTITIONS = 12
# Fault tolerance (tests/integration/test_faults.py): after a broker restart, clients dial again
# within a second, not kafka-python's default of up to 30 s; an append while the broker is down
# fails within about 30 s instead of blocking ingest for the default 120 s delivery timeout.
RECONNECT_BACKOFF_MAX_MS = 1000
DELIVERY_TIMEOUT_MS = 30_000
BATCH_BYTES = 512 * 1024
# Records of a transaction its producer aborted were never published (README, Kafka-direct
# publishing): every reader of the topic takes committed records only (kafka-python's default
# took them all, and the hub counted aborted events). Such a reader gets a partition up to its
# last stable offset (where the oldest open transaction starts), and `end_offsets` asked by it
# gives that offset: the end the hub catches up to. Aborted records and transaction markers
# take offsets of their own, so the records read may skip offsets, a whole transaction's.
ISOLATION_LEVEL = "read_committed"
# `read_uncommitted` reads this many records a fetch, and gives up after this long without one.
UNCOMMITTED_RECORDS = 5000
UNCOMMITTED_STALL_S = 10
# How far back from each partition's end an ingest starting looks for a record of ingest's
# naming the partition count sources are placed by (`duhub/log/placement.py`).
PLACEMENT_TAIL = 500
# How long ingest's first append reads the partitions' tails for that count, at most.
PLACEMENT_READ_S = 10.0
# A read of this few records (whether any lies in a stretch: `holds_all`, a hole, another
# partition's next record; the dead-letter fill's stretches, a range's last page) fetches at
# most about this much: the reader's 16 MiB fetches would be taken for one record, each time
# the lag is scraped or ingest looks whether it may open, and for each stretch of the fill
# (1,000 dead letters in pairs on a 200,000-record partition: 16.4 s, against 5.4 s so).
PEEK_RECORDS = 1000
PEEK_FETCH_BYTES = 1024 * 1024
PEEK_FETCH_WAIT_MS = 10
# A stopping process (`duhub serve ingest`, `duhub up` on Kafka) closes its log within this,
# whatever the broker does: it has 23 s to stop in all (as an aggregate worker,
# services/aggregate/faust_app.STOP_WITHIN_S, under the 30 s compose and Kubernetes give before
# SIGKILL), and its server's grace and the rest of its stop come before. Through a frozen broker
# (tests/flakylink.FrozenBroker) close waited out kafka-python's 30 s request timeout behind a
# reader's lock (an ingest scraped for its lag just before the stop: 27 s), and an append in
# flight held the process 42 s: 10 s for its producer's flush, then its gRPC thread, which
# Python's exit waits for, the append's 45 s backstop, its event loop stopped.
CLOSE_WITHIN_S = 5.0
# What the appender's event loop gets to stop in, past that, when the flush took it all.
LOOP_STOP_S = 0.5
# Shared by both producers (and the benchmark's raw reference, which must match them).
LINGER_MS = 2
MAX_REQUEST_BYTES = 16 * 1024 * 1024
# The log is the audit record: never delete, and let the broker stamp append time so a
# Kafka-direct event's recorded_at is the log's, fixed for every replay.
TOPIC_CONFIG = {
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "message.timestamp.type": "LogAppendTime",
}


# The options of a kafka:// URL (`KafkaSpec.parse`).
OPTIONS = ("topic", "partitions", "replication", "key")


@dataclass(frozen=True, slots=True)
class KafkaSpec:
    bootstrap: str
    topic: str = EVENTS_TOPIC
    partitions: int = DEFAULT_PARTITIONS
    # 1 suits one local broker; a real cluster wants 3 (and min.insync.replicas=2).
    replication: int = 1
    # The hub's origin key file (`duhub/log/origin.py`): "" takes ingest's header at its word.
    key_file: str = ""
    # Whether the URL named the partition count (else the default): a count named for a topic
    # that exists with another is said to be unused, not passed over in silence.
    partitions_given: bool = field(default=False, compare=False)

    def origin_key(self) -> bytes | None:
        return load_key(self.key_file) if self.key_file else None

    @property
    def dlq_topic(self) -> str:
        """Return the dead-letter topic: duhub.events.dlq beside the default topic."""
        return DLQ_TOPIC if self.topic == EVENTS_TOPIC else f"{self.topic}.dlq"

    @classmethod
    def parse(cls, url: str) -> KafkaSpec:
        """Parse kafka://HOST:PORT[,HOST:PORT…][?topic=…&partitions=N&replication=R&key=PATH]."""
        u = urlparse(url)
        if u.scheme != "kafka" or not u.netloc:
            raise ValueError(f"--log: {url!r} is not kafka://HOST:PORT")
        # Blank values kept: parse_qs drops them, and ?key= (an unset variable) turned the
        # origin check off without a word.
        q = parse_qs(u.query, keep_blank_values=True)
        # An option not read must not pass silently: a typo (?topik=) would put the hub on the
        # default topic, another hub's.
        for name, values in q.items():
            if name not in OPTIONS:
                raise ValueError(
                    f"--log: unknown option {name!r} in {url}; known: {', '.join(OPTIONS)}"
                )
            if len(values) > 1:
                raise ValueError(f"--log: {name}: given twice in {url}")
            if not values[0]:
                raise ValueError(f"--log: {name}: empty in {url}")
        return cls(
            u.netloc,
            q.get("topic", [EVENTS_TOPIC])[0],
            _count(q, "partitions", DEFAULT_PARTITIONS),
            _count(q, "replication", 1),
            q.get("key", [""])[0],
            "partitions" in q,
        )


def _count(q: dict[str, list[str]], name: str, default: int) -> int:
    """Return a partition or replica count of a kafka:// URL: 0 reached the broker as a bad
    request, -1 asked for the broker's default."""
    text = q.get(name, [str(default)])[0]
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"--log: {name}: must be a whole number from 1, not {text!r}")
    return int(text)


def ensure_topics(spec: KafkaSpec) -> None:
    """Create the events and dead-letter topics when absent."""
    admin = KafkaAdminClient(bootstrap_servers=spec.bootstrap, client_id="duhub-admin")
    try:
        for name, n in ((spec.topic, spec.partitions), (spec.dlq_topic, 1)):
            try:
                topic = NewTopic(name, n, spec.replication, topic_configs=TOPIC_CONFIG)
                admin.create_topics([topic])
                # Said, as a worker given a misspelt ?topic= makes one and waits on it idle.
                log.info("log: created topic %s (%d partitions): it was not on the broker", name, n)
            except TopicAlreadyExistsError:
                if name == spec.topic and spec.partitions_given:
                    _say_count_unused(admin, spec)
        _check_stamps(admin, spec.topic)
    finally:
        admin.close()


def _say_count_unused(admin: KafkaAdminClient, spec: KafkaSpec) -> None:
    """Warn when the URL's ?partitions= differs from the topic's: it is used only to make the
    topic, and a worker or ingest given 8 for a topic of 4 started without a word (ops
    review, 2026-12-07), its operator believing in 8."""
    try:
        (found,) = admin.describe_topics([spec.topic])
    except (KafkaError, ValueError) as e:
        log.debug("log: could not count the partitions of %s: %s", spec.topic, e)
        return
    count = len(found.get("partitions") or ())
    if count and count != spec.partitions:
        log.warning(
            "log: topic %s has %d partitions, not the %d --log names: ?partitions= is used only "
            "to make the topic (add partitions with kafka-topics --alter --partitions)",
            spec.topic,
            count,
            spec.partitions,
        )


def _check_stamps(admin: KafkaAdminClient, topic: str) -> None:
    """Refuse a topic that keeps its producers' timestamps (one made beforehand, by ops or a
    broker's auto-create): a Kafka-direct event's recorded_at, which as-of answers and audits
    go by, would be whatever its producer set."""
    key = "message.timestamp.type"
    try:
        found = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=[key])], config_filter="all"
        )
    except KafkaError as e:  # a principal without DescribeConfigs: say so, do not refuse
        log.warning(
            "log: could not read %s of topic %s (%s): it must be LogAppendTime", key, topic, e
        )
        return
    stamps = found.get("topic", {}).get(topic, {}).get(key, {}).get("value")
    if stamps is not None and stamps != TOPIC_CONFIG[key]:
        raise ValueError(
            f"log: topic {topic} stamps records with {stamps}: a producer's own timestamp "
            f"would stand as the hub's recorded_at; set {key}={TOPIC_CONFIG[key]} on it "
            f"(kafka-configs --alter --entity-type topics --entity-name {topic} "
            f"--add-config {key}={TOPIC_CONFIG[key]})"
        )


class KafkaLog:
    def __init__(self, spec: KafkaSpec, *, create: bool = True) -> None:
        self.spec = spec
        self.origin_key = spec.origin_key()
        self.cut_kept: Path | None = None  # a broker's log is never cut by an open of ours
        _warn_without_key(spec)
        if create:
            ensure_topics(spec)
        self._producer: KafkaProducer | None = None  # kafka-python, for the dead letters
        self._appender: _Appender | None = None  # aiokafka, for append
        self._producer_lock = threading.Lock()
        self._closed = False
        self._consumer = KafkaConsumer(
            bootstrap_servers=spec.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id="duhub-log-reader",
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
            isolation_level=ISOLATION_LEVEL,
            max_poll_records=5000,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        self._consumer_lock = threading.Lock()
        if not create:
            self._refuse_absent_topic()
        self._peek: KafkaConsumer | None = None  # reads of up to PEEK_RECORDS, made on the first
        self._peek_lock = threading.Lock()
        # partition -> (offset, end): the log holds no record to read from offset up to end,
        # only transaction markers and aborted records (duhub.log.base.holds_all); valid
        # while the end is.
        self._markers: dict[int, tuple[int, int]] = {}
        self._probe: KafkaConsumer | None = None
        self._probe_lock = threading.Lock()
        # Threads `close` left to close a reader once its call returns (a test joins them).
        self.closers: list[threading.Thread] = []
        self._partitions = self._discover()

    def _refuse_absent_topic(self) -> None:
        """Raise ValueError, naming the topics there are, when a reader's topic is not on the
        broker: a misspelt ?topic= waited 30 s for partitions and ended in a traceback (audit
        verify), or was created empty and replayed as 0 events, exit 0 (replay)."""
        try:
            topics = self._consumer.topics()
        except BaseException:
            self._consumer.close()
            raise
        if self.spec.topic in topics:
            return
        self._consumer.close()
        shown = sorted(t for t in topics if not t.startswith("__") and not t.endswith(".dlq"))
        raise ValueError(
            f"--log: no topic {self.spec.topic} on {self.spec.bootstrap} (its topics: "
            f"{', '.join(shown) or 'none'}); give ?topic= as ingest was given it"
        )

    def _discover(self) -> list[int]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self._consumer_lock:
                found = self._consumer.partitions_for_topic(self.spec.topic)
            if found:
                return sorted(found)
            time.sleep(0.2)
        raise RuntimeError(f"log: topic {self.spec.topic} has no partitions")

    def send_dead_letter(self, rec: LogRecord, reason: str, event_id: str = "") -> None:
        """Send a record the aggregator refused to the dead-letter topic, with why (and the
        event's id when its value names one). Sent before the read model commits: a crash in
        between may send it twice, never lose it."""
        headers = [
            ("duhub-reason", reason.encode()),
            ("duhub-partition", str(rec.partition).encode()),
            ("duhub-offset", str(rec.offset).encode()),
        ]
        if event_id:
            headers.append((EVENT_ID_HEADER, event_id.encode()))
        if hint := value_hint(rec.value or b""):
            headers.append((HINT_HEADER, hint.encode()))

        def send(value: bytes | None) -> None:
            self.producer().send(
                self.spec.dlq_topic, key=rec.key, value=value, headers=headers
            ).get(timeout=30)

        try:
            send(rec.value)
        except MessageSizeTooLargeError:
            # The record fit its topic but not this one with the headers. Refused again at
            # every try, it stopped every worker on it; its value stays in the log.
            self._drop_producer()
            size = len(rec.value or b"")
            omitted = f"{size} bytes, too large for {self.spec.dlq_topic} with these headers"
            headers.append(
                (
                    VALUE_OMITTED_HEADER,
                    f"{omitted}: it is in the log at {rec.partition}:{rec.offset}".encode(),
                )
            )
            send(b"")

    def _drop_producer(self) -> None:
        """Close the dead-letter producer: kafka-python's idempotent producer fails every
        send after the broker refused one as too large."""
        with self._producer_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            _close_dead_letters(producer, 5.0)

    def producer(self) -> KafkaProducer:
        with self._producer_lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.spec.bootstrap,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=LINGER_MS,
                    batch_size=BATCH_BYTES,
                    max_request_size=MAX_REQUEST_BYTES,
                    client_id="duhub-ingest",
                    reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
                    request_timeout_ms=10_000,
                    delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
                    max_block_ms=10_000,
                )
            return self._producer

    def append(self, items: Sequence[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
        if not items:
            return []
        with self._producer_lock:
            if self._closed:
                raise LogClosed("log is closed")
            if self._appender is None:
                placed_by = self._placed_by()
                if self._closed:  # while the placement was read (close does not wait for it)
                    raise LogClosed("log is closed")
                self._appender = _Appender(self.spec, self.origin_key, placed_by)
            appender = self._appender
        try:
            # The appender times out itself (DELIVERY_TIMEOUT_MS); this is a backstop.
            return appender.append(items, timeout=DELIVERY_TIMEOUT_MS / 1000 + 15)
        except TimeoutError:
            # Before OSError: a TimeoutError is one (and concurrent.futures' and asyncio's are
            # it, Python 3.11), and the appender's says nothing: ingest answered "the log is
            # not writable: " with nothing after the colon.
            raise KafkaTimeoutError(
                f"the broker did not acknowledge the append within {DELIVERY_TIMEOUT_MS} ms "
                "(it may be down, or slow); the records may be in the log all the same"
            ) from None
        except _GivenUp:
            raise KafkaTimeoutError(
                "the log closed before the broker acknowledged the append (the process is "
                "stopping); the records may be in the log all the same"
            ) from None
        except (KafkaError, OSError):
            raise
        except Exception as e:  # aiokafka's own errors: callers handle kafka-python's
            raise KafkaError(f"append failed: {e!r}") from e

    def _placed_by(self) -> int:
        """Return the partition count ingest places sources by on this topic: the one its
        latest records in the log name (`duhub/log/placement.py`), else (a topic ingest never
        wrote to, or only before 2026-12-06) the topic's count now. A count above the topic's
        (a Kafka-direct record claiming ingest's origin on a hub without an origin key) is
        not one ingest placed by; raise KafkaTimeoutError when no partition holding records
        could be read in time, rather than settle on the count now for the process's life."""
        latest: tuple[int, int] | None = None  # (timestamp, count)
        now = len(self._known())
        tps = [TopicPartition(self.spec.topic, p) for p in self._known()]
        unread: list[int] = []
        # One deadline for all: appends wait behind this (the producer's lock), and a slow
        # broker held them a deadline a partition, 2 minutes on 12.
        deadline = time.monotonic() + PLACEMENT_READ_S
        with self._consumer_lock:
            consumer = self._consumer
            for tp, end in sorted(consumer.end_offsets(tps).items()):
                if end == 0:
                    continue
                consumer.assign([tp])
                consumer.seek(tp, max(0, end - PLACEMENT_TAIL))
                while consumer.position(tp) < end and time.monotonic() < deadline:
                    for m in consumer.poll(timeout_ms=100).get(tp, []):
                        count = count_of(m.headers)
                        value = m.value or b""
                        if count is None or count > now:
                            continue
                        if origin(self.origin_key, m.headers, value) != "ingest":
                            continue
                        if latest is None or m.timestamp >= latest[0]:
                            latest = (m.timestamp, count)
                if consumer.position(tp) < end:
                    unread.append(tp.partition)
        if latest is None and unread:
            raise KafkaTimeoutError(
                f"could not read the last records of partitions {unread} of {self.spec.topic} "
                f"within {PLACEMENT_READ_S:g} s, to learn the partition count ingest places "
                "sources by; the append is refused, try again"
            )
        if latest is None:
            return now
        if latest[1] != now:
            log.warning(
                "log: topic %s has %d partitions, but ingest placed its records by the %d it "
                "had first: sources keep their partitions, and ingest writes to none of the "
                "partitions added since (README, Kafka)",
                self.spec.topic,
                now,
                latest[1],
            )
        return latest[1]

    def ping(self, timeout: float = 3.0) -> None:
        """Raise unless the broker answers a request for the topic's end offsets in time.

        Uses a consumer of its own, so a probe never waits behind a slow read.
        """
        tps = [TopicPartition(self.spec.topic, p) for p in self._partitions[:1]]
        with self._probe_lock:
            if self._probe is None:
                self._probe = KafkaConsumer(
                    bootstrap_servers=self.spec.bootstrap,
                    group_id=None,
                    enable_auto_commit=False,
                    client_id="duhub-health",
                    request_timeout_ms=int(timeout * 1000) + 1000,
                    reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
                )
            self._probe.end_offsets(tps, timeout_ms=int(timeout * 1000))

    def read(self, partition: int, offset: int, limit: int) -> list[LogRecord]:
        if limit <= PEEK_RECORDS:
            with self._peek_lock:
                if self._peek is None:
                    self._peek = KafkaConsumer(
                        bootstrap_servers=self.spec.bootstrap,
                        group_id=None,
                        enable_auto_commit=False,
                        client_id="duhub-log-peek",
                        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
                        isolation_level=ISOLATION_LEVEL,
                        fetch_max_bytes=PEEK_FETCH_BYTES,
                        max_partition_fetch_bytes=PEEK_FETCH_BYTES,
                        # The broker answers a connection's requests in turn: the next
                        # peek's end offsets waited behind a fetch left waiting for data
                        # (500 ms by default, per partition looked at).
                        fetch_max_wait_ms=PEEK_FETCH_WAIT_MS,
                    )
                return self._read(self._peek, partition, offset, limit)
        with self._consumer_lock:
            return self._read(self._consumer, partition, offset, limit)

    def _read(
        self, consumer: KafkaConsumer, partition: int, offset: int, limit: int
    ) -> list[LogRecord]:
        tp = TopicPartition(self.spec.topic, partition)
        end = consumer.end_offsets([tp])[tp]
        if offset >= end or self._only_markers(partition, offset, end):
            return []
        consumer.assign([tp])
        consumer.seek(tp, offset)
        at, deadline = offset, time.monotonic() + 10
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=100, max_records=limit).get(tp, [])
            if batch:
                return [to_record(m, self.origin_key) for m in batch]
            position = consumer.position(tp)
            if position >= end:
                # Past the end without a record: only transaction markers and aborted
                # records lie there. (Before, this waited 10 s and raised TimeoutError.)
                self._markers[partition] = (offset, end)
                return []
            if position > at:  # going through aborted records, however many: not stuck
                at, deadline = position, time.monotonic() + 10
        raise TimeoutError(f"log: no record from {self.spec.topic}[{partition}] at {offset}")

    def read_uncommitted(self, positions: dict[int, int]) -> Iterator[LogRecord]:
        """Yield the records from `positions` on up to each partition's high watermark, read
        uncommitted: past the last stable offset too. Ingest takes its own records from there
        (`services/ingest/resume.py`): they are never in a transaction, yet a read_committed
        reader does not get them while one that started before them is open. A consumer of its
        own, for this rare read (an ingest's start, or its first append after a failed one)."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.spec.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id="duhub-log-uncommitted",
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
            isolation_level="read_uncommitted",
        )
        try:
            tps = [TopicPartition(self.spec.topic, p) for p in self._known()]
            for tp, end in sorted(consumer.end_offsets(tps).items()):
                at = positions.get(tp.partition, 0)
                if at >= end:
                    continue
                consumer.assign([tp])
                consumer.seek(tp, at)
                deadline = time.monotonic() + UNCOMMITTED_STALL_S
                while at < end:
                    batch = consumer.poll(timeout_ms=100, max_records=UNCOMMITTED_RECORDS)
                    for m in batch.get(tp, []):
                        if m.offset < end:
                            yield to_record(m, self.origin_key)
                    # Past records, and past transaction markers, which come as none.
                    position = consumer.position(tp)
                    if position > at:
                        at, deadline = position, time.monotonic() + UNCOMMITTED_STALL_S
                    elif time.monotonic() >= deadline:
                        raise TimeoutError(
                            f"log: no record from {self.spec.topic}[{tp.partition}] at {at}, "
                            f"before its high watermark {end}"
                        )
        finally:
            consumer.close()

    def _only_markers(self, partition: int, offset: int, end: int) -> bool:
        known = self._markers.get(partition)
        return known is not None and known[0] <= offset and known[1] == end

    def partitions(self) -> list[int]:
        return self._known()

    def _known(self) -> list[int]:
        """Return the topic's partitions as the reader's metadata has them now (refreshed every
        5 min, or by `rediscover`): learnt once at start, partitions added to the topic later
        were never asked about, and a read model's position there was taken for the log ending
        at 0 (a false 'lost records', and every worker stopped). Never fewer than known: a
        topic deleted under us leaves none, and its partitions' ends are asked all the same."""
        with self._consumer_lock:
            found = self._consumer.partitions_for_topic(self.spec.topic) or set()
        if not found <= set(self._partitions):
            grown = sorted(found | set(self._partitions))
            log.info(
                "log: topic %s has %d partitions now (%d before)",
                self.spec.topic,
                len(grown),
                len(self._partitions),
            )
            self._partitions = grown
        return list(self._partitions)

    def rediscover(self) -> list[int]:
        """Ask the broker for the topic's partitions now, not at the next metadata refresh: a
        worker may be handed a partition added to the topic before this reader heard of it.

        A broker that does not answer makes it raise kafka-python's error within the reader's
        request timeout (30 s, as `end_offsets`; at once when refused), the partitions known
        kept: its callers (`ends_covering`) ask again later. Never retry it here until
        answered: every reader call waits on this lock meanwhile."""
        with self._consumer_lock:
            self._consumer.topics()  # kafka-python: a metadata request, answered fresh
        return self._known()

    def end_offsets(self) -> dict[int, int]:
        tps = [TopicPartition(self.spec.topic, p) for p in self._known()]
        with self._consumer_lock:
            ends = self._consumer.end_offsets(tps)
        return {tp.partition: o for tp, o in ends.items()}

    def start_offsets(self) -> dict[int, int]:
        tps = [TopicPartition(self.spec.topic, p) for p in self._known()]
        with self._consumer_lock:
            starts = self._consumer.beginning_offsets(tps)
        return {tp.partition: o for tp, o in starts.items()}

    def wait(self, positions: dict[int, int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            ends = self.end_offsets()
            at = positions.get
            if any(
                ends[p] > at(p, 0) and not self._only_markers(p, at(p, 0), ends[p]) for p in ends
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def close(self, timeout: float = CLOSE_WITHIN_S) -> None:
        """Close the log's clients within `timeout` s (CLOSE_WITHIN_S), whatever the broker does.

        Appends the broker has not acknowledged by then fail, and so do dead letters not
        delivered: said at ERROR, never taken as sent. A reader still waiting on the broker (a
        scrape's lag, a health probe) keeps its client: it holds nothing to save, and is left to
        the process's exit (kafka-python's network thread is a daemon)."""
        deadline = time.monotonic() + timeout
        # Not waited for past the deadline: an append's first call holds this lock while it
        # reads the partitions' tails (up to the request timeout on a frozen broker), and
        # looks at the flag again before it makes the producer.
        held = self._producer_lock.acquire(timeout=_left(deadline))
        self._closed = True  # an append still in flight (the server's grace is over) stops
        if held:
            self._producer_lock.release()
        if self._appender is not None:
            self._appender.close(_left(deadline))
        if self._producer is not None:
            _close_dead_letters(self._producer, _left(deadline))
        readers = (
            ("health probe", self._probe_lock, lambda: self._probe),
            ("peek reader", self._peek_lock, lambda: self._peek),
            ("reader", self._consumer_lock, lambda: self._consumer),
        )
        for what, lock, client in readers:
            if lock.acquire(timeout=_left(deadline)):
                _close_reader(lock, client, held=True)
                continue
            log.warning(
                "log: closing, the %s still waits on the broker %s: closed once its call "
                "returns (within the request timeout)",
                what,
                self.spec.bootstrap,
            )
            # Not left open: a client nobody closes refreshes its metadata for as long as
            # the process lives, logging each failure (a test process's later tests read
            # them: CI, 2026-12-07).
            closer = threading.Thread(
                target=_close_reader, args=(lock, client), name="duhub-log-close", daemon=True
            )
            closer.start()
            self.closers.append(closer)


def _close_reader(lock: threading.Lock, client, held: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Close a reader's client under its lock (taken here unless `held`), then release it."""
    if not held:
        lock.acquire()
    try:
        if (found := client()) is not None:
            found.close()
    finally:
        lock.release()


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _close_dead_letters(producer: KafkaProducer, timeout: float) -> None:
    """Close the dead-letter producer within `timeout` s. A dead letter not delivered by then
    is said, and its `send_dead_letter` fails: the batch that refused the record does not
    commit, and the partition's next reader refuses it again and sends it then."""
    try:
        producer.close(timeout=timeout)
    except KafkaTimeoutError:
        log.error(
            "log: closing, dead letters to %s were not acknowledged by the broker before the "
            "log closed: not sent; the batches that refused them do not commit, and are "
            "applied again",
            producer.config["bootstrap_servers"],
        )
        # kafka-python 3.0.12's close raises out of its flush before it stops its sender
        # (private: stop it without sending; what it held fails, its sender is told so).
        producer._sender.force_close()


_WARNED: set[str] = set()


def _warn_without_key(spec: KafkaSpec) -> None:
    if not spec.key_file and spec.topic not in _WARNED:
        _WARNED.add(spec.topic)
        log.warning(
            "log: kafka://… without ?key=PATH: any producer to %s can pass for ingest "
            "(its record times, the reference source); give every ingest and aggregate "
            "process of the hub the same origin key file (README, Security)",
            spec.topic,
        )


class _GivenUp(Exception):
    """An append that `_Appender.close` gave up on: the broker had not acknowledged it."""


class _Appender:
    """aiokafka's idempotent producer (acks=all) on an event loop thread of its own.

    Each append becomes one closed record batch per partition (more when one exceeds
    BATCH_BYTES), handed to the producer under a FIFO lock, so records reach a partition in
    the order they were appended, also when appends overlap.
    """

    def __init__(self, spec: KafkaSpec, origin_key: bytes | None, placed_by: int) -> None:
        self.spec = spec
        self.origin_key = origin_key
        self.placed_by = placed_by  # the partition count sources are placed by, for good
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="duhub-log-append", daemon=True
        )
        self._thread.start()
        self._producer: aiokafka.AIOKafkaProducer | None = None
        self._order = asyncio.Lock()  # binds to the loop on first use
        self._partition_of: dict[bytes, int] = {}
        # The appends not settled yet, with their record counts, and what `close` settles when
        # it gives up on them: else their callers waited on a stopped loop, up to `append`'s
        # 45 s backstop (and a process's exit waits for its gRPC threads).
        self._in_flight: dict[concurrent.futures.Future, int] = {}  # type: ignore[type-arg]
        self._given_up: concurrent.futures.Future = concurrent.futures.Future()  # type: ignore[type-arg]

    def append(self, items: Sequence[tuple[bytes, bytes]], timeout: float) -> list[tuple[int, int]]:
        """Return (partition, offset) per record once the broker acknowledged them all; raise
        TimeoutError after `timeout`, _GivenUp when the log closed first."""
        done = asyncio.run_coroutine_threadsafe(self._append(items), self._loop)
        self._in_flight[done] = len(items)
        done.add_done_callback(lambda f: self._in_flight.pop(f, None))
        first = concurrent.futures.FIRST_COMPLETED
        concurrent.futures.wait([done, self._given_up], timeout, return_when=first)
        if done.done() or not self._given_up.done():
            return done.result(timeout=0)
        raise _GivenUp

    async def _append(self, items: Sequence[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
        async with self._order:
            producer = self._producer or await self._start()
            try:
                batches, where = await self._enqueue(producer, items)
            except GeneratorExit:
                raise  # closed unfinished, its loop stopped (`close`): nothing may be awaited
            except BaseException as e:
                await self._drop(producer, e)
                raise
        try:
            metas = await asyncio.wait_for(
                asyncio.gather(*batches), timeout=DELIVERY_TIMEOUT_MS / 1000
            )
        except GeneratorExit:
            raise  # as above
        except BaseException as e:
            await self._drop(producer, e)
            raise
        bases = [m.offset for m in metas]
        if min(bases) < 0:  # a duplicate-sequence answer carries no offset
            raise KafkaError("the broker acknowledged a batch without its offset")
        return [(metas[b].partition, bases[b] + i) for b, i in where]

    async def _start(self) -> aiokafka.AIOKafkaProducer:
        producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=self.spec.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=LINGER_MS,
            max_batch_size=BATCH_BYTES,
            max_request_size=MAX_REQUEST_BYTES,
            client_id="duhub-ingest",
            request_timeout_ms=10_000,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        return producer

    async def _enqueue(
        self, producer: aiokafka.AIOKafkaProducer, items: Sequence[tuple[bytes, bytes]]
    ) -> tuple[list[asyncio.Future], list[tuple[int, int]]]:  # type: ignore[type-arg]
        topic = self.spec.topic
        count = self.placed_by
        if len(await producer.partitions_for(topic)) < count:
            raise KafkaError(
                f"topic {topic} has fewer partitions than the {count} ingest places sources "
                "by: it was made again"
            )
        placement = header(count)
        partition_of = self._partition_of
        builders: list[tuple[int, object]] = []  # (partition, BatchBuilder)
        counts: list[int] = []
        current: dict[int, int] = {}  # partition -> index of its open batch
        where: list[tuple[int, int]] = []  # per record: (batch index, offset in its batch)
        origin_key = self.origin_key
        for key, value in items:
            headers = [*ingest_headers(origin_key, value), placement]
            p = partition_of.get(key)
            if p is None:
                # kafka-python's DefaultPartitioner, which placed every source so far.
                p = place(key, count)
                if len(partition_of) < 100_000:
                    partition_of[key] = p
            b = current.get(p)
            if (
                b is None
                or builders[b][1].append(  # type: ignore[attr-defined]
                    key=key, value=value, timestamp=None, headers=headers
                )
                is None
            ):
                builder = producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise KafkaError(f"a record of {len(value)} bytes does not fit a batch")
                b = current[p] = len(builders)
                builders.append((p, builder))
                counts.append(0)
            where.append((b, counts[b]))
            counts[b] += 1
        futures = []
        for p, builder in builders:
            builder.close()  # nothing else may join it: its offsets are base + index
            futures.append(await producer.send_batch(builder, topic, partition=p))
        return futures, where

    async def _drop(self, producer: aiokafka.AIOKafkaProducer, why: BaseException) -> None:
        """Let a producer that failed go: its idempotence sequence may be out of step with the
        broker, and its unsent records must not reach the log later behind the caller's back.
        Records already on the wire may still land: the caller was answered UNAVAILABLE,
        retries, and the read model counts an event id once whatever the log holds."""
        if self._producer is producer:
            self._producer = None
        # (private, aiokafka 0.14: fail what is still queued rather than flush it on stop)
        producer._message_accumulator.fail_all(KafkaError(f"an append failed: {why!r}"))
        try:
            await asyncio.wait_for(producer.stop(), timeout=5)
        except Exception:  # closing a broken producer may complain; it is gone either way
            log.debug("closing a failed producer", exc_info=True)

    def close(self, timeout: float) -> None:
        """Flush and close the producer within `timeout` s (and LOOP_STOP_S); the appends the
        broker has not acknowledged by then fail (KafkaTimeoutError to their callers), said at
        ERROR."""

        async def stop() -> None:
            if self._producer is not None:
                await self._producer.stop()

        if not self._thread.is_alive():
            # Closed before: a stop handed to the stopped loop would never run, and the
            # wait for it would last the whole timeout.
            return
        deadline = time.monotonic() + timeout
        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout)
        except TimeoutError:
            pass  # what it did not flush is said below
        except Exception:
            log.warning("the log producer did not close cleanly", exc_info=True)
        # A flush that ended settles its appends a moment later, on the loop.
        concurrent.futures.wait(list(self._in_flight), timeout=_left(deadline))
        # Stopped at once, as ever: what it still waits on is the broker's. It stops at its
        # next turn (an idle loop's: at once); once it has, no append settles any more, so
        # those unsettled are exactly those that fail.
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(max(_left(deadline), LOOP_STOP_S))
        failed = [n for f, n in list(self._in_flight.items()) if not f.done()]
        self._given_up.set_result(None)
        if failed:
            log.error(
                "log: closing, %d records (%d append calls) were not acknowledged by the "
                "broker %s within %.1f s: those appends fail, none of them acknowledged (the "
                "records may be in the log all the same)",
                sum(failed),
                len(failed),
                self.spec.bootstrap,
                timeout,
            )


def to_record(m, origin_key: bytes | None) -> LogRecord:  # type: ignore[no-untyped-def]
    """Return the LogRecord of a kafka-python ConsumerRecord."""
    # A null value (a tombstone) reads as empty: every reader takes bytes, and the applier
    # dead-letters it as no Event at all.
    value = m.value or b""
    found = origin(origin_key, m.headers, value)
    return LogRecord(
        m.partition,
        m.offset,
        m.key or b"",
        value,
        timestamp_ns=m.timestamp * 1_000_000,
        ingested=found == "ingest",
        origin_fault="" if found in ("ingest", "direct") else found,
    )
