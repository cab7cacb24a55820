"""The directories duhub makes for what it holds are its owner's only: the log, the read model
and an outbox hold every county's events and figures, and were made readable by every local
user (0755 directories, 0644 files; security probe, 2026-12-06). One there already keeps its
mode: the operator chose it."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from duhub.bootstrap import make_data_dir
from duhub.log.embedded import EmbeddedLog
from duhub.node.outbox import Outbox


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_dir_the_log_and_the_outbox_are_made_private(tmp_path: Path) -> None:
    make_data_dir(tmp_path / "a" / "data")
    assert mode(tmp_path / "a" / "data") == 0o700
    EmbeddedLog(tmp_path / "log").close()
    assert mode(tmp_path / "log") == 0o700
    Outbox(tmp_path / "cache" / "duhub" / "outbox.db").close()
    assert mode(tmp_path / "cache" / "duhub") == 0o700


def test_a_directory_there_already_keeps_its_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    shared.chmod(0o750)
    with caplog.at_level(logging.WARNING, logger="duhub.bootstrap"):
        make_data_dir(shared)
    EmbeddedLog(shared).close()
    assert mode(shared) == 0o750
    # ... and the operator is told, who upgraded from a build that made it 0755.
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "is open to other local users (mode 0750)" in warning, warning
    assert f"chmod 700 {shared}" in warning


def test_a_private_data_dir_is_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="duhub.bootstrap"):
        make_data_dir(tmp_path / "data")
        make_data_dir(tmp_path / "data")  # there already, 0700
    assert not caplog.records
