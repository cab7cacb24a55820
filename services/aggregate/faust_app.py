"""The Faust app: as many workers as share the topic's partitions, each running the same
projection code through the ContiguousDriver. Faust drives consumption and group membership;
the figures rest on the read model's positions, not on Faust's offsets or tables."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
import time

import faust
from faust.types import TP

from duhub.log.base import LogRecord
from duhub.log.kafka import INGEST_ORIGIN, ORIGIN_HEADER, KafkaLog, KafkaSpec
from duhub.readmodel.engine import open_engine
from services.aggregate.driver import ContiguousDriver

log = logging.getLogger(__name__)

# Up to this many records per batch: a backlog is applied in big transactions (fewer commits,
# more rollup keys shared); live traffic waits at most TAKE_WITHIN_S to fill one.
BATCH = 10_000
TAKE_WITHIN_S = 0.05
RETRY_HELD_S = 0.5
# Records Faust takes from the consumer per poll. Uncapped, a poll hands over all that was
# fetched (up to 1 MiB per partition) and Faust delivers it partition after partition, so a
# partition the others wait for (the city's units and campaigns) comes after the whole fetch
# of those before it. Capped, polls take turns through the fetched partitions, and one drained
# is fetched again at once. By measure (the aggregation benchmark's backlog, 3-6 runs each):
# uncapped 6.8-7.1k records/s, 250-2,000 gave 7.3-10.7k (1,000: median 9.5k); freshness at
# 5,000/s no worse (p99 231-246 ms against 302-508 ms uncapped).
MAX_POLL_RECORDS = 1_000
EXIT_CRASHED = 70
# Nothing delivered for this long while our partitions lag behind the log: the consumer is
# sought back to the read model's positions (once per idle spell: the watchdog takes over).
RESEEK_S = 5.0
# No batch for this long while our partitions have records: the consumer is wedged.
STALL_S = 60.0
WATCHDOG_CHECK_S = 5.0
# Faust commits consumer offsets only as a hint for where to resume; the driver corrects them.
COMMIT_INTERVAL_S = 5.0
# Fault fix (tests/integration/test_faults.py): a worker killed with -9 held its partitions for
# Faust's default 60 s session timeout before the group gave them to the others; 10 s now.
SESSION_TIMEOUT_S = 10.0
HEARTBEAT_INTERVAL_S = 2.0


def build_app(log_url: str, db_url: str, datadir: str = "") -> faust.App:
    """Return a Faust app that applies the events topic to the read model at `db_url`."""
    spec = KafkaSpec.parse(log_url)
    kafka = KafkaLog(spec)
    driver = ContiguousDriver(kafka, open_engine(db_url))
    app = faust.App(
        # One consumer group per events topic: workers of the same topic share its partitions.
        f"duhub-aggregate-{spec.topic}",
        broker=f"kafka://{spec.bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=COMMIT_INTERVAL_S,
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_S,
        stream_wait_empty=False,
        # Room for two batches per partition's stream buffer: fetching goes on while one applies
        # (Faust's default, 4096, stalled the fetcher behind every batch).
        stream_buffer_maxsize=2 * BATCH,
        broker_max_poll_records=MAX_POLL_RECORDS,
        # Faust keeps a little state of its own; keep it beside ours, not in the cwd.
        datadir=datadir or tempfile.mkdtemp(prefix="duhub-faust-"),
    )
    topic = app.topic(
        spec.topic, key_serializer="raw", value_serializer="raw", partitions=spec.partitions
    )

    # The agent and the retry timer take turns with the driver.
    turn = asyncio.Lock()

    async def handle(records: list[LogRecord]) -> None:
        try:
            async with turn:
                # Held records of partitions a rebalance gave away are the new owner's now
                # (while a rebalance runs the assignment is empty: keep them meanwhile).
                mine = _assigned(app, spec.topic)
                if mine:
                    driver.release(set(driver.held) - mine)
                driver.assigned = mine
                # The read model is written with blocking SQLAlchemy calls: off the loop.
                seeks = await asyncio.to_thread(driver.handle, records)
                await _seek_ours(app, spec.topic, seeks)
        except asyncio.CancelledError:
            raise
        except BaseException:
            # A crashed Faust agent leaves its worker alive and idle. Stop the process loudly
            # instead: nothing is lost (positions live in the read model) and a supervisor
            # restarts it, or the other workers take its partitions.
            log.critical("aggregate worker stops: a batch failed", exc_info=True)
            logging.shutdown()
            os._exit(EXIT_CRASHED)

    @app.agent(topic, name="aggregate")
    async def aggregate(stream):  # type: ignore[no-untyped-def]
        async for events in stream.take_events(BATCH, within=TAKE_WITHIN_S):
            await handle([_record(e.message) for e in events])

    @app.timer(RETRY_HELD_S)
    async def retry_held() -> None:
        # Records held for another partition's event get another try even when nothing new
        # arrives (only then: a delivery tries them anyway), and a batch written behind is
        # seen through (a failed one applied again).
        if driver.holding() and time.monotonic() - driver.last_handled >= RETRY_HELD_S:
            await handle([])

    resought_at = 0.0  # the driver's last_handled when last sought back

    @app.timer(RESEEK_S)
    async def resume_lagging() -> None:
        # A fresh read model beside a group whose commits are at the log's end: the consumer
        # would deliver nothing, ever (the watchdog restarted the worker every minute).
        nonlocal resought_at
        if driver.last_handled == resought_at:
            return
        async with turn:
            mine = _assigned(app, spec.topic)
            points = await asyncio.to_thread(driver.resume_points, mine, RESEEK_S)
            if points:
                await _seek_ours(app, spec.topic, points)
                log.info("nothing delivered for %s s: consumer sought to %s", RESEEK_S, points)
                resought_at = driver.last_handled

    app.duhub_driver = driver  # type: ignore[attr-defined]
    return app


async def _seek_ours(app: faust.App, topic: str, seeks: dict[int, int]) -> None:
    """Seek (and commit) each partition still ours to its offset. One a rebalance took away
    meanwhile is not sought (the consumer refuses it): its new owner starts from the read
    model's position anyway."""
    still = _assigned(app, topic)
    for p, offset in seeks.items():
        if p in still:
            await _seek(app.consumer, TP(topic, p), offset)


