"""`KafkaLog.close` returns within CLOSE_WITHIN_S while the broker is frozen (it takes
connections and requests and never answers), so a stopping ingest or `duhub up` on Kafka ends
within the 23 s a process has to stop in, under the 30 s before SIGKILL.

Before, close waited for a reader's lock held by a call waiting out kafka-python's 30 s request
timeout (an ingest scraped for its lag just before its stop ended after 27 s), gave its
producer 10 s to flush, then stopped the producer's loop under an append in flight, whose
caller (a gRPC thread, which Python's exit waits for) then waited the append's 45 s backstop:
42 s for an ingest stopped with a publish in flight. A dead letter not delivered made close
raise, the readers left unclosed. What could not be flushed is said at ERROR, and its caller
fails: nothing unacknowledged passes for acknowledged."""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.errors import KafkaTimeoutError

from duhub.log.base import LogRecord
from duhub.log.kafka import CLOSE_WITHIN_S, LOOP_STOP_S, KafkaLog, KafkaSpec
from services.aggregate.faust_app import STOP_WITHIN_S
from tests.e2e.hubproc import publish_in_flight, serve
from tests.flakylink import FrozenBroker, run_for
from tests.infra import ORIGIN_KEY, kafka_bootstrap, unique

pytestmark = [pytest.mark.kafka]

# Past the bound, for a loaded machine; far below kafka-python's 30 s request timeout.
MARGIN_S = 2.0
CLOSED_WITHIN_S = CLOSE_WITHIN_S + LOOP_STOP_S + MARGIN_S


@pytest.fixture
def frozen() -> Iterator[tuple[FrozenBroker, KafkaLog]]:
    """A log on a topic of its own, through a link to the broker that `freeze` silences."""
    link = FrozenBroker(kafka_bootstrap())
    spec = KafkaSpec.parse(f"kafka://{link.address}?topic={unique('duhub.test.')}&key={ORIGIN_KEY}")
    log = KafkaLog(spec)
    try:
        yield link, log
    finally:
        link.close()  # refused from now on: what still waits on the broker fails at once
        run_for(log.close, 15.0)
        # A reader close left waiting is closed once its call ends (its request timeout):
        # left open, its client logged failed metadata refreshes into later tests.
        for closer in log.closers:
            closer.join(40.0)
            assert not closer.is_alive(), "a reader of the closed log was never closed"


def _timed_close(log: KafkaLog) -> float:
    t0 = time.monotonic()
    outcome = run_for(log.close, 40.0)
    took = time.monotonic() - t0
    assert outcome == [None], outcome
    return took


def test_close_does_not_wait_for_a_reader_waiting_on_the_broker(
    frozen: tuple[FrozenBroker, KafkaLog],
) -> None:
    link, log = frozen
    log.end_offsets()
    link.freeze()
    # A scrape's lag, say: it holds the reader's lock until kafka-python's 30 s are over.
    waiting = threading.Thread(target=lambda: run_for(log.end_offsets, 40.0), daemon=True)
    waiting.start()
    time.sleep(0.5)
    took = _timed_close(log)
    assert took < CLOSED_WITHIN_S, f"close took {took:.1f} s"


def test_close_fails_an_append_the_broker_did_not_acknowledge_and_says_so(
    frozen: tuple[FrozenBroker, KafkaLog], caplog: pytest.LogCaptureFixture
) -> None:
    link, log = frozen
    log.append([(b"420500", b"before")])  # the producer is up
    link.freeze()
    appended: list[object] = []
    t0 = time.monotonic()
    caller = threading.Thread(
        target=lambda: appended.extend(run_for(lambda: log.append([(b"420500", b"x")]), 60.0)),
        daemon=True,
    )
    caller.start()
    time.sleep(0.5)
    with caplog.at_level(logging.ERROR, logger="duhub.log.kafka"):
        took = _timed_close(log)
    assert took < CLOSED_WITHIN_S, f"close took {took:.1f} s"
    # Its caller is answered now, with an error: not after 45 s, and never as appended.
    caller.join(CLOSED_WITHIN_S + 0.5 - (time.monotonic() - t0))
    assert len(appended) == 1, f"the append still waits {time.monotonic() - t0:.1f} s on"
    assert isinstance(appended[0], KafkaTimeoutError), appended
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("1 records (1 append calls) were not acknowledged" in m for m in said), said


def test_close_fails_a_dead_letter_not_delivered_and_says_so(
    frozen: tuple[FrozenBroker, KafkaLog], caplog: pytest.LogCaptureFixture
) -> None:
    link, log = frozen
    rec = LogRecord(0, 0, b"420500", b"not an event", timestamp_ns=0, ingested=False)
    log.send_dead_letter(rec, "test")  # the dead-letter producer is up
    link.freeze()
    sent: list[object] = []
    sender = threading.Thread(
        target=lambda: sent.extend(run_for(lambda: log.send_dead_letter(rec, "test"), 60.0)),
        daemon=True,
    )
    sender.start()
    time.sleep(0.5)
    with caplog.at_level(logging.ERROR, logger="duhub.log.kafka"):
        took = _timed_close(log)  # before, its flush's KafkaTimeoutError came out of close
    assert took < CLOSED_WITHIN_S, f"close took {took:.1f} s"
    sender.join(5.0)
    assert len(sent) == 1 and isinstance(sent[0], Exception), sent  # not sent, and said so
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("dead letters" in m and "not sent" in m for m in said), said


@pytest.mark.slow
def test_an_ingest_stops_in_time_with_the_broker_frozen(tmp_path: Path) -> None:
    """The whole stop: SIGTERM to `duhub serve ingest` after a scrape (its lag waits on the
    broker) and with a publish in flight, the broker frozen: exit 0 within STOP_WITHIN_S."""
    link = FrozenBroker(kafka_bootstrap())
    url = f"kafka://{link.address}?topic={unique('duhub.test.')}&partitions=2&key={ORIGIN_KEY}"
    opts = ("--log", url, "--data-dir", str(tmp_path), "--metrics", "127.0.0.1:0")
    ingest = serve("ingest", *opts, "--http", "off")
    publish = None
    try:
        metrics = ingest.find(re.compile(r"metrics:\s+(http://\S+)"), timeout=30).group(1)
        ingest.find(re.compile(r"caught up with the log: serving"), timeout=60)
        link.freeze()
        threading.Thread(
            target=lambda: run_for(lambda: urllib.request.urlopen(metrics, timeout=10), 15),
            daemon=True,
        ).start()
        publish = publish_in_flight(ingest.address, tmp_path / "outbox.db")
        time.sleep(3.0)  # the scrape and the append wait on the broker
        code, took, said = ingest.sigterm_timed()
        assert code == 0, said
        assert took < STOP_WITHIN_S, f"stopped after {took:.1f} s:\n{said}"
        assert "were not acknowledged by the broker" in said  # the append in flight, said
    finally:
        ingest.stop()
        if publish is not None:
            publish.kill()
            publish.wait()
        link.close()
