"""A read model whose positions lie past its log's end is another log's (duhub/log/belongs.py)."""

from __future__ import annotations

import pytest

from duhub.log.belongs import LogLost, past_end, refuse_lost, refuse_past_end


def test_positions_up_to_the_end_belong() -> None:
    assert past_end({0: 5, 1: 0}, {0: 5, 1: 3}) == {}
    refuse_past_end({0: 5}, {0: 7})  # behind: the worker applies the rest


def test_a_position_past_the_end_or_in_a_partition_the_log_lacks_does_not() -> None:
    assert past_end({0: 6, 1: 2, 8: 9}, {0: 5, 1: 3}) == {0: (6, 5), 8: (9, 0)}
    with pytest.raises(ValueError, match=r"--db: .* past the end of --log \(partition 0 at 6"):
        refuse_past_end({0: 6}, {0: 5})


def test_a_running_service_names_where_the_log_lost_records() -> None:
    refuse_lost({0: 5, 1: 2}, {0: 5, 1: 9})  # nothing lost
    with pytest.raises(LogLost, match=r"--log lost .*\(partition 1 at 30, the log ends at 4\)"):
        refuse_lost({0: 5, 1: 30}, {0: 5, 1: 4})
