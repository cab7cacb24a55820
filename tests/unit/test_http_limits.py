"""The dashboard's HTTP server holds what a city's screens need, not what clients ask for: a
thread per connection only while it is answered, event streams up to a cap, and answers kept
only as `--answer-cache` says."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from duhub.bootstrap import Hub, HubConfig


def _hub(tmp_path: Path, **config: int) -> Hub:
    hub = Hub(HubConfig(tmp_path, listen="127.0.0.1:0", http="127.0.0.1:0", **config))
    hub.start()
    hub.tailer.catch_up()
    return hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = _hub(tmp_path, max_streams=4)
    try:
        yield h
    finally:
        h.stop(grace=0)


def _get(hub: Hub, path: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    assert hub.dashboard is not None
    try:
        with urllib.request.urlopen(hub.dashboard.url + path, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_dashboard_keeps_answers_only_as_the_answer_cache_option_says(
    tmp_path: Path,
) -> None:
    # It kept up to 512 of its own whatever --answer-cache said, 0 included.
    hub = _hub(tmp_path, answer_cache=0)
    try:
        assert hub.dashboard is not None
        for _ in range(3):
            assert _get(hub, "api/statistics?metric=visits")[0] == 200
        answers = hub.dashboard.api.servicer.answers
        assert (answers.hits, answers.misses) == (0, 0)  # none kept, none looked up
    finally:
        hub.stop(grace=0)
