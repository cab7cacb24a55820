"""A read model whose positions lie past its log's end is another log's (duhub/log/belongs.py)."""

from __future__ import annotations

import pytest

from duhub.log.belongs import past_end, refuse_past_end


def test_positions_up_to_the_end_belong() -> None:
    assert past_end({0: 5, 1: 0}, {0: 5, 1: 3}) == {}
    refuse_past_end({0: 5}, {0: 7})  # behind: the worker applies the rest


def test_a_position_past_the_end_or_in_a_partition_the_log_lacks_does_not() -> None:
    assert past_end({0: 6, 1: 2, 8: 9}, {0: 5, 1: 3}) == {0: (6, 5), 8: (9, 0)}
    with pytest.raises(ValueError, match=r"--db: .* past the end of --log \(partition 0 at 6"):
        refuse_past_end({0: 6}, {0: 5})
