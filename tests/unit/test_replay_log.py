"""What a replay target keeps of its log (services/aggregate/replay_log.py): a log that only
grew is the same log; one whose first records differ, or lie elsewhere, is another."""

from __future__ import annotations

import hashlib

import pytest

from services.aggregate.replay_log import decode, encode, first_records, unlike
from tests.unit.builders import Pipeline, hierarchy


def test_the_embedded_log_is_kept_as_the_earlier_version_kept_it() -> None:
    # One partition: the value an earlier duhub wrote and compares ("P:OFFSET:SHA256"), so a
    # target replayed by either version continues under the other.
    hub = Pipeline.open()
    try:
        hub.publish(hierarchy(), allow_reference=True)
        (first,) = hub.log.read(0, 0, 1)
        earlier = f"0:0:{hashlib.sha256(first.value).hexdigest()}"
        assert encode(first_records(hub.log)) == earlier
        assert decode(earlier) == first_records(hub.log)
    finally:
        hub.close()


@pytest.mark.parametrize(
    ("kept", "now", "why"),
    [
        ({2: "0:a", 3: "0:b"}, {0: "0:c", 2: "0:a", 3: "0:b"}, ""),  # grew into partition 0
        ({}, {0: "0:c"}, ""),  # kept while the log was empty: nothing known
        ({2: "0:a", 3: "0:b"}, {2: "0:a", 3: "0:x"}, "the first record of partition 3 is not"),
        ({2: "0:a"}, {0: "0:a"}, "its partition 2 held records; this log's holds none"),
        ({2: "0:a"}, {2: "5:a"}, "the first record of partition 2 is not"),  # front deleted
    ],
)
def test_a_log_that_only_grew_is_the_same_log(
    kept: dict[int, str], now: dict[int, str], why: str
) -> None:
    assert decode(encode(kept)) == kept
    found = unlike(decode(encode(kept)), now)
    assert found.startswith(why) and bool(found) == bool(why), found
