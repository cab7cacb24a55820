"""The Faust app: as many workers as share the topic's partitions, each running the same
projection code through the ContiguousDriver. Faust keeps the group membership: which
partitions are this worker's. The records come by a reader of our own (`Feed`,
`PartitionReader`), from the read model's positions; Faust's own fetching of them is paused.
The figures rest on the read model's positions, not on Faust's offsets or tables."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
import time
from typing import TYPE_CHECKING

import faust
from faust.types import TP

from duhub.health import UNREACHABLE_DB
from duhub.log.belongs import LogLost, check_belongs
from duhub.log.kafka import KafkaLog, KafkaSpec
from duhub.readmodel.engine import open_engine
from duhub.readmodel.log_fills import fill_from_log
from services.aggregate import fetcher_close, heap
from services.aggregate.driver import ContiguousDriver
from services.aggregate.feed import Feed
from services.aggregate.membership import CommitRefused, Membership
from services.aggregate.reader import PartitionReader
from services.aggregate.stuck_threads import exit_past_stuck

fetcher_close.install()  # before any consumer stops

if TYPE_CHECKING:  # the caller's (duhub serve aggregate): services do not import the CLI
    from duhub.cli.stopsignal import StopSignals

log = logging.getLogger(__name__)

# Records the reader takes per poll. Uncapped, a poll hands over all that was fetched
# partition after partition, so a partition the others wait for (the city's units and
# campaigns) comes after the whole fetch of those before it. Capped, polls take turns through
# the fetched partitions. By measure (the aggregation benchmark's backlog,
# through Faust's consumer, 3-6 runs each): uncapped 6.8-7.1k records/s, 250-2,000 gave
# 7.3-10.7k (1,000: median 9.5k).
MAX_POLL_RECORDS = 1_000
EXIT_CRASHED = 70
# The log lost what the read model applied: as at start (`check_belongs`), which a restart
# then meets.
EXIT_LOG_LOST = 2
TRIM_INTERVAL_S = 5.0  # see services/aggregate/heap.py
# No batch for this long while our partitions have records: the reader is wedged.
STALL_S = 60.0
WATCHDOG_CHECK_S = 5.0
# Every commit refused as a non-member's for this long: the group dropped the worker and its
# rejoin did not come (services/aggregate/membership.py). A rebalance takes seconds.
NOT_A_MEMBER_S = 60.0
# Fault fix (tests/integration/test_faults.py): a worker killed with -9 held its partitions for
# Faust's default 60 s session timeout before the group gave them to the others; 10 s now.
SESSION_TIMEOUT_S = 10.0
HEARTBEAT_INTERVAL_S = 2.0
# A stopping worker ends within this, from the signal: compose and Kubernetes give a container
# 30 s before SIGKILL. (Before, the stages' own limits added up to 30 + 10 + ~4 s: 44 s with
# PostgreSQL and Kafka both hung, tests/integration/test_worker_stop_outage.py.)
STOP_WITHIN_S = 23.0
# Left of it after the group is left: the rest of Faust's stop (~1 s) and a thread that will
# not end (stuck_threads.GRACE_S).
AFTER_LEAVE_S = 4.5
# How long it tries to leave the group (a broker gone: Faust waited 60 s for its consumer).
LEAVE_WAIT_S = 7.0
# How long it waits for the batch in hand to commit before it leaves the group: what the
# deadline leaves (11.5 s). A read model that refuses meanwhile is not waited for at all
# (apply._wait_out).
STOP_WAIT_S = STOP_WITHIN_S - LEAVE_WAIT_S - AFTER_LEAVE_S
# Faust's own stall checks watch its stream, which stays paused here (the records come from
# PartitionReader): after 5 minutes (stream_processing_timeout) a healthy worker logged ERROR
# "Stream has not started processing TP(…)" for each of its partitions, again and again.
# Pushed out of reach; _watchdog watches what is applied instead.
FAUST_STALL_CHECK_S = 10 * 365 * 24 * 3600.0


def build_app(log_url: str, db_url: str, datadir: str = "") -> faust.App:
    """Return a Faust app that applies the events topic to the read model at `db_url`."""
    heap.limit_arenas()  # before the worker's threads start (the Kafka clients' too)
    spec = KafkaSpec.parse(log_url)
    kafka = KafkaLog(spec)
    driver = ContiguousDriver(kafka, open_engine(db_url, worker=True))
    check_belongs(kafka, driver.applier.engine)
    fill_from_log(kafka, driver.applier.engine)
    app = faust.App(
        # One consumer group per events topic: workers of the same topic share its partitions.
        f"duhub-aggregate-{spec.topic}",
        broker=f"kafka://{spec.bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_S,
        stream_wait_empty=False,
        broker_max_poll_records=MAX_POLL_RECORDS,
        stream_processing_timeout=FAUST_STALL_CHECK_S,
        # No standby replicas (they are for Faust's tables; duhub keeps none): with them its
        # assignor moved no partition to a worker added while each held ceil(N / workers),
        # and a third worker on 4 partitions, or a fifth on 12, read nothing.
        table_standby_replicas=0,
        # Faust keeps a little state of its own; keep it beside ours, not in the cwd.
        datadir=datadir or tempfile.mkdtemp(prefix="duhub-faust-"),
    )
    topic = app.topic(
        spec.topic, key_serializer="raw", value_serializer="raw", partitions=spec.partitions
    )

    def pause(partitions: set[int]) -> None:
        tps = {TP(spec.topic, p) for p in partitions}
        app.loop.call_soon_threadsafe(app.consumer.pause_partitions, tps)

    membership = Membership()

    def commit(positions: dict[int, int]) -> None:
        # Ops tools read the group's lag from its commits: they follow the read model.
        done = asyncio.run_coroutine_threadsafe(_commit_ours(app, spec.topic, positions), app.loop)
        done.add_done_callback(lambda done: _answered(done, membership))

    feed = Feed(
        driver,
        PartitionReader(spec, MAX_POLL_RECORDS),
        owned=lambda: _assigned(app, spec.topic),
        on_owned=pause,
        commit=commit,
    )

    @app.agent(topic, name="aggregate")
    async def aggregate(stream):  # type: ignore[no-untyped-def]
        # The agent subscribes the group to the topic; the records are the feed's. Faust
        # resumes fetching after each rebalance: what it delivers meanwhile is dropped here
        # (the feed reads it from the read model's positions) and its partition paused again.
        async for event in stream.events():
            app.consumer.pause_partitions({event.message.tp})

    @app.task
    async def start_feed() -> None:
        feed.running = True
        threading.Thread(target=_run_feed, args=(feed,), name="feed", daemon=True).start()

    app.duhub_driver = driver  # type: ignore[attr-defined]
    app.duhub_membership = membership  # type: ignore[attr-defined]
    app.duhub_feed = feed  # type: ignore[attr-defined]
    return app


def _run_feed(feed: Feed) -> None:
    trimmed_at = time.monotonic()
    try:
        while not feed.stopping:
            feed.step()
            if time.monotonic() - trimmed_at >= TRIM_INTERVAL_S:
                # The buffers of the batches since are freed: give their pages back.
                heap.trim()
                trimmed_at = time.monotonic()
        feed.close()
    except LogLost as e:
        _stop_lost(e)
    except BaseException as e:
        if feed.stopping:
            # Stopping anyway: what did not commit is applied again by the partitions' next
            # owner, from the positions in the read model. A read model away is said in a
            # line, not a traceback of 200 (a worker stopped in a PostgreSQL outage).
            if isinstance(e, UNREACHABLE_DB):
                why = str(e.orig if getattr(e, "orig", None) is not None else e).strip()
                log.warning(
                    "the last batch did not commit while the worker stopped: the read model "
                    "is unreachable (%s); the partitions' next owner applies it",
                    why.splitlines()[0] if why else type(e).__name__,
                )
            else:
                log.warning("the last batch failed while the worker stopped", exc_info=True)
            feed.say_stopped()
            return
        # A feed that stopped leaves its worker alive and idle. Stop the process loudly
        # instead: nothing is lost (positions live in the read model) and a supervisor
        # restarts it, or the other workers take its partitions.
        log.critical("aggregate worker stops: a batch failed", exc_info=True)
        logging.shutdown()
        os._exit(EXIT_CRASHED)


def _stop_lost(e: LogLost) -> None:
    """Stop the process: going on, the worker would take the log's new records for those
    applied at their offsets, and never count them."""
    log.critical("aggregate worker stops: %s", e)
    logging.shutdown()
    os._exit(EXIT_LOG_LOST)


def _answered(done, membership: Membership) -> None:  # type: ignore[no-untyped-def]
    if done.cancelled():
        return
    if (e := done.exception()) is None:
        membership.committed()
        return
    membership.failed(e)
    # Refused in a rebalance, as is usual for a moment: the watchdog tells one that lasts.
    level = logging.DEBUG if isinstance(e, CommitRefused) else logging.INFO
    log.log(level, "committing the group's offsets failed: %s", e)


async def _commit_ours(app: faust.App, topic: str, offsets: dict[int, int]) -> None:
    """Commit each partition still ours at its offset. One a rebalance took away meanwhile is
    not committed (the consumer refuses it): its new owner commits it."""
    still = _assigned(app, topic)
    refused = [
        p
        for p, offset in offsets.items()
        if p in still and not await _commit(app.consumer, TP(topic, p), offset)
    ]
    if refused:
        raise CommitRefused(
            f"partitions {refused}: the group has rebalanced or dropped this member"
        )


async def _commit(consumer, tp: TP, offset: int) -> bool:  # type: ignore[no-untyped-def]
    """Commit `offset` as the group's offset of `tp`, and make Faust's own bookkeeping agree.

    Faust commits a partition up to the offsets it delivered and saw acked; what it delivered
    (between a rebalance and its pause, dropped by the agent) would otherwise be committed over
    ours later, ahead of the read model. Its consumer is sought there too (it is paused: that
    fetches nothing), its committed offset set, and what it keeps below let go.
    """
    await consumer.seek(tp, offset)
    # Faust's own bookkeeping (faust-streaming 0.15): the commit it makes itself, then the
    # acked offsets and gaps below it, as a commit of its own would have trimmed them. False:
    # the group refused it (Faust's answer for a CommitFailedError "already rebalanced").
    if not await consumer._commit({tp: offset}):
        return False
    consumer._committed_offset[tp] = offset
    acked = consumer._acked[tp]
    acked[:] = [o for o in acked if o >= offset]
    consumer._acked_index[tp] = set(acked)
    consumer._gap[tp].chop(0, offset)
    return True


def _assigned(app: faust.App, topic: str) -> set[int]:
    """Return the partitions of `topic` this worker owns now (none while it rebalances)."""
    return {tp.partition for tp in app.consumer.assignment() if tp.topic == topic}


def run_worker(
    app: faust.App, metrics_served: bool = False, early_stop: StopSignals | None = None
) -> None:
    """Run the aggregate worker `build_app` made until SIGTERM/SIGINT (logging as the caller
    set it up); with `metrics_served`, its metrics carry the lag and whether the log and the
    read model answer. `early_stop`, the caller's catch of the signals until Faust's loop
    listens, hands on a stop that came before."""
    if metrics_served:
        from duhub import metrics
        from duhub.health import watch_dependencies
        from duhub.readmodel.writer import read_positions

        driver: ContiguousDriver = app.duhub_driver  # type: ignore[attr-defined]
        engine = driver.applier.engine
        metrics.watch_lag(driver.kafka, lambda: read_positions(engine))
        watch_dependencies(driver.kafka, engine)
    threading.Thread(target=_watchdog, args=(app,), name="watchdog", daemon=True).start()
    worker = _Worker(
        app, loglevel="INFO", quiet=True, redirect_stdouts=False, override_logging=False
    )
    worker.early_stop = early_stop
    try:
        worker.execute_from_commandline()
    except SystemExit as e:  # mode ends the worker so, its exit code in it
        exit_past_stuck(e.code if isinstance(e.code, int) else 1)
        raise


class _Worker(faust.Worker):
    """Faust's worker, stopping the feed first on SIGTERM or SIGINT.

    Before, Faust left the group while the feed went on applying the partitions it had left,
    and as Python exited the feed handed a batch to its writer, which refused it: the worker
    logged "a batch failed" and exited 70, as if it had crashed
    (tests/integration/test_worker_graceful_stop.py)."""

    _signal_name = ""
    early_stop: StopSignals | None = None

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        # No progress spinner: its end wrote "\b\x1b[?25h" (show the cursor) to stdout even
        # with no terminal there, garbling the logs collected from it. Faust drops it itself
        # for a log level below WARN when it sets up logging, which it does not here
        # (override_logging=False); every use of it checks for None.
        self.spinner = None

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        # The loop listens now (its handlers replaced the caller's, with no moment between
        # them on the default action): a stop the caller caught before is ours to act on.
        came = self.early_stop.noted() if self.early_stop is not None else None
        if came is not None:
            log.info("%s came while the worker started: it stops now", came.name)
            self._schedule_shutdown(came)

    def _schedule_shutdown(self, signal):  # type: ignore[no-untyped-def]
        # mode's hook for SIGTERM and SIGINT (faust-streaming 0.15): remember which, for the log.
        self._signal_name = self._signal_name or signal.name
        super()._schedule_shutdown(signal)

    async def on_stop(self) -> None:
        # Before the app stops (and its consumer leaves the group): services stop their own
        # work first, then their children.
        feed: Feed = self.app.duhub_feed  # type: ignore[attr-defined]
        # One deadline for the stages: what one leaves unused the next may take.
        deadline = time.monotonic() + STOP_WITHIN_S
        feed.stop(self._signal_name or "stopping")
        if not feed.running:  # stopped before it started
            await super().on_stop()
            return
        stopped = await asyncio.get_running_loop().run_in_executor(
            None, feed.stopped.wait, STOP_WAIT_S
        )
        if not stopped:
            log.warning(
                "the batch in hand did not end within %s s; stopping without it (the read "
                "model's positions say whether it committed)",
                STOP_WAIT_S,
            )
        # Leaving the group needs the broker; without it Faust waited for its consumer
        # thread's 60 s (mode's shutdown_timeout). Nothing rests on leaving: the group's
        # session drops this worker anyway, and positions live in the read model.
        consumer_thread = getattr(self.app.consumer, "_thread", None)
        if consumer_thread is not None:
            left = deadline - time.monotonic() - AFTER_LEAVE_S
            consumer_thread.shutdown_timeout = max(1.0, min(LEAVE_WAIT_S, left))
        await super().on_stop()


def _watchdog(app: faust.App) -> None:
    """Stop the process when our partitions have work but nothing is handled any more (a
    wedged reader, or a group Faust never rejoined: aiokafka's fetcher has crashed after a
    seek, robinhood/aiokafka#19, and Faust then hung in its shutdown for minutes). A supervisor
    restarts an exited process, and the other workers take the partitions meanwhile;
    positions live in the read model. Also stop it (exit 2) when the log ends before our
    partitions' positions: it lost records (`Feed.check_log`)."""
    driver: ContiguousDriver = app.duhub_driver  # type: ignore[attr-defined]
    feed: Feed = app.duhub_feed  # type: ignore[attr-defined]
    membership: Membership = app.duhub_membership  # type: ignore[attr-defined]
    while True:
        time.sleep(WATCHDOG_CHECK_S)
        try:
            # Also while no fetch fails: a broker emptied under an idle worker, before the
            # log's new records pass its positions (then no offset tells them apart).
            feed.check_log()
            stalled = driver.stalled(_assigned(app, driver.kafka.spec.topic), STALL_S)
        except LogLost as e:
            _stop_lost(e)
            return
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
        if membership.refused_for() > NOT_A_MEMBER_S:
            log.critical(
                "aggregate worker stops: the group has refused its commits for %s s (%s): "
                "it no longer takes this worker as a member, which may still apply partitions "
                "the group gave another; started again, it joins anew",
                NOT_A_MEMBER_S,
                membership.reason,
            )
            logging.shutdown()
            os._exit(EXIT_CRASHED)
