"""A query server in its own process hears of every commit that changes an answer through
PostgreSQL NOTIFY (services.query.changes): whatever the batch holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from duhub.feed import ChangeFeed
from duhub.readmodel.writer import read_positions
from duhub.v1 import events_pb2 as pb
from services.query.changes import follow_changes
from tests.infra import fresh_database
from tests.unit.builders import YIDU, YIDU_V1, Pipeline, campaign, group, hierarchy, kinds, unit


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
