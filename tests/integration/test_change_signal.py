"""A query server in its own process hears of every commit that changes an answer through
PostgreSQL NOTIFY (services.query.changes): whatever the batch holds."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from duhub.feed import ChangeFeed
from duhub.readmodel.engine import open_engine
from duhub.readmodel.writer import read_positions
from duhub.v1 import events_pb2 as pb
from services.query.changes import follow_changes
from tests.infra import fresh_database
from tests.unit.builders import (
    YIDU,
    YIDU_V1,
    Pipeline,
    campaign,
    group,
    hierarchy,
    kinds,
    unit,
    visit,
)


@pytest.fixture
def hub() -> Iterator[tuple[Pipeline, ChangeFeed]]:
    with fresh_database() as url:
        p = Pipeline.open(db_url=url)
        feed = ChangeFeed()
        try:
            p.publish(hierarchy(), allow_reference=True)
            p.tailer.catch_up()
            follow_changes(p.engine, feed)
            assert feed.wait_any(0, 10) > 0  # listening (it says so once it is)
            yield p, feed
        finally:
            feed.close()
            p.close()


def test_a_batch_of_more_campaigns_than_a_notify_payload_holds_is_applied_and_heard(
    hub: tuple[Pipeline, ChangeFeed],
) -> None:
    """Their ids joined pass PostgreSQL's 8000 byte payload limit: the commit failed on
    pg_notify, the same batch again at every try, and the accepted events never counted."""
    p, feed = hub
    ids = [f"{i:03d}".ljust(64, "x") for i in range(1, 131)]
    events = [
        campaign(c, [group("g", pb.TIER_CITY, YIDU_V1)], event_id=f"c{i}", seq=i)
        for i, c in enumerate(ids, start=1)
    ]
    assert set(kinds(p.publish(events))) == {"accepted"}
    seen = feed.campaign_version(ids[-1])
    p.tailer.catch_up()
    assert read_positions(p.engine) == {0: p.end()}
    assert feed.wait_campaign(ids[-1], seen, 10) > seen  # its watchers wake


def test_a_unit_registered_alone_is_heard(hub: tuple[Pipeline, ChangeFeed]) -> None:
    """It adds a row to the figures grouped by its parent's children: a page showing them
    is told to fetch them again."""
    p, feed = hub
    seen = feed.version
    reg = unit("420581199", YIDU, pb.LEVEL_TOWNSHIP, event_id="u1", seq=1)
    assert kinds(p.publish([reg])) == ["accepted"]
    p.tailer.catch_up()
    assert feed.wait_any(seen, 10) > seen


class Relay:
    """A TCP relay to the test database that can cut its connections without a word: what
    a network cut, a NAT that forgot them or a failover does to idle connections (nothing
    reaches them, so nothing tells them). Connections made afterwards go through."""

    def __init__(self, url: str) -> None:
        rest = url.split("@", 1)[1]
        host, port = rest.split("/", 1)[0].rsplit(":", 1)
        self.upstream = (host, int(port))
        self.url = url.replace(f"@{host}:{port}/", "@127.0.0.1:{port}/")
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = self.url.format(port=self.listener.getsockname()[1])
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.cut_off: set[int] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            pair = (client, server)
            self.pairs.append(pair)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b, id(pair)), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket, pair: int) -> None:
        try:
            while data := a.recv(65536):
                if pair not in self.cut_off:
                    b.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        for pair in self.pairs:
            self.cut_off.add(id(pair))
            pair[1].close()  # the database's side ends; the client's hears nothing

    def close(self) -> None:
        self.listener.close()
        for client, server in self.pairs:
            client.close()
            server.close()


def test_a_listening_connection_cut_without_a_word_is_replaced() -> None:
    """The listener waited on the dead connection for good (hours, until TCP keepalive
    gave up on it): WatchCoverage and the dashboard's events were never pushed again,
    while every question answered the new figures."""
    with fresh_database() as url:
        p = Pipeline.open(db_url=url)
        relay = Relay(url)
        via = open_engine(relay.url)
        feed = ChangeFeed()
        try:
            p.publish(hierarchy(), allow_reference=True)
            p.publish([campaign("c", [group("g", pb.TIER_CITY, YIDU_V1)], event_id="c", seq=1)])
            p.tailer.catch_up()
            follow_changes(via, feed)
            assert feed.wait_any(0, 10) > 0  # listening
            time.sleep(1.0)  # and waiting for notifications (not cut mid-statement)
            relay.cut()
            seen = feed.campaign_version("c")
            assert kinds(p.publish([visit(YIDU_V1, "c", "g", event_id="v", seq=2)])) == ["accepted"]
            p.tailer.catch_up()
            assert feed.wait_campaign("c", seen, 20) > seen
        finally:
            feed.close()
            relay.close()
            via.dispose()
            p.close()


def test_a_database_down_is_logged_once_with_its_traceback_not_every_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The listener reconnects every second while the database is down. Before, each attempt
    # logged ERROR "lost the change channel; reconnecting" with a traceback of ~40 lines: a
    # private PostgreSQL stopped for 6 s under `duhub serve query` gave 7 of them.
    with socket.socket() as s:  # a port nothing listens on: every connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = open_engine(f"postgresql://duhub:duhub@127.0.0.1:{port}/duhub", create=False)
    feed = ChangeFeed()
    with caplog.at_level(logging.DEBUG, logger="services.query.changes"):
        follow_changes(engine, feed)
        time.sleep(3.5)
        feed.close()
        time.sleep(1.2)  # the last attempt's wait ends; the thread sees the feed closed
    mine = [r for r in caplog.records if r.name == "services.query.changes"]
    loud = [r for r in mine if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert loud[0].exc_info is not None and "reconnecting" in loud[0].getMessage()
    assert len(mine) >= 3  # the later attempts are still told, at debug


def _limit_connections(url: str, limit: int) -> None:
    import psycopg2

    from tests.infra import postgres_url

    name = url.rsplit("/", 1)[1]
    conn = psycopg2.connect(postgres_url())
    try:
        conn.autocommit = True
        conn.cursor().execute(f'ALTER DATABASE "{name}" CONNECTION LIMIT {limit}')
    finally:
        conn.close()


def test_a_database_with_no_second_slot_is_lost_once_and_found_again_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its connection slots taken by another client: the listener's LISTEN got the last one,
    its check of the positions none. Before, every second logged ERROR "lost the change
    channel" with a traceback, then WARNING "listening on the change channel again" (5,400
    lines a minute), though it never listened. Now: lost once, found again once, when it is."""
    with fresh_database() as url:
        engine = open_engine(url)
        engine.dispose()
        feed = ChangeFeed()
        _limit_connections(url, 1)
        try:
            with caplog.at_level(logging.DEBUG, logger="services.query.changes"):
                follow_changes(engine, feed)
                time.sleep(4.5)
                during = [r for r in caplog.records if r.name == "services.query.changes"]
                _limit_connections(url, -1)
                deadline = time.monotonic() + 10
                while not _said_again(caplog) and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(1.5)  # a second attempt would have said it again by now
        finally:
            feed.close()
            engine.dispose()
            time.sleep(1.2)
        loud = [r.getMessage() for r in during if r.levelno >= logging.WARNING]
        assert len(loud) == 1 and "lost the change channel" in loud[0], loud
        assert _said_again(caplog) == 1


def _said_again(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        "listening on the change channel again" in r.getMessage()
        for r in caplog.records
        if r.name == "services.query.changes"
    )