async def _seek(consumer, tp: TP, offset: int) -> None:  # type: ignore[no-untyped-def]
    """Seek the consumer to `offset` and commit it there at once.

    The driver seeks only to where the read model stands, or past records it applied or
    holds. Faust commits a partition only up to its first offset it neither acked nor knows
    as a gap, and the offsets a forward seek skips are never handed over: left to itself, its
    commits stopped there for good (a restart would hand over the whole backlog again) and
    the offsets acked after piled up. So the offset sought is committed here, and what Faust
    keeps below it is let go (an ack below its committed offset is ignored).
    """
    await consumer.seek(tp, offset)
    # Faust's own bookkeeping (faust-streaming 0.15): the commit it makes itself, then the
    # acked offsets and gaps below it, as a commit of its own would have trimmed them.
    await consumer._commit({tp: offset})
    consumer._committed_offset[tp] = offset
    acked = consumer._acked[tp]
    acked[:] = [o for o in acked if o >= offset]
    consumer._acked_index[tp] = set(acked)
    consumer._gap[tp].chop(0, offset)


def _assigned(app: faust.App, topic: str) -> set[int]:
    """Return the partitions of `topic` this worker owns now (none while it rebalances)."""
    return {tp.partition for tp in app.consumer.assignment() if tp.topic == topic}


def _record(message):  # type: ignore[no-untyped-def]
    """Return the LogRecord of a message Faust delivered."""
    headers = dict(message.headers or [])
    return LogRecord(
        message.partition,
        message.offset,
        message.key or b"",
        message.value,
        # Kafka's timestamps are whole milliseconds: the same nanoseconds as the log's reader
        # (duhub.log.kafka.to_record) gives, whichever path a record comes by.
        timestamp_ns=round(message.timestamp * 1000) * 1_000_000,
        ingested=headers.get(ORIGIN_HEADER) == INGEST_ORIGIN,
    )


def run_worker(log_url: str, db_url: str, datadir: str = "", lag_metric: bool = False) -> None:
    """Run one aggregate worker until SIGTERM/SIGINT (logging as the caller set it up)."""
    app = build_app(log_url, db_url, datadir)
    if lag_metric:
        from duhub import metrics
        from duhub.readmodel.writer import read_positions

        driver: ContiguousDriver = app.duhub_driver  # type: ignore[attr-defined]
        engine = driver.applier.engine
        metrics.watch_lag(driver.kafka.end_offsets, lambda: read_positions(engine))
    threading.Thread(target=_watchdog, args=(app,), name="watchdog", daemon=True).start()
    worker = faust.Worker(
        app, loglevel="INFO", quiet=True, redirect_stdouts=False, override_logging=False
    )
    worker.execute_from_commandline()


def _watchdog(app: faust.App) -> None:
    """Stop the process when our partitions have work but nothing is handled any more.

    aiokafka's fetcher can crash after a seek (robinhood/aiokafka#19); Faust then hangs in its
    shutdown for minutes with the process alive. A supervisor restarts an exited process, and
    the other workers take the partitions meanwhile; positions live in the read model.
    """
    driver: ContiguousDriver = app.duhub_driver  # type: ignore[attr-defined]
    while True:
        time.sleep(WATCHDOG_CHECK_S)
        try:
            stalled = driver.stalled(_assigned(app, driver.kafka.spec.topic), STALL_S)
        except Exception:  # not started, or rebalancing: look again later
            continue
        if stalled:
            log.critical(
                "aggregate worker stops: no batch handled for %s s while its "
                "partitions have records to apply",
                STALL_S,
            )
            logging.shutdown()
            os._exit(EXIT_CRASHED)
