"""Server-sent events: tell a page that the read model changed, so it refetches in place.

One stream per page, woken by the change feed. A burst of changes (the aggregator commits many
small batches a second under load) is coalesced into at most one event per `min_gap` seconds;
a `heartbeat` event every `heartbeat` seconds of quiet keeps proxies and the browser from timing
out, and tells the page the hub is still there: a hub hung, or a link dead without a reset,
closes nothing, and a page hearing no heartbeat for two of them says so and reconnects (a
comment, as it was, reaches no script).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from duhub.feed import ChangeFeed

HEARTBEAT_S = 15.0
MIN_GAP_S = 0.2
# How often a quiet stream looks whether the server is closing.
TICK_S = 0.5
RETRY_MS = 2000


def _event(name: str, data: dict[str, object]) -> bytes:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {body}\n\n".encode()


def stream_changes(
    out: BinaryIO,
    feed: ChangeFeed,
    campaign_id: str,
    closing: threading.Event,
    heartbeat: float = HEARTBEAT_S,
    min_gap: float = MIN_GAP_S,
    allowed: Callable[[], bool] = lambda: True,
    gone: Callable[[], bool] = lambda: False,
) -> None:
    """Write `hello` (how often a quiet stream sends `heartbeat`, in seconds), then a `change`
    event per change and a `heartbeat` after `heartbeat` seconds without one, until the
    client or server goes (`gone`, asked every tick, says the client closed: a quiet stream
    learns it no other way before its next write), or the caller is no longer `allowed`
    (asked at every wake-up: a revoked token).

    A change's data: `version` (the feed's counter) and `coverage` (whether the campaign
    asked about, if any, changed: a page refetches coverage only then, statistics always).
    """
    seen = feed.version
    seen_campaign = feed.campaign_version(campaign_id) if campaign_id else 0
    out.write(f"retry: {RETRY_MS}\n\n".encode())
    out.write(_event("hello", {"version": seen, "heartbeat": heartbeat}))
    out.flush()
    last_write = time.monotonic()
    try:
        while not closing.is_set() and not feed.closed and not gone():
            version = feed.wait_any(seen, TICK_S)
            if not allowed():
                return  # asked after waking: nothing is told after a revocation
            if version > seen:
                now_campaign = feed.campaign_version(campaign_id) if campaign_id else 0
                out.write(
                    _event("change", {"version": version, "coverage": now_campaign > seen_campaign})
                )
                out.flush()
                seen, seen_campaign, last_write = version, now_campaign, time.monotonic()
                closing.wait(min_gap)
            elif time.monotonic() - last_write >= heartbeat:
                out.write(_event("heartbeat", {"version": seen}))
                out.flush()
                last_write = time.monotonic()
    except (BrokenPipeError, ConnectionResetError, OSError):
        return  # the page went away
