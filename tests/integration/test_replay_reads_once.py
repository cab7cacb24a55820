"""A replay of a Kafka log reads each record once. A partition read before the reference
data's waits at its start (its events name units not registered yet): before 2026-12-06 the
next pass read its first batch again from the broker (up to 20,000 records fetched and
decoded a second time per such partition, 0.5 s each on the test broker); the records read
are now kept for that pass. The figures are the same either way."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from duhub.bootstrap import open_log
from duhub.readmodel.digest import digest, table_digests
from duhub.readmodel.engine import open_engine
from services.aggregate.replay import replay
from tests.integration.test_replay_grown_log import city_visits, kafka_hub
from tests.unit.builders import DANG, DANG_V1, hierarchy, visit

pytestmark = [pytest.mark.kafka]


def test_a_partition_waiting_for_the_reference_data_is_read_once(tmp_path: Path) -> None:
    with kafka_hub(tmp_path) as hub:
        hub.publish(hierarchy(), reference=True)  # partition 2
        hub.publish([visit(DANG_V1, event_id=f"d{s}", seq=s, source=DANG) for s in range(1, 301)])
        hub.publish(city_visits(1, 300))  # partition 3, after the reference data's
        assert hub.filled() == {0, 2, 3}
        live = digest(table_digests(hub.engine))

        log = open_log(hub.url, create=False)
        read: Counter[tuple[int, int]] = Counter()
        log_read, log_ends = log.read, log.end_offsets

        def counted(partition: int, offset: int, limit: int):  # type: ignore[no-untyped-def]
            records = log_read(partition, offset, limit)
            read.update((r.partition, r.offset) for r in records)
            return records

        # Partitions in order: DANG's (0) is read before the reference data's (2), and waits.
        log.read = counted  # type: ignore[method-assign]
        log.end_offsets = lambda: dict(sorted(log_ends().items()))  # type: ignore[method-assign]
        target = open_engine(f"sqlite:///{tmp_path / 'replay.db'}")
        try:
            done = replay(log, target)
            assert done.done == 8 + 300 + 300
            twice = sorted(k for k, n in read.items() if n > 1)
            assert not twice, f"{len(twice)} records read more than once, first {twice[:3]}"
            assert sum(read.values()) == done.done
            assert digest(table_digests(target)) == live
        finally:
            target.dispose()
            log.close()
